"""Dev and test BLEU against training minutes, from runs trained with epoch checkpoints.

    python -m translate train --preset base run_dir=runs/base-gru train.max_minutes=120 \
        train.keep_checkpoints=40
    python benchmarks/learning_curve.py runs/base-gru runs/base-lstm \
        --out benchmarks/results/base_curve.json --png docs/images/base_curve.png

For every run: each epoch's checkpoint (``checkpoints/epoch-NNN.weights.h5``,
kept by ``train.keep_checkpoints``) translates the dev and test splits of the
run's prepared corpus greedily (as the dev BLEU of training does), and
sacrebleu scores them; the minutes come from ``history.csv``. Then the best
checkpoint (``best.weights.h5``, the one ``export`` ships) is scored on the
test split with the run's own decoding (the export's default: beam search
with the run's ``decode`` settings). Writes one JSON object and a PNG with a
curve per run and split.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from report import emit, machine, print_table

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _history(run_dir: Path) -> list[dict]:
    with (run_dir / "history.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _scores(graph, pairs, greedy: bool, batch_size: int):
    from translate.evaluation import score, translate_in_batches

    translate = (lambda s: graph(s, greedy=True)) if greedy else graph
    hypotheses = translate_in_batches(translate, [s for s, _ in pairs], batch_size, progress=False)
    return score(hypotheses, [t for _, t in pairs])


def curve(run_dir: Path, batch_size: int) -> dict:
    """The per-epoch rows of one run and its best checkpoint's test scores."""
    from translate.callbacks import EpochCheckpoints
    from translate.prepare import read_split
    from translate.training import CHECKPOINTS_DIR, load_run

    run = load_run(run_dir)
    splits = {split: read_split(run_dir, split) for split in ("dev", "test")}
    history = {int(row["epoch"]) + 1: row for row in _history(run_dir)}
    checkpoints = EpochCheckpoints.epochs_in(run_dir / CHECKPOINTS_DIR)
    if not checkpoints:
        raise SystemExit(f"{run_dir}: no epoch checkpoints (train with train.keep_checkpoints=N)")
    rows = []
    for epoch, path in checkpoints.items():
        run.models.training.load_weights(path)
        row = {"epoch": epoch, "minutes": round(float(history[epoch]["minutes"]), 2),
               "train_loss": round(float(history[epoch]["loss"]), 4),
               "dev_loss": round(float(history[epoch]["val_loss"]), 4)}
        for split, pairs in splits.items():
            scores = _scores(run.graph, pairs, greedy=True, batch_size=batch_size)
            row[f"{split}_bleu_greedy"], row[f"{split}_chrf_greedy"] = round(scores.bleu, 2), round(scores.chrf, 2)
        rows.append(row)
        print(f"{run_dir} {row}", file=sys.stderr, flush=True)
    best = load_run(run_dir)  # best.weights.h5, decoded as exported
    final = _scores(best.graph, splits["test"], greedy=False, batch_size=batch_size)
    d = best.config.decode
    return {
        "run_dir": str(run_dir),
        "cell": run.config.model.cell,
        "attention": run.config.model.attention,
        "config": run.config.to_dict(),
        "epochs": rows,
        # The epoch best.weights.h5 holds: the best dev BLEU of training (greedy, as above).
        "best_epoch": max(rows, key=lambda r: r["dev_bleu_greedy"])["epoch"],
        "best_test": {"decoding": {"beam_size": d.beam_size, "alpha": d.alpha},
                      "bleu": round(final.bleu, 2), "chrf": round(final.chrf, 2),
                      "bleu_signature": final.bleu_signature, "chrf_signature": final.chrf_signature},
    }


def plot(curves: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from translate.plotting import save_png

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for c in curves:
        minutes = [r["minutes"] for r in c["epochs"]]
        name = f"{c['cell']} + {c['attention']}"
        axes.plot(minutes, [r["test_bleu_greedy"] for r in c["epochs"]], marker="o", markersize=3,
                  label=f"{name}: test (Romans)")
        axes.plot(minutes, [r["dev_bleu_greedy"] for r in c["epochs"]], marker="s", markersize=3, linestyle="--",
                  label=f"{name}: dev (James)")
    axes.set_xlabel("training minutes (one core each)")
    axes.set_ylabel("BLEU, greedy")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    save_png(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders trained with train.keep_checkpoints")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--png", type=Path, help="write the curve here")
    parser.add_argument("--note", default="", help="how the runs were trained (kept in the JSON)")
    args = parser.parse_args()
    curves = [curve(run_dir, args.batch_size) for run_dir in args.runs]
    emit({"machine": machine(), "note": args.note, "runs": curves}, args.out)
    if args.png:
        plot(curves, args.png)
    print_table(["run", "epochs", "minutes", "best epoch", "test BLEU (default decoding)", "test chrF"],
                [[c["run_dir"], len(c["epochs"]), c["epochs"][-1]["minutes"], c["best_epoch"], c["best_test"]["bleu"],
                  c["best_test"]["chrf"]] for c in curves])


if __name__ == "__main__":
    main()
