"""Ours against the TensorFlow tutorial's model, side by side on one machine, in one run.

    python benchmarks/compare.py                      # prepares bible:en-es (quick preset) in a temp folder
    python benchmarks/compare.py --run-dir runs/quick --train-minutes 15

Absolute times on a shared machine are noise; ratios measured in the same run
are not (issue 9). On one prepared split (``--run-dir``, or a fresh
``--preset`` preparation), one after the other, each in its own process (so
each has its own memory peak), with the same training budget:

1. ``baseline``: ``benchmarks/baselines/tf_tutorial.py``, the TensorFlow
   tutorial's model (word-level, units ``--units``) and its greedy loop;
2. ``ours_equal``: ``benchmarks/ours.py`` with the quick preset at the
   baseline's sizes: GRU, embedding, encoder (per direction), decoder and
   attention units all ``--units``, attention ``--equal-attention``, the
   baseline's batch size. The default, ``luong_general``, is the tutorial's
   score: its ``MultiHeadAttention(num_heads=1)`` scores
   ``(W_q s_t)^T (W_k h_j) / sqrt(d) = s_t^T W_a h_j`` with
   ``W_a = W_q^T W_k / sqrt(d)``, Luong's *general* score, after the decoder
   RNN as ours;
3. ``ours_quick``: ``benchmarks/ours.py`` with the quick preset as it is;
4. ``baseline_serial_ops``: the baseline again under the other thread
   setting, for ``--probe-minutes`` only: its training rate, and its
   decoding, whose cost does not depend on the weights (its loop always runs
   ``--max-length`` steps).

Threads. TensorFlow's default splits every op over all cores (intra-op) and
runs independent ops side by side (inter-op). A decoding step is a chain of
small ops; one intra-op thread per op, with our exports' independent loops
(``decode.shards``) side by side, keeps both cores busier. Our runs use
that setting (``--ours-threads serial_ops``: ``TF_NUM_INTRAOP_THREADS=1``,
``TF_NUM_INTEROP_THREADS`` = cores). The baseline trains and decodes under
TensorFlow's default, then is probed under ``serial_ops``; every baseline
figure in the ratios is the better of the two, so neither setting is
chosen against it.

Both sides train with the same timed loop (``benchmarks/timing.py``) and are
timed decoding the same test sentences in corpus order: the baseline's
traced loop (always ``--max-length`` steps) against our exported SavedModels
loaded with ``translate.load`` (greedy at batch 1 and 64, beam 5 at batch 64).

Then the race in turns (``benchmarks/race.py``, ``--rounds``, 0 to skip):
the four sides again, each in its own process under its thread setting, the
baseline with its trained weights and ours_quick with its exports, timed
one after another, round after round (``--train-turn-seconds`` of training
for ours_equal and the baseline, ``--decode-passes`` passes of decoding for
ours_quick and the baseline). The sides above run minutes apart, and the machine's speed
drifts by 10–20% over such minutes; in the race each round's contestants run
within seconds of one another, so each round gives a ratio free of that
drift, and the median round's counts.

Prints the JSON on stdout and a Markdown table on stderr, and writes both:
``--out`` (default ``benchmarks/results/compare.json``) and the table beside
it (``.md``). The headline ratios, from the race (from the separate
processes with ``--rounds 0``; both are kept, ``race`` and
``separate_processes``):

* ``train_speedup``: ours_equal / baseline, training sentences per second;
  ("baseline" here and below: its better figure of the two thread settings;
  in the race, the better of the two in each round)
* ``greedy_speedup_b64``: ours_quick (the model we ship) / baseline, greedy
  decoding sentences per second at batch 64;
* ``beam5_over_greedy_b64``: ours_quick beam 5 / ours_quick greedy, sentences
  per second at batch 64.

Target tokens are words (with punctuation) for the baseline and SentencePiece
pieces for ours, so token rates compare throughput per unit each model
actually computes, sentences per second compare the work done.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import race
from report import emit, machine

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = HERE / "results" / "compare.json"
SIDES = ("baseline", "baseline_serial_ops", "ours_equal", "ours_quick")
HEADERS = {"baseline": "TF tutorial (baseline)", "baseline_serial_ops": "TF tutorial, serial ops (probe)",
           "ours_equal": "ours, equal size", "ours_quick": "ours, quick preset"}
# Environment of each thread setting (TensorFlow reads these at start-up).
THREADS = {
    "default": {},
    "serial_ops": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": str(len(os.sched_getaffinity(0)))},
}
# A probe trains minutes, not the budget: its quality and epochs mean nothing.
PROBE_ONLY_SPEED = ("epochs", "BLEU", "chrF")
# Figures where the baseline counts with the better of its two settings.
SPEEDS = ("train_sentences_per_s", "train_target_tokens_per_s", "greedy_sentences_per_s_batch_1",
          "greedy_tokens_per_s_batch_1", "greedy_sentences_per_s_batch_64", "greedy_tokens_per_s_batch_64")

# (event of the race in turns, label)
RACE_ROWS = [("train", "training"), ("greedy_b1", "greedy, batch 1"), ("greedy_b64", "greedy, batch 64"),
             ("beam5_b64", "beam 5, batch 64")]
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
    """The headline ratios of the reports (see the module docstring)."""
    base, equal, quick = best_baseline(results), results["ours_equal"], results["ours_quick"]
    return {
        "train_speedup": ratio(equal["train_sentences_per_s"], base["train_sentences_per_s"]),
        "train_speedup_quick": ratio(quick["train_sentences_per_s"], base["train_sentences_per_s"]),
        "greedy_speedup_b64": ratio(quick["greedy_sentences_per_s_batch_64"], base["greedy_sentences_per_s_batch_64"]),
        "greedy_speedup_b64_equal": ratio(equal["greedy_sentences_per_s_batch_64"],
                                          base["greedy_sentences_per_s_batch_64"]),
        "greedy_speedup_b1": ratio(quick["greedy_sentences_per_s_batch_1"], base["greedy_sentences_per_s_batch_1"]),
        "beam5_over_greedy_b64": ratio(quick["beam5_sentences_per_s_batch_64"],
                                       quick["greedy_sentences_per_s_batch_64"]),
    }


def _cell(report: dict, key: str | None, digits: int) -> str:
    value = report.get(key) if key else None
    if value is None:
        return "–"
    return f"{value:,.0f}" if digits == 0 else f"{value:,.{digits}f}"


def race_table(turns: dict) -> list[str]:
    """The race in turns: each contestant's median sentences per second per event, and the race's ratios."""
    lines = [f"Race in turns ({turns['rounds']} rounds; sentences/s, the median round):", "",
             "| | " + " | ".join(HEADERS[side] for side in SIDES) + " |", "|---|" + "---:|" * len(SIDES)]
    for event, label in RACE_ROWS:
        rates = turns["rates"].get(event, {})
        cells = [f"{rates[s]['sentences_per_s']:,.1f}" if s in rates else "–" for s in SIDES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def table(results: dict[str, dict], ratios: dict, separate: dict | None = None, turns: dict | None = None) -> str:
    """A Markdown table: one row per figure, one column per model; then the race in turns, when it ran,
    and the ratios of the separate processes beside the headline ones."""
    lines = ["| | " + " | ".join(HEADERS[side] for side in SIDES) + " |",
             "|---|" + "---:|" * len(SIDES)]
    for label, base_key, our_key, digits in ROWS:
        if label.startswith("vocabulary"):
            cells = [f"{results[s].get('src_vocab_size', '?')} / {results[s].get('tgt_vocab_size', '?')}"
                     + (" words" if s.startswith("baseline") else " pieces") for s in SIDES]
        else:
            cells = [("–" if s == "baseline_serial_ops" and any(word in label for word in PROBE_ONLY_SPEED)
                      else _cell(results[s], base_key if s.startswith("baseline") else our_key, digits))
                     for s in SIDES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    if turns:
        lines += [*race_table(turns), ""]
    lines.append(", ".join(f"{key} = {value}" for key, value in ratios.items()))
    if turns and separate:
        lines += ["", "The same ratios from the separate processes: "
                  + ", ".join(f"{key} = {value}" for key, value in separate.items())]
    return "\n".join(lines)


def thread_env(setting: str) -> dict[str, str]:
    """This process's environment with the thread variables of ``setting`` (:data:`THREADS`) only."""
    env = {key: value for key, value in os.environ.items() if key not in THREADS["serial_ops"]}
    env.update(THREADS[setting])
    return env


