"""How cost grows with batch size and sentence length, as JSON and three plots.

    python benchmarks/scaling.py --preset quick --out benchmarks/results/scaling.json

Writes ``scaling_train_batch.png``, ``scaling_decode_length.png`` and
``scaling_decode_batch.png`` beside ``--out``:

1. **Training target pieces per second against batch size** (16 to 256):
   the compiled train step of the preset's model over live batches of the
   built-in corpus (``benchmarks/throughput.py``'s loop).
2. **Greedy decoding latency against source length** (5 to 200 pieces, one
   batch of ``--length-batch`` sentences): random source ids of exactly that
   length through the preset's model, untrained, with the output length
   pinned (``--steps``) so that only the source length changes, and again
   with the output as long as the preset allows (``1.5 * source + 10``). The
   encoder and the context/score sums are linear in the source length; with
   the output growing too, the attention's source x target term makes the
   curve bend upwards. A linear fit of the pinned curve is reported
   (its R^2 says how straight it is).
3. **Greedy decoding latency against batch size** (1 to 256) at a fixed source
   length and output length.

The model is untrained: its outputs never stop early, so the number of
steps is what the limits say, and the cost per step is the same as for a
trained model of the same shape.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

from report import emit, machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TRAIN_BATCHES = (16, 32, 64, 128, 256)
SOURCE_LENGTHS = (5, 10, 20, 40, 60, 80, 100, 150, 200)
DECODE_BATCHES = (1, 4, 16, 64, 128, 256)


def linear_fit(xs, ys) -> dict:
    """Least squares ``y = a + b x`` and its R^2."""
    import numpy as np

    x, y = np.asarray(xs, float), np.asarray(ys, float)
    b, a = np.polyfit(x, y, 1)
    residual = y - (a + b * x)
    r2 = 1 - float(residual @ residual) / float(((y - y.mean()) ** 2).sum())
    return {"intercept": round(float(a), 4), "slope": round(float(b), 6), "r2": round(r2, 4)}


def time_search(models, decode, batch: int, source_len: int, vocab: int, repeats: int) -> tuple[float, int]:
    """Median seconds of a greedy search over ``batch`` random sources of ``source_len`` pieces, and its steps."""
    import numpy as np
    import tensorflow as tf

    from translate.search import greedy_search
    from translate.text import EOS_ID

    rng = np.random.default_rng(source_len * 1000 + batch)
    ids = rng.integers(EOS_ID + 1, vocab, size=(batch, source_len), dtype=np.int32)
    ids[:, -1] = EOS_ID
    source = tf.constant(ids)
    search = tf.function(lambda s: greedy_search(models, s, decode).ids)
    steps = int(search(source).shape[1])  # traces this shape once
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        search(source).numpy()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2], steps


def plot(xs, series: dict, xlabel: str, ylabel: str, title: str, path: Path, logx: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 3.6))
    for label, ys in series.items():
        axes.plot(xs, ys, marker="o", label=label)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    if logx:
        axes.set_xscale("log", base=2)
    axes.grid(alpha=0.3)
    axes.set_ylim(bottom=0)
    if len(series) > 1:
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--train-steps", type=int, default=20, help="timed training steps per batch size")
    parser.add_argument("--length-batch", type=int, default=64, help="sentences per batch for the length curve")
    parser.add_argument("--steps", type=int, default=50, help="output length while the source length varies")
    parser.add_argument("--batch-source", type=int, default=30, help="source pieces for the batch curve")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per point; the median counts")
    parser.add_argument("--train-batches", default=",".join(map(str, TRAIN_BATCHES)))
    parser.add_argument("--source-lengths", default=",".join(map(str, SOURCE_LENGTHS)))
    parser.add_argument("--decode-batches", default=",".join(map(str, DECODE_BATCHES)))
    parser.add_argument("--out", default="benchmarks/results/scaling.json", help="the JSON; plots go beside it")
    args = parser.parse_args()
    train_batches = [int(b) for b in args.train_batches.split(",")]
    source_lengths = [int(n) for n in args.source_lengths.split(",")]
    decode_batches = [int(b) for b in args.decode_batches.split(",")]

    import keras
    import tensorflow as tf

    from throughput import measure_training
    from translate.config import load_config
    from translate.model import build_models
    from translate.prepare import prepare

    work = tempfile.TemporaryDirectory()
    config = load_config(args.preset, overrides=[f"run_dir={work.name}/run"])
    prepared = prepare(config, progress=False)
    report = {"preset": args.preset, "machine": machine(), "tensorflow": tf.__version__,
              "cores": len(os.sched_getaffinity(0))}

    train = []
    for batch in train_batches:
        batch_config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=batch))
        result, _ = measure_training(batch_config, prepared, warmup=5, steps=args.train_steps)
        train.append({"batch_size": batch, "target_tokens_per_s": result["train_target_tokens_per_s"],
                      "ms_per_step": result["train_ms_per_step"]})
        print(f"[scaling] train batch {batch}: {result['train_target_tokens_per_s']:,.0f} pieces/s",
              file=sys.stderr, flush=True)
    report["train_by_batch"] = train

    keras.utils.set_random_seed(config.train.seed)
    vocab = config.data.tgt_vocab_size
    models = build_models(config.model, config.data.src_vocab_size, vocab)
    cap = max(source_lengths) * 2 + 10
    pinned = dataclasses.replace(config.decode, max_length_ratio=0.0, max_length_offset=args.steps,
                                 max_length_cap=args.steps)
    grown = dataclasses.replace(config.decode, max_length_cap=cap)
    by_length = []
    for n in source_lengths:
        fixed_seconds, fixed_steps = time_search(models, pinned, args.length_batch, n, vocab, args.repeats)
        grown_seconds, grown_steps = time_search(models, grown, args.length_batch, n, vocab, args.repeats)
        by_length.append({"source_pieces": n, "pinned_steps": fixed_steps, "pinned_ms": round(1000 * fixed_seconds, 2),
                          "grown_steps": grown_steps, "grown_ms": round(1000 * grown_seconds, 2),
                          "grown_ms_per_step": round(1000 * grown_seconds / grown_steps, 3)})
        print(f"[scaling] source {n}: {1000 * fixed_seconds:.1f} ms at {fixed_steps} steps, "
              f"{1000 * grown_seconds:.1f} ms at {grown_steps} steps", file=sys.stderr, flush=True)
    report["decode_by_source_length"] = {
        "batch_size": args.length_batch, "rows": by_length,
        "pinned_fit_ms": linear_fit(source_lengths, [r["pinned_ms"] for r in by_length]),
        "grown_ms_per_step_fit": linear_fit(source_lengths, [r["grown_ms_per_step"] for r in by_length]),
    }
    by_batch = []
    for batch in decode_batches:
        seconds, steps = time_search(models, pinned, batch, args.batch_source, vocab, args.repeats)
        by_batch.append({"batch_size": batch, "steps": steps, "ms": round(1000 * seconds, 2),
                         "sentences_per_s": round(batch / seconds, 1)})
    report["decode_by_batch"] = {"source_pieces": args.batch_source, "rows": by_batch}

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot([r["batch_size"] for r in train], {"training": [r["target_tokens_per_s"] for r in train]},
         "batch size (sentences)", "target pieces / s", f"Training throughput, {args.preset} preset",
         out.with_name("scaling_train_batch.png"), logx=True)
    plot(source_lengths, {f"output pinned at {args.steps} pieces": [r["pinned_ms"] for r in by_length],
                          "output 1.5 x source + 10": [r["grown_ms"] for r in by_length]},
         "source length (pieces)", "ms per batch", f"Greedy decoding, batch {args.length_batch}",
         out.with_name("scaling_decode_length.png"))
    plot(decode_batches, {"latency": [r["ms"] for r in by_batch]}, "batch size (sentences)", "ms per batch",
         f"Greedy decoding, {args.batch_source} source / {args.steps} output pieces",
         out.with_name("scaling_decode_batch.png"), logx=True)
    emit(report, str(out))


if __name__ == "__main__":
    main()
