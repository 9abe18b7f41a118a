"""Ours against the TensorFlow tutorial's model (``benchmarks/baselines/tf_tutorial.py``), side by side on one
machine, in one run: ``compare``, and its parts ``ours`` (our side alone) and ``race`` (the race in turns alone).

Absolute times on a shared machine are noise; ratios measured in the same run
are not (issue 9). ``compare`` runs each side in its own process, one after
the other with the same training budget, then the four sides again in turns
(``race``), each round's contestants within seconds of one another.

Threads. TensorFlow's default splits every op over all cores (intra-op) and
runs independent ops side by side (inter-op). A decoding step is a chain of
small ops; one intra-op thread per op, with our exports' independent loops
(``decode.shards``) side by side, keeps both cores busier. Our runs use
that setting (``--ours-threads serial_ops``: ``TF_NUM_INTRAOP_THREADS=1``,
``TF_NUM_INTEROP_THREADS`` = cores). The baseline trains and decodes under
TensorFlow's default, then is probed under ``serial_ops``; every baseline
figure in the ratios is the better of the two, so neither setting is
chosen against it.

Target tokens are words (with punctuation) for the baseline and SentencePiece
pieces for ours, so token rates compare throughput per unit each model
actually computes, sentences per second compare the work done.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import (
    DECODE_SENTENCES,
    REPO,
    RESULTS,
    THREADS,
    Worker,
    build_training,
    command_line,
    decode_passes,
    emit,
    machine,
    peak_rss_mb,
    prepare_split,
    serve,
    subcommand,
    take_turns,
    thread_env,
    time_decoding,
    train_for_budget,
    train_step,
    train_turn,
)

SIDES = ("baseline", "baseline_serial_ops", "ours_equal", "ours_quick")
HEADERS = {
    "baseline": "TF tutorial (baseline)",
    "baseline_serial_ops": "TF tutorial, serial ops (probe)",
    "ours_equal": "ours, equal size",
    "ours_quick": "ours, quick preset",
}
# A probe trains minutes, not the budget: its quality and epochs mean nothing.
PROBE_ONLY_SPEED = ("epochs", "BLEU", "chrF")
# Figures where the baseline counts with the better of its two settings.
SPEEDS = (
    "train_sentences_per_s",
    "train_target_tokens_per_s",
    "greedy_sentences_per_s_batch_1",
    "greedy_tokens_per_s_batch_1",
    "greedy_sentences_per_s_batch_64",
    "greedy_tokens_per_s_batch_64",
)
BEAM = 5

# (event of the race in turns, label)
RACE_ROWS = [
    ("train", "training"),
    ("greedy_b1", "greedy, batch 1"),
    ("greedy_b64", "greedy, batch 64"),
    ("beam5_b64", "beam 5, batch 64"),
]
# (label, key in the baseline's report, key in ours, digits)
ROWS = [
    ("parameters", "parameters", "parameters", 0),
    ("vocabulary (source / target)", None, None, 0),
    ("training sentences/s", "train_sentences_per_s", "train_sentences_per_s", 1),
    ("training target tokens/s", "train_target_tokens_per_s", "train_target_tokens_per_s", 0),
    ("epochs in the budget", "epochs", "epochs", 2),
    ("greedy sentences/s, batch 1", "greedy_sentences_per_s_batch_1", "greedy_sentences_per_s_batch_1", 1),
    ("greedy tokens/s, batch 1", "greedy_tokens_per_s_batch_1", "greedy_tokens_per_s_batch_1", 0),
    ("greedy sentences/s, batch 64", "greedy_sentences_per_s_batch_64", "greedy_sentences_per_s_batch_64", 1),
    ("greedy tokens/s, batch 64", "greedy_tokens_per_s_batch_64", "greedy_tokens_per_s_batch_64", 0),
    ("beam 5 sentences/s, batch 64", None, "beam5_sentences_per_s_batch_64", 1),
    ("beam 5 tokens/s, batch 64", None, "beam5_tokens_per_s_batch_64", 0),
    ("test BLEU, greedy (cased)", "test_bleu_cased", "greedy_test_bleu_cased", 2),
    ("test chrF, greedy (cased)", "test_chrf_cased", "greedy_test_chrf_cased", 2),
    ("test BLEU, greedy (lowercased)", "test_bleu_lowercased", None, 2),
    ("test BLEU, beam 5 (cased)", None, "beam5_test_bleu_cased", 2),
    ("peak memory, MiB", "peak_rss_mb", "peak_rss_mb", 0),
]
BASELINES = ("baseline", "baseline_serial_ops", "baseline_bfloat16")
# Ratios of the race: (event, our contestant, what it is measured against: the baselines, or another event of ours)
RATIOS = {
    "train_speedup": ("train", "ours_equal", BASELINES),
    "train_speedup_float32_baseline": ("train", "ours_equal", ("baseline", "baseline_serial_ops")),
    "greedy_speedup_b64": ("greedy_b64", "ours_quick", BASELINES),
    "greedy_speedup_b1": ("greedy_b1", "ours_quick", BASELINES),
    "beam5_over_greedy_b64": ("beam5_b64", "ours_quick", "greedy_b64"),
}


# --- compare ----------------------------------------------------------------------------


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def best_baseline(results: dict[str, dict]) -> dict:
    """The baseline's report with each speed the better of its two thread settings."""
    best = dict(results["baseline"])
    probe = results.get("baseline_serial_ops") or {}
    for key in SPEEDS:
        if probe.get(key) is not None and (best.get(key) is None or probe[key] > best[key]):
            best[key] = probe[key]
    return best