def run_side(name: str, command: list[str], out: Path, threads: str = "default") -> dict:
    """Runs one side in its own process under a thread setting (:data:`THREADS`;
    its output goes to stderr) and returns its JSON report."""
    env = thread_env(threads)
    print(f"[compare] {name} ({threads} threads): {' '.join(command)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=sys.stderr, cwd=REPO, env=env)
    report = json.loads(out.read_text(encoding="utf-8"))
    report["process_seconds"] = round(time.perf_counter() - started, 1)
    report["threads"] = {"setting": threads, **THREADS[threads]}
    return report


def prepare_split(preset: str, folder: Path) -> Path:
    """Prepares ``preset``'s corpus into ``folder/run`` (the same call as ``translate prepare``)."""
    subprocess.run([sys.executable, "-m", "translate", "prepare", "--preset", preset, f"run_dir={folder / 'run'}"],
                   check=True, stdout=sys.stderr, cwd=REPO)
    return folder / "run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", help="a prepared run folder (default: prepare --preset into a temp folder)")
    parser.add_argument("--preset", default="quick", help="our preset (and the corpus to prepare)")
    parser.add_argument("--train-minutes", type=float, default=15.0, help="training budget of every model")
    parser.add_argument("--units", type=int, default=256, help="the baseline's units, and ours at equal size")
    parser.add_argument("--batch-size", type=int, default=64, help="the baseline's batch size, and ours at equal size")
    parser.add_argument("--equal-attention", default="luong_general", help="our attention at equal size")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for both of our runs (e.g. a tiny smoke setting)")
    parser.add_argument("--max-length", type=int, default=50, help="the baseline's decoding steps")
    parser.add_argument("--warmup-steps", type=int, default=5, help="training steps left out of the rates")
    parser.add_argument("--repeats", type=int, default=3, help="timed decoding passes; the median counts")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the JSON (the table goes beside it, .md)")
    parser.add_argument("--ours-threads", choices=sorted(THREADS), default="serial_ops",
                        help="thread setting of our runs (the baseline is measured under both)")
    parser.add_argument("--probe-minutes", type=float, default=2.0,
                        help="training minutes of the baseline's probe under the other thread setting")
    race.add_arguments(parser)
    args = parser.parse_args()

    work = tempfile.TemporaryDirectory(prefix="compare-")
    tmp = Path(work.name)
    run_dir = Path(args.run_dir) if args.run_dir else prepare_split(args.preset, tmp)
    shared = ["--run-dir", str(run_dir), "--warmup-steps", str(args.warmup_steps), "--repeats", str(args.repeats)]
    common = [*shared, "--minutes", str(args.train_minutes)]
    equal = ["model.cell=gru", f"model.attention={args.equal_attention}", f"model.embedding_dim={args.units}",
             f"model.encoder_units={args.units}", f"model.decoder_units={args.units}",
             f"model.attention_units={args.units}", f"train.batch_size={args.batch_size}"]
    commands = {
        "baseline": [sys.executable, str(HERE / "baselines" / "tf_tutorial.py"), *common, "--units", str(args.units),
                     "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
                     "--save-weights", str(tmp / "baseline.weights.h5")],
        "baseline_serial_ops": [sys.executable, str(HERE / "baselines" / "tf_tutorial.py"), *shared,
                                "--minutes", str(args.probe_minutes), "--units", str(args.units),
                                "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)],
        "ours_equal": [sys.executable, str(HERE / "ours.py"), *common, "--preset", args.preset, "--label",
                       "ours_equal", *(f"--set={o}" for o in [*args.set, *equal])],
        "ours_quick": [sys.executable, str(HERE / "ours.py"), *common, "--preset", args.preset, "--label",
                       "ours_quick", "--keep-exports", str(tmp / "exports"), *(f"--set={o}" for o in args.set)],
    }
    results = {}
    threads = {"baseline": "default", "baseline_serial_ops": "serial_ops",
               "ours_equal": args.ours_threads, "ours_quick": args.ours_threads}
    for side in SIDES:
        out = tmp / f"{side}.json"
        results[side] = run_side(side, [*commands[side], "--out", str(out)], out, threads[side])
    separate = summarize(results)
    turns = None
    if args.rounds > 0:
        turns = race.race(argparse.Namespace(
            run_dir=str(run_dir), rounds=args.rounds, train_turn_seconds=args.train_turn_seconds,
            warmup_turns=args.warmup_turns, decode_passes=args.decode_passes, units=args.units,
            batch_size=args.batch_size, max_length=args.max_length, seed=1234,
            baseline_weights=str(tmp / "baseline.weights.h5"), preset=args.preset, set=args.set, equal_set=equal,
            quick_exports=[f"{name}={tmp / 'exports' / name}" for name in ("greedy", "beam5")],
            ours_threads=args.ours_threads), thread_env)
    # The headline ratios: the race's, where it ran (see the module docstring).
    ratios = {**separate, **(turns["ratios"] if turns else {})}
    text = table(results, ratios, separate, turns)
    report = {
        "machine": machine(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
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
    Path(args.out).with_suffix(".md").write_text(f"{report['machine']}; `{report['command']}`\n\n{text}\n",
                                                 encoding="utf-8")


if __name__ == "__main__":
    main()
