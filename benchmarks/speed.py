"""How fast the toolkit trains and decodes: ``throughput``, ``knobs``, ``scaling``, ``attention`` (Bahdanau
against Luong dot, in turns), and ``pipeline`` at scale on a corpus made by ``synthetic-corpus``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import (
    REPO,
    RESULTS,
    build_training,
    decode_passes,
    emit,
    machine,
    measure_training,
    median,
    peak_rss_mb,
    prepare_split,
    print_table,
    subcommand,
    take_turns,
    time_decoding,
    train_in_turns,
    train_loop,
    train_step,
)

# --- throughput -----------------------------------------------------------------------------


def throughput(args: argparse.Namespace) -> None:
    """Throughput: training target tokens per second and greedy decoding sentences per second.

        python -m benchmarks throughput --preset quick --model saved_models/greedy

    prints one JSON object:

    * ``train_target_tokens_per_s``: real (non-pad) target tokens per second
      of ``train_on_batch`` on the built-in corpus, after ``--warmup`` steps,
      over ``--steps`` steps (the same compiled train step that ``fit`` runs;
      ``harness.measure_training``);
    * ``decode_sentences_per_s``: greedy decoding through the exported
      SavedModel's ``serving_default`` on Romans (the test split), at batch 1
      and batch 64. With ``--model`` the given export is timed (a trained
      model: realistic output lengths); without it, the untrained benchmark
      model is exported and timed, and every output then runs to the max
      length (worst case);
    * ``peak_rss_mb``: the process's peak resident memory.
    """
    import tensorflow as tf

    import translate

    with tempfile.TemporaryDirectory() as tmp:
        config, prepared = prepare_split(args.preset, args.overrides, tmp=tmp)
        report = {
            "preset": args.preset,
            "overrides": args.overrides,
            "machine": machine(),
            "threads": {name: os.environ.get(name) for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")},
            "tensorflow": tf.__version__,
        }
        training, run = measure_training(config, prepared, args.warmup, args.steps)
        report.update(training)
        if not args.train_only:
            if args.model:
                model_path = Path(args.model)
                report["decode_model"] = str(model_path)
            else:
                from translate.export import export

                model_path = export(run.graph, config, run.src_model, run.tgt_model, tmp, "bench")
                report["decode_model"] = "untrained (every output runs to the max length)"
            # Sentences in corpus order, not sorted: batches mix lengths as real traffic does.
            sentences = [s for s, _ in prepared.read("test")]
            report.update(time_decoding(translate.load(model_path), sentences, (1, 64), args.repeats))
    report["peak_rss_mb"] = peak_rss_mb()
    emit(report, args.out)


# --- knobs ----------------------------------------------------------------------------------

# name -> (extra environment, config overrides, cores: None = all)
# Rows state their precision: they keep their meaning whatever train.precision: auto picks on a machine.
FLOAT32, BFLOAT16 = "train.precision=float32", "train.precision=mixed_bfloat16"
KNOBS = {
    "reference (float32, default threads, 2 cores)": ({}, [FLOAT32], None),
    "mixed_bfloat16": ({}, [BFLOAT16], None),
    "XLA (train.jit_compile=true)": ({}, [FLOAT32, "train.jit_compile=true"], None),
    "TF_NUM_INTRAOP_THREADS=1": ({"TF_NUM_INTRAOP_THREADS": "1"}, [FLOAT32], None),
    "TF_NUM_INTEROP_THREADS=1": ({"TF_NUM_INTEROP_THREADS": "1"}, [FLOAT32], None),
    "one core (taskset)": ({}, [FLOAT32], 1),
}


def knobs(args: argparse.Namespace) -> None:
    """Which speed knobs win: the quick model's train step under each setting, side by side.

        python -m benchmarks knobs --out benchmarks/results/knobs.json

    Runs ``python -m benchmarks throughput --train-only`` once per setting,
    one after the other, each in a fresh process (thread settings are read
    when TensorFlow starts): the reference (float32, TensorFlow's default
    thread pools, both cores), ``mixed_bfloat16`` (bfloat16 matmuls, which
    this CPU's AMX units run), XLA (``train.jit_compile``), one intra-op
    thread, one inter-op thread, and one core. All at one batch size
    (``--batch-size``, default 64) so that only the knob changes. Prints the
    JSON and a Markdown table: ms per step, target pieces per second and the
    ratio to the reference.

    XLA compiles the step once per batch shape. The pipeline pads each batch
    to its own longest sentence, so shapes keep changing and early steps are
    mostly compilation; ``--warmup`` steps are left out of the timing for
    every row.
    """
    names = [n.strip() for n in args.settings.split(";")] if args.settings else list(KNOBS)
    unknown = [n for n in names if n not in KNOBS]
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; known: {'; '.join(KNOBS)}")
    rows = []
    all_cores = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            env_extra, overrides, cores = KNOBS[name]
            out = Path(tmp) / "row.json"
            command = [
                sys.executable,
                "-m",
                "benchmarks",
                "throughput",
                "--preset",
                args.preset,
                "--train-only",
                "--warmup",
                str(args.warmup),
                "--steps",
                str(args.steps),
                "--out",
                str(out),
                f"train.batch_size={args.batch_size}",
                *overrides,
            ]
            pin = (lambda cores=cores: os.sched_setaffinity(0, set(all_cores[:cores]))) if cores else None
            print(f"[knobs] {name}", file=sys.stderr, flush=True)
            subprocess.run(
                command,
                check=True,
                stdout=subprocess.DEVNULL,
                env={**os.environ, **env_extra},
                preexec_fn=pin,
                cwd=REPO,
            )
            result = json.loads(out.read_text(encoding="utf-8"))
            rows.append(
                {
                    "setting": name,
                    "ms_per_step": result["train_ms_per_step"],
                    "target_tokens_per_s": result["train_target_tokens_per_s"],
                }
            )
    reference = rows[0]["target_tokens_per_s"]
    for row in rows:
        row["speed_vs_first"] = round(row["target_tokens_per_s"] / reference, 3)
    emit(
        {
            "preset": args.preset,
            "batch_size": args.batch_size,
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "machine": machine(),
            "rows": rows,
        },
        args.out,
    )
    print_table(
        [f"setting (batch {args.batch_size})", "ms per step", "target pieces/s", "vs first row"],
        [[r["setting"], r["ms_per_step"], f"{r['target_tokens_per_s']:,.0f}", r["speed_vs_first"]] for r in rows],
    )


# --- scaling --------------------------------------------------------------------------------

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

    from translate.plotting import save_png

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
    save_png(figure, path, dpi=110)  # atomic: a plot is whole or as it was
    plt.close(figure)


def scaling(args: argparse.Namespace) -> None:
    """How cost grows with batch size and sentence length, as JSON and three plots.

        python -m benchmarks scaling --preset quick --out benchmarks/results/scaling.json

    Writes ``scaling_train_batch.png``, ``scaling_decode_length.png`` and
    ``scaling_decode_batch.png`` beside ``--out``:

    1. **Training target pieces per second against batch size** (16 to 256):
       the compiled train step of the preset's model over batches of the
       built-in corpus (``throughput``'s loop, ``harness.measure_training``).
    2. **Greedy decoding latency against source length** (5 to 200 pieces,
       one batch of ``--length-batch`` sentences): random source ids of
       exactly that length through the preset's model, untrained, with the
       output length pinned (``--steps``) so that only the source length
       changes, and again with the output as long as the preset allows
       (``1.5 * source + 10``). The encoder and the context/score sums are
       linear in the source length; with the output growing too, the
       attention's source x target term makes the curve bend upwards. A
       linear fit of the pinned curve is reported (its R^2 says how straight
       it is).
    3. **Greedy decoding latency against batch size** (1 to 256) at a fixed
       source length and output length.

    The model is untrained: its outputs never stop early, so the number of
    steps is what the limits say, and the cost per step is the same as for a
    trained model of the same shape.
    """
    train_batches = [int(b) for b in args.train_batches.split(",")]
    source_lengths = [int(n) for n in args.source_lengths.split(",")]
    decode_batches = [int(b) for b in args.decode_batches.split(",")]

    import keras
    import tensorflow as tf

    from translate.model import build_models

    with tempfile.TemporaryDirectory() as tmp:
        config, prepared = prepare_split(args.preset, tmp=tmp)
        report = {
            "preset": args.preset,
            "machine": machine(),
            "tensorflow": tf.__version__,
            "cores": len(os.sched_getaffinity(0)),
        }
        train = []
        for batch in train_batches:
            batch_config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=batch))
            result, _ = measure_training(batch_config, prepared, warmup=5, steps=args.train_steps)
            train.append(
                {
                    "batch_size": batch,
                    "target_tokens_per_s": result["train_target_tokens_per_s"],
                    "ms_per_step": result["train_ms_per_step"],
                }
            )
            print(
                f"[scaling] train batch {batch}: {result['train_target_tokens_per_s']:,.0f} pieces/s",
                file=sys.stderr,
                flush=True,
            )
    report["train_by_batch"] = train

    keras.utils.set_random_seed(config.train.seed)
    vocab = config.data.tgt_vocab_size
    models = build_models(config.model, config.data.src_vocab_size, vocab)
    cap = max(source_lengths) * 2 + 10
    pinned = dataclasses.replace(
        config.decode, max_length_ratio=0.0, max_length_offset=args.steps, max_length_cap=args.steps
    )
    grown = dataclasses.replace(config.decode, max_length_cap=cap)
    by_length = []
    for n in source_lengths:
        fixed_seconds, fixed_steps = time_search(models, pinned, args.length_batch, n, vocab, args.repeats)
        grown_seconds, grown_steps = time_search(models, grown, args.length_batch, n, vocab, args.repeats)
        by_length.append(
            {
                "source_pieces": n,
                "pinned_steps": fixed_steps,
                "pinned_ms": round(1000 * fixed_seconds, 2),
                "grown_steps": grown_steps,
                "grown_ms": round(1000 * grown_seconds, 2),
                "grown_ms_per_step": round(1000 * grown_seconds / grown_steps, 3),
            }
        )
        print(
            f"[scaling] source {n}: {1000 * fixed_seconds:.1f} ms at {fixed_steps} steps, "
            f"{1000 * grown_seconds:.1f} ms at {grown_steps} steps",
            file=sys.stderr,
            flush=True,
        )
    report["decode_by_source_length"] = {
        "batch_size": args.length_batch,
        "rows": by_length,
        "pinned_fit_ms": linear_fit(source_lengths, [r["pinned_ms"] for r in by_length]),
        "grown_ms_per_step_fit": linear_fit(source_lengths, [r["grown_ms_per_step"] for r in by_length]),
    }
    by_batch = []
    for batch in decode_batches:
        seconds, steps = time_search(models, pinned, batch, args.batch_source, vocab, args.repeats)
        by_batch.append(
            {
                "batch_size": batch,
                "steps": steps,
                "ms": round(1000 * seconds, 2),
                "sentences_per_s": round(batch / seconds, 1),
            }
        )
    report["decode_by_batch"] = {"source_pieces": args.batch_source, "rows": by_batch}

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(
        [r["batch_size"] for r in train],
        {"training": [r["target_tokens_per_s"] for r in train]},
        "batch size (sentences)",
        "target pieces / s",
        f"Training throughput, {args.preset} preset",
        out.with_name("scaling_train_batch.png"),
        logx=True,
    )
    plot(
        source_lengths,
        {
            f"output pinned at {args.steps} pieces": [r["pinned_ms"] for r in by_length],
            "output 1.5 x source + 10": [r["grown_ms"] for r in by_length],
        },
        "source length (pieces)",
        "ms per batch",
        f"Greedy decoding, batch {args.length_batch}",
        out.with_name("scaling_decode_length.png"),
    )
    plot(
        decode_batches,
        {"latency": [r["ms"] for r in by_batch]},
        "batch size (sentences)",
        "ms per batch",
        f"Greedy decoding, {args.batch_source} source / {args.steps} output pieces",
        out.with_name("scaling_decode_batch.png"),
        logx=True,
    )
    emit(report, out)


# --- attention: Bahdanau against Luong dot ----------------------------------------------------

# Each variant states its precision (FLOAT32, BFLOAT16 above).
ATTENTION_VARIANTS = {
    "luong_dot": ["model.attention=luong_dot", FLOAT32],
    "bahdanau": ["model.attention=bahdanau", FLOAT32],
    # The same model with its loop as a tf.while_loop of TensorFlow ops, not the compiled kernel.
    "bahdanau, tf.while_loop": ["model.attention=bahdanau", FLOAT32],
    # The paper's query, s_{t-1} alone (the quick preset's query also reads y_{t-1}).
    "bahdanau, query s_{t-1}": ["model.attention=bahdanau", "model.attention_query_input=false", FLOAT32],
    # Mixed precision (what train.precision: auto trains in on a CPU with AMX); measured against
    # "luong_dot, mixed_bfloat16".
    "luong_dot, mixed_bfloat16": ["model.attention=luong_dot", BFLOAT16],
    "bahdanau, mixed_bfloat16": ["model.attention=bahdanau", BFLOAT16],
}
PRECISION_SUFFIX = ", mixed_bfloat16"


def luong_dot_of(name: str) -> str:
    """The Luong dot variant a variant's step is measured against: the one of its own precision."""
    return "luong_dot" + (PRECISION_SUFFIX if name.endswith(PRECISION_SUFFIX) else "")


def attention_training(args, tmp: str) -> dict:
    """Median ms per train step of each variant (``translate train``'s model), in turns."""
    from translate.model import keep_bahdanau_loops_in_tensorflow

    contestants, run_dir, batches = {}, args.run_dir, None
    for name, overrides in ATTENTION_VARIANTS.items():
        if name not in args.variants:
            continue
        config, prepared = prepare_split(
            args.preset, [*overrides, f"model.cell={args.cell}", *args.set], run_dir=run_dir, tmp=tmp
        )
        run_dir = str(prepared.run_dir)  # prepared once, for every variant
        run, data = build_training(config, prepared)
        if name.endswith("tf.while_loop"):
            keep_bahdanau_loops_in_tensorflow(run.models.training)  # before the train step is traced, below
        if batches is None:  # every variant trains on the same batches
            batches = list(data.take(args.warmup + args.steps * args.rounds))
        contestants[name] = (train_step(run.models.training), batches)
    result = train_in_turns(contestants, args.steps, args.rounds, args.warmup)
    ms = result["ms_per_step"]
    return {
        "batch_size": int(batches[0][0][0].shape[0]),
        **result,
        "ratio_to_luong_dot": {
            name: round(ms[name] / ms[luong_dot_of(name)], 3) for name in ms if luong_dot_of(name) in ms
        },
    }


def attention_decoding(args, tmp: str) -> dict:
    """Sentences/s of each run's greedy and beam-5 exports at batch 64, in turns."""
    import translate
    from translate.export import export
    from translate.inference import TranslationGraph
    from translate.prepare import read_split
    from translate.training import load_run

    translators, sources = {}, None
    # Exporting traces both searches, the largest cost here: names that give the same run folder share
    # its two exports (and so time the same SavedModels).
    loaded: dict[Path, dict[str, Callable[[list[str]], list[str]]]] = {}
    for spec in args.decode:
        name, _, run_dir = spec.partition("=")
        if not run_dir:
            raise SystemExit(f"--decode takes NAME=RUN_DIR, got {spec!r}")
        if sources is None:
            sources = [s for s, _ in read_split(Path(run_dir), "test")][: args.decode_sentences]
        key = Path(run_dir).resolve()
        if key not in loaded:
            run = load_run(run_dir)
            loaded[key] = {}
            for search, beam in (("greedy", 1), ("beam5", 5)):
                # One loaded run, two searches over its models (as compare's `ours` exports them).
                decode = dataclasses.replace(run.config.decode, beam_size=beam, alpha=0.0 if beam == 1 else 0.6)
                graph = TranslationGraph(run.models, run.src_model, run.tgt_model, decode)
                path = export(
                    graph,
                    dataclasses.replace(run.config, decode=decode),
                    run.src_model,
                    run.tgt_model,
                    tmp,
                    f"run{len(loaded)}-{search}",
                )
                loaded[key][search] = translate.load(path)
        for search, translator in loaded[key].items():
            translators[f"{name} {search}"] = translator
    # One untimed pass each (the first trace of each batch shape), then one pass a turn.
    turns = take_turns(
        {name: {"decode": lambda t=t: decode_passes(t, sources, args.decode_batch)} for name, t in translators.items()},
        args.decode_rounds,
        warmup_turns=1,
        label="attention decoding",
    )["decode"]
    rates = {name: [len(sources) / turn["seconds"] for turn in turns[name]] for name in translators}
    medians = {name: median(values) for name, values in rates.items()}
    ratios = {}
    for name, value in medians.items():
        model, search = name.split(" ")
        if model != "luong_dot" and f"luong_dot {search}" in medians:
            ratios[name] = round(value / medians[f"luong_dot {search}"], 3)
    return {
        "batch_size": args.decode_batch,
        "sentences": len(sources),
        "runs": dict(s.partition("=")[::2] for s in args.decode),
        "sentences_per_s": medians,
        "rounds_sentences_per_s": {n: [round(v, 1) for v in vs] for n, vs in rates.items()},
        "ratio_to_luong_dot": ratios,
    }


def attention(args: argparse.Namespace) -> None:
    """Bahdanau attention against Luong dot at the same sizes: training step and SavedModel decoding, in turns.

        taskset -c 0 python -m benchmarks attention --out benchmarks/results/attention_speed_gru.json
        taskset -c 0 python -m benchmarks attention --run-dir /tmp/quick --cell lstm
        taskset -c 0 python -m benchmarks attention --decode bahdanau=runs/b luong_dot=runs/l

    Training: builds the preset's model (quick: batch 16) once per variant,
    all with the same sizes and the same batches, and runs their compiled
    train steps (``translate train``'s model class) in turns, ``--rounds``
    rounds of ``--steps`` steps (``harness.train_in_turns``), so that the
    machine's drift hits every variant alike; the median round counts.
    Variants: ``luong_dot`` (attention after Keras's fused RNN) and
    ``bahdanau`` (attention inside the recurrence, the hoisted loop of
    ``translate/bahdanau.py``), in float32, and on request the same two
    in ``mixed_bfloat16`` (each measured against Luong dot in its own
    precision). The plain ``tf.scan`` of Keras cells that the hoisted loop
    replaced is not raced here: under ``train_on_batch``'s static batch size
    it stops in a oneDNN error on this machine.

    Decoding (``--decode NAME=RUN_DIR ...``, trained run folders): exports
    each run folder twice (greedy and beam 5, as ``ours`` does; names that
    give the same folder share its exports), loads the
    SavedModels with ``translate.load``, and times them in turns on the test
    split at batch 64: ``--decode-rounds`` rounds of one pass each, median
    round.

    Pin it to one core (``taskset -c N``): the preset's quick model is what
    one core of a 2-core laptop trains.
    """
    report = {
        "machine": machine(),
        "preset": args.preset,
        "cell": args.cell,
        "overrides": args.set,
        "steps": args.steps,
        "rounds": args.rounds,
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.decode:
            report["decode_rounds"] = args.decode_rounds
            report["decoding"] = decoding = attention_decoding(args, tmp)
            print_table(
                ["export", "sentences/s", "x luong_dot"],
                [
                    [name, rate, decoding["ratio_to_luong_dot"].get(name, "")]
                    for name, rate in decoding["sentences_per_s"].items()
                ],
            )
        else:
            report["training"] = training = attention_training(args, tmp)
            print_table(
                ["variant", "ms/step", "sentences/s", "x luong_dot"],
                [
                    [name, ms, training["sentences_per_s"][name], training["ratio_to_luong_dot"].get(name, "")]
                    for name, ms in training["ms_per_step"].items()
                ],
            )
    emit(report, args.out)


# --- pipeline and synthetic-corpus: at scale ----------------------------------------------------

SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "da", "ve", "chi", "gu", "ba", "fe", "zo", "le"]


def write_synthetic_corpus(out: str | Path, pairs: int, seed: int = 1) -> None:
    """``pairs`` lines of ``source<TAB>target`` into ``out`` (see :func:`synthetic_corpus`)."""
    import numpy as np
    from tqdm import tqdm

    from translate.atomic import atomic_path

    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 4, size=20_000)
    source_words = ["".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), size=n)) for n in lengths]
    target_words = [w[::-1] + "s" for w in source_words]
    zipf = 1.0 / np.arange(1, len(source_words) + 1)
    zipf /= zipf.sum()
    block = 100_000
    previous: list[str] = []
    # A new file, written whole or not at all: an existing ``out`` is never replaced (FileExistsError).
    with atomic_path(out, replace=False) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for start in tqdm(range(0, pairs, block), unit=" blocks", file=sys.stderr):
            n = min(block, pairs - start)
            lengths = rng.integers(4, 41, size=n)
            words = rng.choice(len(source_words), size=int(lengths.sum()), p=zipf)
            drops = rng.random(len(words)) < 0.1
            lines = []
            offset = 0
            for length in lengths:
                ids = words[offset : offset + length]
                kept = ids[~drops[offset : offset + length]]
                offset += length
                source = " ".join(source_words[i] for i in ids).capitalize() + "."
                target = " ".join(target_words[i] for i in kept).capitalize() + "."
                lines.append(f"{source}\t{target}\n")
            repeats = rng.integers(0, n, size=n // 200)
            for i in repeats:
                if previous:
                    lines[i] = previous[i % len(previous)]
            previous = lines[:1000]
            handle.writelines(lines)


def synthetic_corpus(args: argparse.Namespace) -> None:
    """Writes a synthetic parallel corpus as TSV, for ``pipeline`` (never committed).

        python -m benchmarks synthetic-corpus OUT.tsv --pairs 10000000

    Each line is ``source<TAB>target``: 4-40 random "words" drawn from a
    Zipf-like vocabulary of made-up syllables; the target is a deterministic
    respelling of the source with some words dropped or repeated, so lengths
    differ a little as in real translations. About 1 in 200 pairs repeats an
    earlier one, so the duplicate filter has work to do. Deterministic for a
    given ``--seed``.
    """
    try:
        write_synthetic_corpus(args.out, args.pairs, args.seed)
    except FileExistsError:
        raise SystemExit(f"{args.out} exists: name a new file") from None


def run_child(args: list[str], log_dir: Path) -> tuple[float, float, str]:
    """Runs a Python child from the repository root; returns (seconds, its peak RSS in MB, its stdout)."""
    started = time.monotonic()
    with open(log_dir / "child.out", "w+") as out, open(log_dir / "child.err", "w+") as err:
        child = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{err.read()[-5000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def time_pipeline(overrides: list[str], batches: int, model_steps: int) -> dict:
    """(In the child.) Pipeline batches/s alone, then the model's train steps/s on the same batches."""
    import keras

    from translate.config import load_config
    from translate.prepare import load_prepared
    from translate.training import build_run, compile_for_training, training_dataset

    config = load_config("quick", overrides=overrides)
    keras.utils.set_random_seed(config.train.seed)
    prepared = load_prepared(config)
    run = build_run(config, prepared.run_dir, prepared.src_model, prepared.tgt_model)
    iterator = iter(training_dataset(run, config, prepared))
    for _ in range(20):  # fill the shuffle buffer and warm up
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    pipeline_rate = batches / (time.perf_counter() - started)

    compile_for_training(run, config)
    model_batches = [next(iterator) for _ in range(model_steps + 5)]
    timed = train_loop(train_step(run.models.training), model_batches, steps=model_steps, warmup_steps=5)
    model_rate = model_steps / timed["timed_seconds"]
    return {
        "pipeline_batches_per_s": round(pipeline_rate, 1),
        "model_batches_per_s": round(model_rate, 2),
        "pipeline_over_model": round(pipeline_rate / model_rate, 1),
        "batch_size": config.train.batch_size,
    }


def pipeline(args: argparse.Namespace) -> None:
    """Scale: prepare and the tf.data pipeline on a synthetic corpus of millions of pairs.

        python -m benchmarks pipeline --pairs 10000000 --work /tmp/pipeline-bench \\
            --out benchmarks/results/pipeline.json

    1. makes the corpus as ``synthetic-corpus`` does (skipped if the file is there);
    2. runs ``python -m translate prepare`` on it in a child process and
       records its wall time and peak resident memory;
    3. in another child process, times the input pipeline alone (batches per
       second from the prepared train files, through tokenization, bucketing
       and padding) and then the quick model's train step on batches of the
       same pipeline, and records that process's peak memory.

    Prints one JSON object; ``pipeline_over_model`` is how many times faster
    the pipeline delivers batches than the model consumes them.
    """
    if args.child:
        print(json.dumps(time_pipeline(args.child, args.batches, args.model_steps)))
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / f"synthetic-{args.pairs}.tsv"
    if not corpus.is_file():
        write_synthetic_corpus(corpus, args.pairs)
    run_dir = work / "run"
    # The quick preset's model and vocabulary on the synthetic corpus.
    overrides = [f"data.corpus=tsv:{corpus}", f"run_dir={run_dir}"]
    prepare_s, prepare_mb, _ = run_child(["-m", "translate", "prepare", "--preset", "quick", *overrides], work)
    stats = json.loads((run_dir / "stats.json").read_text(encoding="utf-8"))
    _, pipeline_mb, out = run_child(
        [
            "-m",
            "benchmarks",
            "pipeline",
            "--batches",
            str(args.batches),
            "--model-steps",
            str(args.model_steps),
            "--child",
            *overrides,
        ],
        work,
    )
    emit(
        {
            "machine": machine(),
            "corpus_pairs": args.pairs,
            "corpus_bytes": corpus.stat().st_size,
            "prepare_seconds": round(prepare_s, 1),
            "prepare_peak_rss_mb": round(prepare_mb, 1),
            "prepared_pairs": stats["pairs"],
            "removed": stats["pairs_removed"],
            "pipeline_process_peak_rss_mb": round(pipeline_mb, 1),
            **json.loads(out.strip().splitlines()[-1]),
        },
        args.out,
    )


# --- the command line ---------------------------------------------------------------------


def register(commands) -> None:
    p = subcommand(
        commands,
        "throughput",
        throughput,
        "training tokens/s and greedy decoding sentences/s (throughput.json)",
        aliases=["speed"],
    )
    p.add_argument("--preset", default="quick")
    p.add_argument("--model", help="an export to time decoding on (default: export the untrained model)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-only", action="store_true", help="time training only, no decoding")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (train.batch_size=32 ...)")

    p = subcommand(commands, "knobs", knobs, "the train step under each speed knob (knobs.json)")
    p.add_argument("--preset", default="quick")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--settings", help="names from the table, separated by ';' (default: all)")
    p.add_argument("--out", help="also write the JSON here")

    p = subcommand(
        commands,
        "scaling",
        scaling,
        "cost against batch size and sentence length (scaling.json, scaling_*.png)",
        aliases=["scale"],
    )
    p.add_argument("--preset", default="quick")
    p.add_argument("--train-steps", type=int, default=20, help="timed training steps per batch size")
    p.add_argument("--length-batch", type=int, default=64, help="sentences per batch for the length curve")
    p.add_argument("--steps", type=int, default=50, help="output length while the source length varies")
    p.add_argument("--batch-source", type=int, default=30, help="source pieces for the batch curve")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per point; the median counts")
    p.add_argument("--train-batches", default=",".join(map(str, TRAIN_BATCHES)))
    p.add_argument("--source-lengths", default=",".join(map(str, SOURCE_LENGTHS)))
    p.add_argument("--decode-batches", default=",".join(map(str, DECODE_BATCHES)))
    p.add_argument("--out", default=str(RESULTS / "scaling.json"), help="the JSON; plots go beside it")

    p = subcommand(
        commands,
        "attention",
        attention,
        "Bahdanau against Luong dot, training step and decoding, "
        "in turns (attention_speed_*.json, attention_decoding.json)",
    )
    p.add_argument("--preset", default="quick")
    p.add_argument("--run-dir", help="a prepared run folder of the preset's corpus (default: prepare one)")
    p.add_argument("--steps", type=int, default=20, help="training steps per round")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--cell", default="gru", choices=["gru", "lstm"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    float32_variants = [name for name in ATTENTION_VARIANTS if not name.endswith(PRECISION_SUFFIX)]
    p.add_argument("--variants", nargs="+", default=float32_variants, choices=list(ATTENTION_VARIANTS))
    p.add_argument(
        "--decode",
        nargs="*",
        default=[],
        metavar="NAME=RUN_DIR",
        help="trained run folders whose exports to time (instead of training steps)",
    )
    p.add_argument("--decode-rounds", type=int, default=5)
    p.add_argument("--decode-batch", type=int, default=64)
    p.add_argument("--decode-sentences", type=int, default=256, help="test sentences per pass")
    p.add_argument("--out", help="also write the JSON here")

    p = subcommand(commands, "pipeline", pipeline, "prepare and the input pipeline on millions of synthetic pairs")
    p.add_argument("--pairs", type=int, default=10_000_000)
    p.add_argument("--work", default="/tmp/translate-pipeline-bench", help="corpus and run folder go here")
    p.add_argument("--batches", type=int, default=2000, help="pipeline batches to time")
    p.add_argument("--model-steps", type=int, default=30, help="model train steps to time")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--child", nargs="*", help=argparse.SUPPRESS)

    p = subcommand(commands, "synthetic-corpus", synthetic_corpus, "write a synthetic parallel corpus (TSV)")
    p.add_argument("out")
    p.add_argument("--pairs", type=int, default=10_000_000)
    p.add_argument("--seed", type=int, default=1)