def summarize(results: dict[str, dict]) -> dict:
    """The headline ratios of the separate processes' reports (see :func:`compare`)."""
    base, equal, quick = best_baseline(results), results["ours_equal"], results["ours_quick"]
    return {
        "train_speedup": ratio(equal["train_sentences_per_s"], base["train_sentences_per_s"]),
        "train_speedup_quick": ratio(quick["train_sentences_per_s"], base["train_sentences_per_s"]),
        "greedy_speedup_b64": ratio(quick["greedy_sentences_per_s_batch_64"], base["greedy_sentences_per_s_batch_64"]),
        "greedy_speedup_b64_equal": ratio(
            equal["greedy_sentences_per_s_batch_64"], base["greedy_sentences_per_s_batch_64"]
        ),
        "greedy_speedup_b1": ratio(quick["greedy_sentences_per_s_batch_1"], base["greedy_sentences_per_s_batch_1"]),
        "beam5_over_greedy_b64": ratio(
            quick["beam5_sentences_per_s_batch_64"], quick["greedy_sentences_per_s_batch_64"]
        ),
    }


def _cell(report: dict, key: str | None, digits: int) -> str:
    value = report.get(key) if key else None
    if value is None:
        return "–"
    return f"{value:,.0f}" if digits == 0 else f"{value:,.{digits}f}"


