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
3. ``ours_quick``: ``benchmarks/ours.py`` with the quick preset as it is.

Both sides train with the same timed loop (``benchmarks/timing.py``) and are
timed decoding the same test sentences in corpus order: the baseline's
traced loop (always ``--max-length`` steps) against our exported SavedModels
loaded with ``translate.load`` (greedy at batch 1 and 64, beam 5 at batch 64).

Prints the JSON on stdout and a Markdown table on stderr, and writes both:
``--out`` (default ``benchmarks/results/compare.json``) and the table beside
it (``.md``). The headline ratios:

* ``train_speedup``: ours_equal / baseline, training sentences per second;
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

from report import emit, machine

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = HERE / "results" / "compare.json"
SIDES = ("baseline", "ours_equal", "ours_quick")
HEADERS = {"baseline": "TF tutorial (baseline)", "ours_equal": "ours, equal size", "ours_quick": "ours, quick preset"}

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


def summarize(results: dict[str, dict]) -> dict:
    """The headline ratios of the three reports (see the module docstring)."""
    base, equal, quick = (results[side] for side in SIDES)
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


def table(results: dict[str, dict], ratios: dict) -> str:
    """A Markdown table: one row per figure, one column per model."""
    lines = ["| | " + " | ".join(HEADERS[side] for side in SIDES) + " |",
             "|---|" + "---:|" * len(SIDES)]
    for label, base_key, our_key, digits in ROWS:
        if label.startswith("vocabulary"):
            cells = [f"{results[s].get('src_vocab_size', '?')} / {results[s].get('tgt_vocab_size', '?')}"
                     + (" words" if s == "baseline" else " pieces") for s in SIDES]
        else:
            cells = [_cell(results[s], base_key if s == "baseline" else our_key, digits) for s in SIDES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(", ".join(f"{key} = {value}" for key, value in ratios.items()))
    return "\n".join(lines)


def run_side(name: str, command: list[str], out: Path) -> dict:
    """Runs one side in its own process (its output goes to stderr) and returns its JSON report."""
    print(f"[compare] {name}: {' '.join(command)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=sys.stderr, cwd=REPO)
    report = json.loads(out.read_text(encoding="utf-8"))
    report["process_seconds"] = round(time.perf_counter() - started, 1)
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
    args = parser.parse_args()

    work = tempfile.TemporaryDirectory(prefix="compare-")
    tmp = Path(work.name)
    run_dir = Path(args.run_dir) if args.run_dir else prepare_split(args.preset, tmp)
    common = ["--run-dir", str(run_dir), "--minutes", str(args.train_minutes),
              "--warmup-steps", str(args.warmup_steps), "--repeats", str(args.repeats)]
    equal = ["model.cell=gru", f"model.attention={args.equal_attention}", f"model.embedding_dim={args.units}",
             f"model.encoder_units={args.units}", f"model.decoder_units={args.units}",
             f"model.attention_units={args.units}", f"train.batch_size={args.batch_size}"]
    commands = {
        "baseline": [sys.executable, str(HERE / "baselines" / "tf_tutorial.py"), *common, "--units", str(args.units),
                     "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)],
        "ours_equal": [sys.executable, str(HERE / "ours.py"), *common, "--preset", args.preset, "--label",
                       "ours_equal", *(f"--set={o}" for o in [*args.set, *equal])],
        "ours_quick": [sys.executable, str(HERE / "ours.py"), *common, "--preset", args.preset, "--label",
                       "ours_quick", *(f"--set={o}" for o in args.set)],
    }
    results = {}
    for side in SIDES:
        out = tmp / f"{side}.json"
        results[side] = run_side(side, [*commands[side], "--out", str(out)], out)
    ratios = summarize(results)
    text = table(results, ratios)
    report = {
        "machine": machine(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "run_dir": str(run_dir) if args.run_dir else f"fresh --preset {args.preset} preparation",
        "train_minutes": args.train_minutes,
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        **ratios,
        **results,
        "table": text,
    }
    print(text, file=sys.stderr)
    emit(report, args.out)
    Path(args.out).with_suffix(".md").write_text(f"{report['machine']}; `{report['command']}`\n\n{text}\n",
                                                 encoding="utf-8")


if __name__ == "__main__":
    main()
