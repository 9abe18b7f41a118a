"""Timing helpers shared by the benchmarks, so every model is measured the same way.

* :func:`train_for_budget`: runs a compiled training step over live batches
  until a wall-clock budget is spent, and counts sentences and real (non-pad)
  target tokens per second after a few warm-up steps (tracing, first
  allocations). ``benchmarks/compare.py`` times our model and the TensorFlow
  tutorial's baseline with it, so both sides pay for their own input pipeline
  and nothing else (no validation, no callbacks).
* :func:`time_decoding`: sentences and generated tokens per second of a
  ``list[str] -> list[str]`` translator at given batch sizes, the median of
  several passes over the same sentences, in corpus order (batches mix
  lengths, as real traffic does).
* :func:`decode_passes`: timed passes of a translator over sentences in
  batches: each pass of :func:`time_decoding`, each decoding turn of
  ``benchmarks/race.py``.
* :func:`peak_rss_mb`: the process's peak resident memory, which is why each
  side of a comparison runs in its own process.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable, Sequence

# Sentences timed per batch size: enough passes to average out one slow call,
# few enough that batch 1 stays short.
DECODE_SENTENCES = {1: 64, 64: 256}


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def train_for_budget(step: Callable, batches: Iterable, seconds: float, warmup_steps: int = 5,
                     min_timed_steps: int = 3) -> dict:
    """Calls ``step(inputs, target_out)`` on ``batches`` until ``seconds`` have passed.

    ``batches`` yields ``(inputs, target_out)`` with ``target_out`` an integer
    ``[batch, time]`` tensor padded with 0, and ``step`` returns the logs of
    one training step (``train_on_batch(..., return_dict=True)``: synchronous,
    so the clock sees finished work). The budget counts from the first batch
    fetched, warm-up included; the rates count only the steps after the first
    ``warmup_steps``. At least ``warmup_steps + min_timed_steps`` steps run
    whatever the budget, so a tiny budget still gives a rate.

    Returns a dict: steps, sentences and target tokens trained, the seconds
    spent, the rates, the first step's loss and the mean loss of the last
    (up to 50) timed steps, to see that the model learned.
    """
    import numpy as np

    started = time.perf_counter()
    steps = sentences = tokens = 0
    timed_sentences = timed_tokens = 0
    timed_from = None
    losses: list[float] = []
    first_loss = None
    for inputs, target_out in batches:
        logs = step(inputs, target_out)
        steps += 1
        if first_loss is None:
            first_loss = float(logs["loss"])
        count = int(target_out.shape[0])
        real = int(np.count_nonzero(np.asarray(target_out)))
        sentences += count
        tokens += real
        if steps == warmup_steps:
            timed_from = time.perf_counter()
        elif steps > warmup_steps:
            timed_sentences += count
            timed_tokens += real
            losses.append(float(logs["loss"]))
        now = time.perf_counter()
        if now - started >= seconds and steps >= warmup_steps + min_timed_steps:
            break
    else:
        raise ValueError("the batches ran out before the training budget was spent: pass a repeating dataset")
    timed_seconds = now - timed_from
    tail = losses[-50:]
    return {
        "train_steps": steps,
        "train_sentences": sentences,
        "train_target_tokens": tokens,
        "train_seconds": round(now - started, 2),
        "train_timed_steps": steps - warmup_steps,
        "train_timed_seconds": round(timed_seconds, 2),
        "train_sentences_per_s": round(timed_sentences / timed_seconds, 1),
        "train_target_tokens_per_s": round(timed_tokens / timed_seconds, 1),
        "train_ms_per_step": round(1000 * timed_seconds / (steps - warmup_steps), 1),
        "train_first_loss": round(first_loss, 4),
        "train_final_loss": round(sum(tail) / len(tail), 4),
    }


def time_decoding(translate: Callable[[list[str]], list[str]], sentences: Sequence[str],
                  batch_sizes: Sequence[int] = (1, 64), repeats: int = 3,
                  count_tokens: Callable[[str], int] | None = None, prefix: str = "decode") -> dict:
    """Sentences (and, with ``count_tokens``, generated tokens) per second of ``translate``.

    For each batch size the first ``DECODE_SENTENCES[batch]`` sentences (at
    most all of them; ``4 * batch`` for other sizes) are translated in
    batches, once untimed (warm-up) and then ``repeats`` times; the median
    pass counts. Keys: ``{prefix}_sentences_per_s_batch_{b}`` and
    ``{prefix}_tokens_per_s_batch_{b}``, the tokens being those of the
    translations of the median pass, as ``count_tokens`` counts them.
    """
    results = {}
    for batch_size in batch_sizes:
        chunk = list(sentences[: DECODE_SENTENCES.get(batch_size, 4 * batch_size)])
        translate(chunk[:batch_size])  # warm-up: allocations, the first trace of a shape
        passes = [decode_passes(translate, chunk, batch_size, count_tokens) for _ in range(repeats)]
        median = sorted(passes, key=lambda p: p["seconds"])[len(passes) // 2]
        results[f"{prefix}_sentences_per_s_batch_{batch_size}"] = round(len(chunk) / median["seconds"], 2)
        if count_tokens is not None:
            results[f"{prefix}_tokens_per_s_batch_{batch_size}"] = round(median["tokens"] / median["seconds"], 1)
    return results


def decode_passes(translate: Callable[[list[str]], list[str]], sentences: Sequence[str], batch_size: int,
                  count_tokens: Callable[[str], int] | None = None, passes: int = 1) -> dict:
    """``passes`` timed passes of ``translate`` over ``sentences`` in batches of ``batch_size``.

    Returns the seconds, the sentences translated and, with ``count_tokens``,
    the tokens of their translations.
    """
    batches = [list(sentences[start : start + batch_size]) for start in range(0, len(sentences), batch_size)]
    begun = time.perf_counter()
    outputs = [t for _ in range(passes) for batch in batches for t in translate(batch)]
    seconds = time.perf_counter() - begun
    tokens = sum(count_tokens(t) for t in outputs) if count_tokens is not None else None
    return {"seconds": seconds, "sentences": len(outputs), "tokens": tokens}