def race_table(turns: dict) -> list[str]:
    """The race in turns: each contestant's median sentences per second per event."""
    lines = [
        f"Race in turns ({turns['rounds']} rounds; sentences/s, the median round):",
        "",
        "| | " + " | ".join(HEADERS[side] for side in SIDES) + " |",
        "|---|" + "---:|" * len(SIDES),
    ]
    for event, label in RACE_ROWS:
        rates = turns["rates"].get(event, {})
        cells = [f"{rates[s]['sentences_per_s']:,.1f}" if s in rates else "–" for s in SIDES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def table(results: dict[str, dict], ratios: dict, separate: dict | None = None, turns: dict | None = None) -> str:
    """A Markdown table: one row per figure, one column per model; then the race in turns, when it ran,
    and the ratios of the separate processes beside the headline ones."""
    lines = ["| | " + " | ".join(HEADERS[side] for side in SIDES) + " |", "|---|" + "---:|" * len(SIDES)]
    for label, base_key, our_key, digits in ROWS:
        if label.startswith("vocabulary"):
            cells = [
                f"{results[s].get('src_vocab_size', '?')} / {results[s].get('tgt_vocab_size', '?')}"
                + (" words" if s.startswith("baseline") else " pieces")
                for s in SIDES
            ]
        else:
            cells = [
                (
                    "–"
                    if s == "baseline_serial_ops" and any(word in label for word in PROBE_ONLY_SPEED)
                    else _cell(results[s], base_key if s.startswith("baseline") else our_key, digits)
                )
                for s in SIDES
            ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    if turns:
        lines += [*race_table(turns), ""]
    lines.append(", ".join(f"{key} = {value}" for key, value in ratios.items()))
    if turns and separate:
        lines += [
            "",
            "The same ratios from the separate processes: "
            + ", ".join(f"{key} = {value}" for key, value in separate.items()),
        ]
    return "\n".join(lines)


def run_side(name: str, command: list[str], out: Path, threads: str = "default") -> dict:
    """Runs one side in its own process under a thread setting (:data:`harness.THREADS`;
    its output goes to stderr) and returns its JSON report."""
    print(f"[compare] {name} ({threads} threads): {' '.join(command)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=sys.stderr, cwd=REPO, env=thread_env(threads))
    report = json.loads(out.read_text(encoding="utf-8"))
    report["process_seconds"] = round(time.perf_counter() - started, 1)
    report["threads"] = {"setting": threads, **THREADS[threads]}
    return report


def baseline_options(args: argparse.Namespace) -> list[str]:
    """The baseline's model and decoding options, the same in its separate run and in the race."""
    return [
        "--units",
        str(args.units),
        "--batch-size",
        str(args.batch_size),
        "--max-length",
        str(args.max_length),
        "--seed",
        str(args.seed),
    ]


def compare(args: argparse.Namespace) -> None:
    """Ours against the TensorFlow tutorial's model, side by side on one machine, in one run.

        python -m benchmarks compare                 # prepares bible:en-es (quick preset) in a temp folder
        python -m benchmarks compare --run-dir runs/quick --train-minutes 15

    On one prepared split (``--run-dir``, or a fresh ``--preset`` preparation),
    one after the other, each in its own process (so each has its own memory
    peak), with the same training budget:

    1. ``baseline``: ``python -m benchmarks baseline``
       (``benchmarks/baselines/tf_tutorial.py``), the TensorFlow tutorial's
       model (word-level, units ``--units``) and its greedy loop;
    2. ``ours_equal``: ``python -m benchmarks ours`` with the quick preset at
       the baseline's sizes: GRU, embedding, encoder (per direction), decoder
       and attention units all ``--units``, attention ``--equal-attention``,
       the baseline's batch size. The default, ``bahdanau``, is our
       default model; ``luong_general`` is the tutorial's score: its
       ``MultiHeadAttention(num_heads=1)`` scores
       ``(W_q s_t)^T (W_k h_j) / sqrt(d) = s_t^T W_a h_j`` with
       ``W_a = W_q^T W_k / sqrt(d)``, Luong's *general* score, after the
       decoder RNN. It trains in the preset's precision (``auto``: mixed
       bfloat16 on a CPU with AMX, ``translate/precision.py``);
    3. ``ours_quick``: ``python -m benchmarks ours`` with the quick preset as it is;
    4. ``baseline_serial_ops``: the baseline again under the other thread
       setting, for ``--probe-minutes`` only: its training rate, and its
       decoding, whose cost does not depend on the weights (its loop always
       runs ``--max-length`` steps).

    Both sides train with the same timed loop (``harness.train_for_budget``)
    and are timed decoding the same test sentences in corpus order: the
    baseline's traced loop (always ``--max-length`` steps) against our
    exported SavedModels loaded with ``translate.load`` (greedy at batch 1
    and 64, beam 5 at batch 64).

    Then the race in turns (``python -m benchmarks race``; ``--rounds``, 0 to
    skip): the four sides again (and the bfloat16 probe), each in its own process under its thread
    setting, the baseline with its trained weights and ours_quick with its
    exports, timed one after another, round after round
    (``--train-turn-seconds`` of training for ours_equal and the baseline,
    ``--decode-passes`` passes of decoding for ours_quick and the baseline).
    The sides above run minutes apart, and the machine's speed drifts over
    such minutes; in the race each round's contestants run within
    seconds of one another, so each round gives a ratio free of that drift,
    and the median round's counts.

    Prints the JSON on stdout and a Markdown table on stderr, and writes both:
    ``--out`` (default ``benchmarks/results/compare.json``) and the table
    beside it (``.md``). The headline ratios, from the race (from the separate
    processes with ``--rounds 0``; both are kept, ``race`` and
    ``separate_processes``):

    * ``train_speedup``: ours_equal / baseline, training sentences per second
      ("baseline" here and below: its better figure of the two thread
      settings; in the race, the best in each round of the two and of
      ``baseline_bfloat16``, the tutorial's model built under Keras's
      ``mixed_bfloat16`` policy, training only, so that a precision ours
      trains in is no advantage the baseline was denied);
    * ``train_speedup_float32_baseline`` (race only): the same against the
      tutorial as it trains, in float32;
    * ``greedy_speedup_b64``: ours_quick (the model we ship) / baseline,
      greedy decoding sentences per second at batch 64;
    * ``beam5_over_greedy_b64``: ours_quick beam 5 / ours_quick greedy,
      sentences per second at batch 64.
    """
    with tempfile.TemporaryDirectory(prefix="compare-") as work:
        tmp = Path(work)
        run_dir = Path(args.run_dir) if args.run_dir else prepare_split(args.preset, tmp=tmp)[1].run_dir
        shared = ["--run-dir", str(run_dir), "--warmup-steps", str(args.warmup_steps), "--repeats", str(args.repeats)]
        common = [*shared, "--minutes", str(args.train_minutes)]
        baseline = baseline_options(args)
        equal = [
            "model.cell=gru",
            f"model.attention={args.equal_attention}",
            f"model.embedding_dim={args.units}",
            f"model.encoder_units={args.units}",
            f"model.decoder_units={args.units}",
            f"model.attention_units={args.units}",
            f"train.batch_size={args.batch_size}",
        ]
        benchmarks = [sys.executable, "-m", "benchmarks"]
        commands = {
            "baseline": [
                *benchmarks,
                "baseline",
                *common,
                *baseline,
                "--save-weights",
                str(tmp / "baseline.weights.h5"),
            ],
            "baseline_serial_ops": [*benchmarks, "baseline", *shared, "--minutes", str(args.probe_minutes), *baseline],
            "ours_equal": [
                *benchmarks,
                "ours",
                *common,
                "--preset",
                args.preset,
                "--label",
                "ours_equal",
                *(f"--set={o}" for o in [*args.set, *equal]),
            ],
            "ours_quick": [
                *benchmarks,
                "ours",
                *common,
                "--preset",
                args.preset,
                "--label",
                "ours_quick",
                "--keep-exports",
                str(tmp / "exports"),
                *(f"--set={o}" for o in args.set),
            ],
        }
        threads = {
            "baseline": "default",
            "baseline_serial_ops": "serial_ops",
            "ours_equal": args.ours_threads,
            "ours_quick": args.ours_threads,
        }
        results = {}
        for side in SIDES:
            out = tmp / f"{side}.json"
            results[side] = run_side(side, [*commands[side], "--out", str(out)], out, threads[side])
        separate = summarize(results)
        turns = None
        if args.rounds > 0:
            turns = race(
                args,
                str(run_dir),
                baseline_weights=str(tmp / "baseline.weights.h5"),
                equal_set=equal,
                quick_exports=[f"{name}={tmp / 'exports' / name}" for name in ("greedy", f"beam{BEAM}")],
            )
    # The headline ratios: the race's, where it ran.
    ratios = {**separate, **(turns["ratios"] if turns else {})}
    text = table(results, ratios, separate, turns)
    report = {
        "machine": machine(),
        "command": command_line(),
        "run_dir": str(run_dir) if args.run_dir else f"fresh --preset {args.preset} preparation",
        "train_minutes": args.train_minutes,
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        **ratios,
        "separate_processes": separate,
        "race": turns,
        **results,
        "table": text,
    }
    print(text, file=sys.stderr)
    emit(report, args.out)
    from translate import atomic

    atomic.write_text(Path(args.out).with_suffix(".md"), f"{report['machine']}; `{report['command']}`\n\n{text}\n")


# --- ours: our side of compare ------------------------------------------------------------


def ours(args: argparse.Namespace) -> None:
    """Our side of ``compare``: train for a time budget, then time the exported SavedModel.

        python -m benchmarks ours --run-dir runs/quick --preset quick --minutes 15 --out /tmp/ours.json
        python -m benchmarks ours --run-dir runs/quick --preset quick --set model.encoder_units=256 ...

    On a prepared run folder (``python -m translate prepare``; its data
    settings come from its ``stats.json``, so the split and the SentencePiece
    models are the folder's), with the preset and ``--set key=value``
    overrides for the rest:

    1. builds the model as ``translate train`` does (its training model
       class, precision policy, optimizer, loss and input pipeline) and runs
       its compiled train step over live batches for ``--minutes``, timed by
       ``harness.train_for_budget``, the loop that times the baseline too;
    2. exports the trained model twice, greedy (``decode.beam_size=1``) and
       with beam 5 (kept with ``--keep-exports``), and loads each with
       ``translate.load``, as a user would;
    3. scores both on the test split (Romans for the built-in Bible) with
       sacrebleu (cased, as ``translate evaluate`` does), and times greedy
       decoding at batch 1 and 64 and beam 5 at batch 64 with
       ``harness.time_decoding``. Generated tokens are the SentencePiece
       pieces of the output (re-encoded with the run's target model).

    Prints one JSON object; runs in its own process so ``peak_rss_mb`` is its own.
    """
    import keras
    import sentencepiece as spm
    import tensorflow as tf

    import translate
    from translate.evaluation import score
    from translate.export import export
    from translate.inference import TranslationGraph
    from translate.training import in_float32

    config, prepared = prepare_split(args.preset, args.set, run_dir=args.run_dir)
    m, t = config.model, config.train
    report = {
        "model": args.label,
        "machine": machine(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "run_dir": str(args.run_dir),
        "preset": args.preset,
        "overrides": args.set,
        "budget_minutes": args.minutes,
        "batch_size": t.batch_size,
        "cell": m.cell,
        "attention": m.attention,
        "embedding_dim": m.embedding_dim,
        "encoder_units": m.encoder_units,
        "decoder_units": m.decoder_units,
        "attention_units": m.attention_units,
        "max_pieces": config.data.max_pieces,
        "src_vocab_size": config.data.src_vocab_size,
        "tgt_vocab_size": config.data.tgt_vocab_size,
    }

    started = time.perf_counter()
    run, data = build_training(config, prepared)
    report["setup_seconds"] = round(time.perf_counter() - started, 2)
    training = train_for_budget(train_step(run.models.training), data, 60 * args.minutes, args.warmup_steps)
    report["parameters"] = int(run.models.training.count_params())
    report["train_pairs"] = prepared.pairs["train"]
    report.update(training)
    report["epochs"] = round(training["train_sentences"] / prepared.pairs["train"], 3)

    pairs = prepared.read("test")
    sources, references = [s for s, _ in pairs], [r for _, r in pairs]
    pieces = spm.SentencePieceProcessor(model_proto=prepared.tgt_model)

    def count_pieces(text: str) -> int:
        return len(pieces.encode(text))

    # Exported as train exports: rebuilt in float32 where the budget trained in mixed precision (a mixed
    # graph decodes in bfloat16, which no export of ours does, and more slowly on this CPU).
    run = in_float32(run)
    with tempfile.TemporaryDirectory() as tmp:
        exports = args.keep_exports or tmp
        for name, beam in (("greedy", 1), (f"beam{BEAM}", BEAM)):
            decode = dataclasses.replace(config.decode, beam_size=beam, alpha=0.0 if beam == 1 else config.decode.alpha)
            export_config = dataclasses.replace(config, decode=decode)
            graph = TranslationGraph(run.models, prepared.src_model, prepared.tgt_model, decode)
            path = export(graph, export_config, prepared.src_model, prepared.tgt_model, exports, name)
            translator = translate.load(path)
            begun = time.perf_counter()
            hypotheses = [h for start in range(0, len(sources), 64) for h in translator(sources[start : start + 64])]
            report[f"{name}_test_decode_seconds"] = round(time.perf_counter() - begun, 2)
            scores = score(hypotheses, references)
            report[f"{name}_test_bleu_cased"] = round(scores.bleu, 2)
            report[f"{name}_test_chrf_cased"] = round(scores.chrf, 2)
            if beam == 1:
                report["test_sentences"] = len(sources)
                report["signature_cased"] = f"{scores.bleu_signature} | {scores.chrf_signature}"
                report["examples"] = [
                    {"source": s, "reference": r, "hypothesis": h}
                    for s, r, h in list(zip(sources, references, hypotheses))[:3]
                ]
            batch_sizes = (1, 64) if beam == 1 else (64,)
            report.update(time_decoding(translator, sources, batch_sizes, args.repeats, count_pieces, prefix=name))
    report["peak_rss_mb"] = peak_rss_mb()
    emit(report, args.out)


# --- race: the sides in turns -------------------------------------------------------------


def decode_events(
    prefix: str,
    translate: Callable,
    sentences: list[str],
    batch_sizes: tuple[int, ...],
    count_tokens: Callable[[str], int],
    passes: int = 1,
) -> dict[str, Callable[[], dict]]:
    """``{prefix}_b{size}`` events over the first :data:`harness.DECODE_SENTENCES` sentences,
    ``passes`` passes a turn, each first warmed up by one untimed batch."""
    events = {}
    for size in batch_sizes:
        chunk = sentences[: DECODE_SENTENCES.get(size, 4 * size)]
        translate(chunk[:size])
        events[f"{prefix}_b{size}"] = lambda chunk=chunk, size=size: decode_passes(
            translate, chunk, size, count_tokens, passes
        )
    return events


def baseline_worker(args: argparse.Namespace) -> dict[str, Callable[[], dict]]:
    """The tutorial's model: ``train``, ``greedy_b1`` and ``greedy_b64``."""
    from benchmarks.baselines import tf_tutorial

    model, train_ds, _ = tf_tutorial.build(Path(args.run_dir), args.units, args.batch_size, args.seed, args.precision)
    batches = iter(train_ds.repeat())
    train = {"train": lambda: train_turn(model.train_on_batch, batches, args.train_turn_seconds)}
    if args.train_only:
        return train
    inputs, _ = next(batches)
    model(inputs)  # creates the variables, so that the weights can load
    if args.baseline_weights:
        model.load_weights(args.baseline_weights)
    sources, _ = tf_tutorial.read_split(Path(args.run_dir), "test")
    events = decode_events(
        "greedy",
        tf_tutorial.translator(model, args.max_length),
        sources,
        (1, 64),
        tf_tutorial.count_words,
        args.decode_passes,
    )
    return {**events, **train}


def ours_worker(args: argparse.Namespace) -> dict[str, Callable[[], dict]]:
    """Ours: ``train`` (with ``--train``, the preset and overrides), and the decoding events of each
    ``--export NAME=PATH`` (``greedy_b1``, ``greedy_b64`` for ``greedy``; ``NAME_b64`` for others)."""
    import sentencepiece as spm

    import translate

    config, prepared = prepare_split(args.preset, args.set, run_dir=args.run_dir)
    events = {}
    if args.train:
        run, batches = build_training(config, prepared)
        batches = iter(batches)
        events["train"] = lambda: train_turn(run.models.training.train_on_batch, batches, args.train_turn_seconds)
    pieces = spm.SentencePieceProcessor(model_proto=prepared.tgt_model)
    sources = [source for source, _ in prepared.read("test")]
    for spec in args.export:
        name, _, path = spec.partition("=")
        if not name or not path:
            raise SystemExit(f"--export {spec!r}: expected NAME=PATH, e.g. greedy=saved_models/greedy")
        sizes = (1, 64) if name == "greedy" else (64,)
        events.update(
            decode_events(
                name, translate.load(path), sources, sizes, lambda t: len(pieces.encode(t)), args.decode_passes
            )
        )
    return events


def rate(turn: dict, key: str = "sentences") -> float:
    return turn[key] / turn["seconds"]


def summarize_race(turns: dict[str, dict[str, list[dict]]]) -> dict:
    """Each contestant's median rates per event, and the median over rounds of each ratio (:data:`RATIOS`)."""
    report: dict = {"rates": {}, "ratios": {}, "per_round": {}}
    for event, by_name in turns.items():
        report["rates"][event] = {
            name: {
                "sentences_per_s": round(statistics.median(rate(t) for t in runs), 2),
                "tokens_per_s": round(statistics.median(rate(t, "tokens") for t in runs), 1),
            }
            for name, runs in by_name.items()
        }
    idle = {}
    for by_name in turns.values():
        for name, runs in by_name.items():
            idle[name] = idle.get(name, 0.0) + sum(turn.get("idle_cpu_seconds", 0.0) for turn in runs)
    report["idle_cpu_seconds"] = {name: round(value, 1) for name, value in idle.items()}
    for key, (event, contestant, against) in RATIOS.items():
        mine = turns.get(event, {}).get(contestant)
        if isinstance(against, str):
            others = [turns.get(against, {}).get(contestant)]
        else:
            others = [turns.get(event, {}).get(name) for name in against]
        others = [runs for runs in others if runs]
        if not mine or not others:
            continue
        per_round = [rate(turn) / max(rate(runs[r]) for runs in others) for r, turn in enumerate(mine)]
        report["ratios"][key] = round(statistics.median(per_round), 3)
        report["per_round"][key] = [round(value, 3) for value in per_round]
    return report


def race(
    args: argparse.Namespace, run_dir: str, baseline_weights: str | None, equal_set: list[str], quick_exports: list[str]
) -> dict:
    """Starts the contestants' workers (``args``: the options of :func:`add_shared_arguments`), takes the
    turns, and summarizes. ``ours_equal`` races with ``equal_set``, ``ours_quick`` with ``quick_exports``."""
    shared = [
        "race",
        "--run-dir",
        run_dir,
        "--train-turn-seconds",
        str(args.train_turn_seconds),
        "--decode-passes",
        str(args.decode_passes),
    ]
    baseline = [*baseline_options(args), *(["--baseline-weights", baseline_weights] if baseline_weights else [])]
    ours_options = ["--preset", args.preset, *(f"--set={o}" for o in args.set)]
    plans = {
        "baseline": ("baseline", baseline, "default"),
        "baseline_serial_ops": ("baseline", baseline, "serial_ops"),
        "baseline_bfloat16": ("baseline", [*baseline, "--precision", "mixed_bfloat16", "--train-only"], "default"),
        "ours_equal": ("ours", [*ours_options, "--train", *(f"--set={o}" for o in equal_set)], args.ours_threads),
        "ours_quick": ("ours", [*ours_options, *(f"--export={e}" for e in quick_exports)], args.ours_threads),
    }
    workers: dict[str, Worker] = {}
    try:
        for name, (kind, extra, threads) in plans.items():
            if (name == "ours_equal" and not equal_set) or (name == "ours_quick" and not quick_exports):
                continue
            command = [sys.executable, "-m", "benchmarks", *shared, "--worker", kind, *extra]
            workers[name] = Worker(name, command, thread_env(threads))
        started = time.perf_counter()
        turns = take_turns(
            {name: worker.turns() for name, worker in workers.items()}, args.rounds, args.warmup_turns, label="race"
        )
        seconds = time.perf_counter() - started
    finally:
        for worker in workers.values():
            worker.close()
    return {
        "rounds": args.rounds,
        "train_turn_seconds": args.train_turn_seconds,
        "warmup_turns": args.warmup_turns,
        "decode_passes": args.decode_passes,
        "threads": {name: plan[2] for name, plan in plans.items() if name in workers},
        "race_seconds": round(seconds, 1),
        **summarize_race(turns),
    }


def race_command(args: argparse.Namespace) -> None:
    """Ours against the baseline in turns: one process per contestant, timed one after another, round after round.

        python -m benchmarks race --run-dir runs/quick --baseline-weights /tmp/b.weights.h5 \\
            --quick-exports greedy=saved_models/greedy --quick-exports beam5=saved_models/translator \\
            --out /tmp/race.json

    ``compare`` trains and times each side in its own process, minutes apart.
    On a shared machine the speed drifts over such minutes, and a
    ratio of two figures taken at different times carries that drift. Here
    every contestant runs in its own process (so each keeps its own thread
    setting, which TensorFlow reads at start-up), and the processes take
    turns (``harness.take_turns``): in each round every contestant runs one
    turn of an event, one after another, so a slow minute slows all of them.
    Each round gives a ratio; the median round's counts.

    Contestants (``compare`` runs this after its sides, on their models):

    * ``baseline`` and ``baseline_serial_ops``: the TensorFlow tutorial's
      model (``baselines/tf_tutorial.py``) under TensorFlow's default threads
      and under ``serial_ops``; the ratios take the faster of the two in each
      round, so neither setting is chosen against it;
    * ``baseline_bfloat16``: the tutorial's model built under Keras's
      ``mixed_bfloat16`` policy (TensorFlow's default threads), training
      only: ``train_speedup`` takes the fastest of the three baselines in
      each round, ``train_speedup_float32_baseline`` the faster of the first two;
    * ``ours_equal``: our model at the baseline's sizes (training only);
    * ``ours_quick``: the quick preset's greedy and beam 5 exports, loaded
      with ``translate.load`` (decoding only).

    Events (a turn of each):

    * ``train``: compiled train steps over the live input pipeline until
      ``--train-turn-seconds`` have passed; the rate is sentences per second.
      The models start from fresh weights (a step's cost does not depend on
      them); ``--warmup-turns`` turns, left out, trace the step.
    * ``greedy_b1``, ``greedy_b64``, ``beam5_b64``: ``--decode-passes``
      passes over the first test sentences (``harness.DECODE_SENTENCES``) at
      that batch size, in corpus order. The baseline decodes with its
      trained weights (``--baseline-weights``); its cost does not depend on
      them (its traced loop always runs ``--max-length`` steps), but its
      output, and so its token count, does.

    Ratios (the median over rounds of each round's ratio): ``train_speedup``
    (ours_equal / baseline), ``greedy_speedup_b64`` and ``greedy_speedup_b1``
    (ours_quick / baseline), ``beam5_over_greedy_b64`` (ours_quick's beam 5 /
    its greedy).
    """
    if args.worker:
        # Anything printed (Keras's progress output, ...) goes to stderr; stdout carries the answers.
        answers, sys.stdout = sys.stdout, sys.stderr
        serve(baseline_worker(args) if args.worker == "baseline" else ours_worker(args), out=answers)
        return
    report = {
        "machine": machine(),
        "command": command_line(),
        **race(args, args.run_dir, args.baseline_weights, args.equal_set, args.quick_exports),
    }
    emit(report, args.out)


# --- the command line ---------------------------------------------------------------------


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``compare`` and ``race``: the race's, the baseline's and ours."""
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the race in turns")
    parser.add_argument("--train-turn-seconds", type=float, default=15.0, help="training time of one turn")
    parser.add_argument("--warmup-turns", type=int, default=2, help="untimed turns of each event before the rounds")
    parser.add_argument("--decode-passes", type=int, default=3, help="passes over the sentences in a decoding turn")
    parser.add_argument("--units", type=int, default=256, help="the baseline's units, and ours at equal size")
    parser.add_argument("--batch-size", type=int, default=64, help="the baseline's batch size, and ours at equal size")
    parser.add_argument("--max-length", type=int, default=50, help="the baseline's decoding steps")
    parser.add_argument("--seed", type=int, default=1234, help="the baseline's seed")
    parser.add_argument("--preset", default="quick", help="our preset (and the corpus to prepare)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override of ours (e.g. a tiny smoke setting)",
    )
    parser.add_argument(
        "--ours-threads",
        choices=sorted(THREADS),
        default="serial_ops",
        help="thread setting of our runs (the baseline is measured under both)",
    )


def register(commands) -> None:
    p = subcommand(commands, "compare", compare, "ours against the TensorFlow tutorial's model (compare.json)")
    p.add_argument("--run-dir", help="a prepared run folder (default: prepare --preset into a temp folder)")
    p.add_argument("--train-minutes", type=float, default=15.0, help="training budget of every model")
    p.add_argument("--equal-attention", default="bahdanau", help="our attention at equal size (the default model)")
    p.add_argument("--warmup-steps", type=int, default=5, help="training steps left out of the rates")
    p.add_argument("--repeats", type=int, default=3, help="timed decoding passes; the median counts")
    p.add_argument("--out", default=str(RESULTS / "compare.json"), help="the JSON (the table goes beside it, .md)")
    p.add_argument(
        "--probe-minutes",
        type=float,
        default=2.0,
        help="training minutes of the baseline's probe under the other thread setting",
    )
    add_shared_arguments(p)

    p = subcommand(commands, "ours", ours, "compare's side of ours alone: train for a budget, time the exports")
    p.add_argument("--run-dir", required=True, help="a prepared run folder")
    p.add_argument("--preset", default="quick")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    p.add_argument("--minutes", type=float, default=15.0, help="training budget, wall clock")
    p.add_argument("--warmup-steps", type=int, default=5, help="training steps left out of the rates")
    p.add_argument("--repeats", type=int, default=3, help="timed decoding passes; the median counts")
    p.add_argument("--label", default="ours", help="the name of this run in the report")
    p.add_argument(
        "--keep-exports", metavar="DIR", help="export into DIR (DIR/greedy, DIR/beam5) and keep them, for the race"
    )
    p.add_argument("--out", help="also write the JSON here")

    p = subcommand(commands, "race", race_command, "compare's race in turns alone, on trained models")
    p.add_argument("--run-dir", required=True, help="a prepared run folder")
    add_shared_arguments(p)
    p.add_argument("--baseline-weights", help="the baseline's trained weights (baseline --save-weights)")
    p.add_argument(
        "--equal-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the overrides of ours at equal size (none: ours_equal does not race)",
    )
    p.add_argument(
        "--quick-exports",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="an export of the quick preset to decode with (greedy=..., beam5=...)",
    )
    p.add_argument("--out", help="also write the JSON here")
    # A worker's own options.
    p.add_argument("--worker", choices=("baseline", "ours"), help=argparse.SUPPRESS)
    p.add_argument("--train", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--export", action="append", default=[], help=argparse.SUPPRESS)
