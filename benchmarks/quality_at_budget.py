"""Which cell and which attention learn most in the same wall-clock budget.

    taskset -c 1 python benchmarks/quality_at_budget.py --minutes 8 --out benchmarks/results/quality_at_budget.json

Trains one model per variant (each cell with Bahdanau attention, then the GRU
with each other attention placement) from the same preset (quick), for the same
number of minutes of training on the same prepared corpus, one after the
other in fresh processes (``python -m translate train``). Then each run's
best checkpoint translates the dev and test splits with the preset's
decoding (beam search, as exported), and sacrebleu scores them.

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

from report import emit, machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# name -> overrides on top of the preset. The decoder width is pinned per row
# so that the table reproduces whatever the preset says today: 192 wide (the
# quick preset's width before this table), except where luong_dot needs the
# decoder as wide as the bidirectional encoder's output (2 x 128); the last
# row separates that width from the attention.
W192, W256 = "model.decoder_units=192", "model.decoder_units=256"
VARIANTS = {
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


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def _history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget of every variant")
    parser.add_argument("--variants", help="comma-separated names (default: all): " + "; ".join(VARIANTS))
    parser.add_argument("--root", default="benchmarks/results/quality_at_budget", help="run folders go here")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="applied to every variant")
    args = parser.parse_args()
    names = [n.strip() for n in args.variants.split(",")] if args.variants else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants: {unknown}")

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
    rows = []
    for name in names:
        run_dir = root / _slug(name)
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(prepared.run_dir, run_dir)
        overrides = [*base_overrides, *VARIANTS[name], f"run_dir={run_dir}"]
        command = [sys.executable, "-m", "translate", "train", "--preset", args.preset, "--no-export", *overrides]
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        train_seconds = time.perf_counter() - started

        run = load_run(run_dir)
        history = _history(run_dir)
        params = build_models(run.config.model, vocab_size_of(run.src_model),
                              vocab_size_of(run.tgt_model)).training.count_params()
        row = {"variant": name, "overrides": VARIANTS[name], "parameters": params,
               "epochs": len(history), "train_command_seconds": round(train_seconds, 1),
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
        "training_minutes_each": args.minutes,
        "overrides": args.overrides,
        "decoding": {"beam_size": run.config.decode.beam_size, "alpha": run.config.decode.alpha},
        "machine": machine(),
        "bleu_signature": scores.bleu_signature,
        "chrf_signature": scores.chrf_signature,
        "rows": rows,
    }
    emit(report, args.out)
    print("\n| variant | parameters | epochs | dev BLEU | dev chrF | test BLEU | test chrF |", file=sys.stderr)
    print("|---|---:|---:|---:|---:|---:|---:|", file=sys.stderr)
    for r in rows:
        print(f"| {r['variant']} | {r['parameters']:,} | {r['epochs']} | {r['dev_bleu']} | {r['dev_chrf']} "
              f"| {r['test_bleu']} | {r['test_chrf']} |", file=sys.stderr)


if __name__ == "__main__":
    main()
