"""Which choices learn most in the same wall-clock budget.

    python benchmarks/quality_at_budget.py --table attention --minutes 8 --jobs 2 \
        --out benchmarks/results/quality_at_budget.json
    python benchmarks/quality_at_budget.py --table choices --minutes 8 --jobs 2 \
        --out benchmarks/results/quality_choices.json

Trains one model per variant of a table from the same preset (quick), for the
same number of minutes of training on the same prepared corpus, in fresh
processes (``python -m translate train``). ``--table attention``: each cell
with Bahdanau attention, then the GRU with each other attention placement.
``--table choices``: the quick preset's training choices (batch size,
dropout, ...). ``--table default``: the default attention (bahdanau) and
luong_dot, two seeds each, with the mean and spread over seeds. With ``--jobs N``
N variants train at once, each pinned to its own core, so that they never
share one (on 2 cores, 2 jobs of 1 core each).
Then each run's best checkpoint translates the dev and test splits with the
preset's decoding (beam search, as exported), and sacrebleu scores them.

Prints a JSON object (a row per variant: parameters, epochs, dev and test
BLEU/chrF) and a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from report import emit, machine, print_table

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# name -> overrides on top of the preset. The decoder width is pinned per row
# so that the table reproduces whatever the preset says today: 192 wide (the
# quick preset's width before this table), except where luong_dot needs the
# decoder as wide as the bidirectional encoder's output (2 x 128); the last
# row separates that width from the attention.
W192, W256 = "model.decoder_units=192", "model.decoder_units=256"
ATTENTION = {
    "gru + bahdanau": ["model.cell=gru", "model.attention=bahdanau", W192],
    "lstm + bahdanau": ["model.cell=lstm", "model.attention=bahdanau", W192],
    "simple_rnn + bahdanau": ["model.cell=simple_rnn", "model.attention=bahdanau", W192],
    "gru + additive (after the RNN)": ["model.cell=gru", "model.attention=additive", W192],
    "gru + luong_general": ["model.cell=gru", "model.attention=luong_general", W192],
    "gru + luong_general + input feeding": ["model.cell=gru", "model.attention=luong_general",
                                            "model.input_feeding=true", W192],
    "gru + luong_dot (decoder 256)": ["model.cell=gru", "model.attention=luong_dot", W256],
    "gru + none": ["model.cell=gru", "model.attention=none", W192],
    "gru + bahdanau (decoder 256)": ["model.cell=gru", "model.attention=bahdanau", W256],
}
# The quick preset's training choices, each pinned here so the table keeps its
# meaning when the preset changes. On 2 cores batch 32 trains 16% fewer pieces
# per second than batch 64 and batch 16 a third fewer, for two and four times
# the updates (benchmarks/results/scaling.json).
B16, B32, B64 = "train.batch_size=16", "train.batch_size=32", "train.batch_size=64"
CHOICES = {
    "batch 64": [B64, "model.dropout=0.1"],
    "batch 32": [B32, "model.dropout=0.1"],
    "batch 16": [B16, "model.dropout=0.1"],
    "batch 32, no dropout": [B32, "model.dropout=0.0"],
    "batch 16, no dropout": [B16, "model.dropout=0.0"],
}
# The default attention against the one it replaced, two seeds each: the
# quick preset as shipped, and the quick preset of before (luong_dot at its
# learning rate). Run with --jobs 2, so that two runs train side by side.
DEFAULT = {f"{name}, seed {seed}": [*overrides, f"train.seed={seed}"]
           for seed in (1, 2) for name, overrides in (
               ("bahdanau (quick)", ["model.attention=bahdanau"]),
               ("luong_dot (quick before)", ["model.attention=luong_dot", "train.learning_rate=0.001"]))}
# Ways to make the additive score learn faster or cost less, each stated in full
# so that the rows keep their meaning when the preset changes.
BAHDANAU = {f"bahdanau, {name}, seed {seed}": ["model.attention=bahdanau", *overrides, f"train.seed={seed}"]
            for seed in (1, 2) for name, overrides in (
                ("attention 256, lr 0.001", ["model.attention_units=256", "train.learning_rate=0.001"]),
                ("attention 256, lr 0.001, normalized", ["model.attention_units=256", "train.learning_rate=0.001",
                                                         "model.attention_normalize=true"]),
                ("attention 256, lr 0.002", ["model.attention_units=256", "train.learning_rate=0.002"]),
                ("attention 128, lr 0.002", ["model.attention_units=128", "train.learning_rate=0.002"]),
                ("attention 128, lr 0.003", ["model.attention_units=128", "train.learning_rate=0.003"]),
                ("attention 128, lr 0.002, batch 32", ["model.attention_units=128", "train.learning_rate=0.002",
                                                       "train.batch_size=32"]))}
TABLES = {"attention": ATTENTION, "choices": CHOICES, "default": DEFAULT, "bahdanau": BAHDANAU}


def seed_summary(rows: list[dict]) -> dict:
    """Mean and spread (max - min) over seeds of each variant named ``"NAME, seed N"``."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        name, seeded, _ = row["variant"].rpartition(", seed ")
        if seeded:
            groups.setdefault(name, []).append(row)
    summary = {}
    for name, group in groups.items():
        summary[name] = {"seeds": len(group)}
        for key in ("epochs", "dev_bleu", "dev_chrf", "test_bleu", "test_chrf"):
            values = [float(r[key]) for r in group]
            summary[name][key] = {"mean": round(sum(values) / len(values), 2),
                                  "spread": round(max(values) - min(values), 2)}
    return summary


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def _history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _pinned(core: int | None):
    """A ``preexec_fn`` that keeps the child on one core (None: wherever it likes)."""
    if core is None:
        return None
    return lambda: os.sched_setaffinity(0, {core})


def train_all(names: list[str], commands: dict[str, list[str]], jobs: int) -> dict[str, float]:
    """Runs each variant's training command, ``jobs`` at once, each on its own core; seconds per variant."""
    cores = sorted(os.sched_getaffinity(0))
    if jobs > len(cores):
        raise SystemExit(f"--jobs {jobs} needs {jobs} cores, this process may use {len(cores)}")
    seconds, waiting, running = {}, list(names), {}
    while waiting or running:
        while waiting and len(running) < jobs:
            name = waiting.pop(0)
            free = [c for c in cores if c not in {core for _, core, _ in running.values()}]
            core = free[0] if jobs > 1 else None
            process = subprocess.Popen(commands[name], cwd=REPO, stdout=subprocess.DEVNULL, preexec_fn=_pinned(core))
            running[name] = (process, core, time.perf_counter())
            print(f"[quality] training {name!r}" + (f" on core {core}" if core is not None else ""),
                  file=sys.stderr, flush=True)
        time.sleep(1)
        for name, (process, _, started) in list(running.items()):
            if process.poll() is not None:
                if process.returncode:
                    raise SystemExit(f"training {name!r} failed (exit {process.returncode})")
                seconds[name] = round(time.perf_counter() - started, 1)
                del running[name]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--table", choices=sorted(TABLES), default="attention", help="which variants")
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget of every variant")
    parser.add_argument("--variants", help="names from the table, separated by ';' (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="variants training at once, one core each")
    parser.add_argument("--root", default="benchmarks/results/quality_at_budget", help="run folders go here")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="score the variants' run folders already under --root (trained by an earlier call)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="applied to every variant")
    args = parser.parse_args()
    variants = TABLES[args.table]
    names = [n.strip() for n in args.variants.split(";")] if args.variants else list(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        parser.error(f"unknown variants: {unknown}; the {args.table} table has: {'; '.join(variants)}")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    from translate.config import load_config
    from translate.evaluation import score, translate_in_batches
    from translate.model import build_models
    from translate.prepare import prepare_or_load
    from translate.text import vocab_size_of
    from translate.training import load_run

    root = Path(args.root)
    base_overrides = [*args.overrides, f"train.max_minutes={args.minutes}"]
    # Prepare once; every variant gets a copy, so all train on the same split and vocabularies.
    prepared = prepare_or_load(load_config(args.preset, overrides=[*base_overrides, f"run_dir={root / 'prepared'}"]))
    commands = {}
    for name in names if not args.evaluate_only else []:
        run_dir = root / _slug(name)
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(prepared.run_dir, run_dir)
        overrides = [*base_overrides, *variants[name], f"run_dir={run_dir}"]
        commands[name] = [sys.executable, "-m", "translate", "train", "--preset", args.preset, "--no-export",
                          *overrides]
    seconds = train_all(names, commands, args.jobs) if not args.evaluate_only else {}

    rows = []
    for name in names:
        run_dir = root / _slug(name)
        run = load_run(run_dir)
        history = _history(run_dir)
        params = build_models(run.config.model, vocab_size_of(run.src_model),
                              vocab_size_of(run.tgt_model)).training.count_params()
        row = {"variant": name, "overrides": variants[name], "parameters": params,
               "epochs": len(history), "train_command_seconds": seconds.get(name),
               "dev_bleu_by_epoch": [round(float(h["dev_bleu"]), 2) for h in history]}
        for split in ("dev", "test"):
            pairs = prepared.read(split)
            hypotheses = translate_in_batches(run.graph, [s for s, _ in pairs], 64, progress=False)
            scores = score(hypotheses, [t for _, t in pairs])
            row[f"{split}_bleu"], row[f"{split}_chrf"] = round(scores.bleu, 2), round(scores.chrf, 2)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    report = {
        "preset": args.preset,
        "table": args.table,
        "training_minutes_each": args.minutes,
        "cores_each": 1 if args.jobs > 1 else len(os.sched_getaffinity(0)),
        "overrides": args.overrides,
        "decoding": {"beam_size": run.config.decode.beam_size, "alpha": run.config.decode.alpha},
        "machine": machine(),
        "bleu_signature": scores.bleu_signature,
        "chrf_signature": scores.chrf_signature,
        "rows": rows,
        "over_seeds": seed_summary(rows),
    }
    emit(report, args.out)
    print_table(["variant", "parameters", "epochs", "dev BLEU", "dev chrF", "test BLEU", "test chrF"],
                [[r["variant"], f"{r['parameters']:,}", r["epochs"], r["dev_bleu"], r["dev_chrf"], r["test_bleu"],
                  r["test_chrf"]] for r in rows])


if __name__ == "__main__":
    main()
