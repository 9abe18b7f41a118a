"""How well the toolkit translates for the time it takes: ``quality`` (variants trained for the same minutes),
``curve`` (BLEU against training minutes), ``averaging`` (the mean of the last epochs' weights) and ``beam``
(each beam width and alpha); and how high the scores go: ``references`` (human translations scored against
each other)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import REPO, emit, machine, median, print_table, subcommand, take_turns, time_decoding

# --- quality ----------------------------------------------------------------------------------

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
    "gru + luong_general + input feeding": [
        "model.cell=gru",
        "model.attention=luong_general",
        "model.input_feeding=true",
        W192,
    ],
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
DEFAULT = {
    f"{name}, seed {seed}": [*overrides, f"train.seed={seed}"]
    for seed in (1, 2)
    for name, overrides in (
        ("bahdanau (quick)", ["model.attention=bahdanau"]),
        ("luong_dot (quick before)", ["model.attention=luong_dot", "train.learning_rate=0.001"]),
    )
}
# Ways to make the additive score learn faster or cost less, each stated in full
# so that the rows keep their meaning when the preset changes.
BAHDANAU = {
    f"bahdanau, {name}, seed {seed}": ["model.attention=bahdanau", *overrides, f"train.seed={seed}"]
    for seed in (1, 2)
    for name, overrides in (
        ("attention 256, lr 0.001", ["model.attention_units=256", "train.learning_rate=0.001"]),
        (
            "attention 256, lr 0.001, normalized",
            ["model.attention_units=256", "train.learning_rate=0.001", "model.attention_normalize=true"],
        ),
        ("attention 256, lr 0.002", ["model.attention_units=256", "train.learning_rate=0.002"]),
        ("attention 128, lr 0.002", ["model.attention_units=128", "train.learning_rate=0.002"]),
        ("attention 128, lr 0.003", ["model.attention_units=128", "train.learning_rate=0.003"]),
        ("attention 64, lr 0.002", ["model.attention_units=64", "train.learning_rate=0.002"]),
        (
            "attention 128, lr 0.002, batch 32",
            ["model.attention_units=128", "train.learning_rate=0.002", "train.batch_size=32"],
        ),
    )
}
# Issue 17's rerun of the attention table: the quick preset as shipped, only
# the attention changed (and, for Bahdanau, its width and query), two seeds
# each (three for the default and Luong dot), so that every row is today's
# model at today's training settings.
# quality_placements.json's "bahdanau (quick)" rows ran before the preset's
# query read y_{t-1}: they are today's "bahdanau, query s_{t-1}".
PLACEMENTS = {
    f"{name}, seed {seed}": [*overrides, f"train.seed={seed}"]
    for seed in (1, 2, 3)
    for name, overrides in (
        (
            "bahdanau (quick)",
            ["model.attention=bahdanau", "model.attention_units=128", "model.attention_query_input=true"],
        ),
        (
            "bahdanau, query s_{t-1}",
            ["model.attention=bahdanau", "model.attention_units=128", "model.attention_query_input=false"],
        ),
        (
            "bahdanau, attention 64",
            ["model.attention=bahdanau", "model.attention_units=64", "model.attention_query_input=false"],
        ),
        (
            "bahdanau (quick), attention 64",
            ["model.attention=bahdanau", "model.attention_units=64", "model.attention_query_input=true"],
        ),
        ("luong_dot", ["model.attention=luong_dot"]),
        ("luong_general", ["model.attention=luong_general"]),
        ("additive (after the RNN)", ["model.attention=additive", "model.attention_units=128"]),
        ("none", ["model.attention=none"]),
    )
}
# A fourth seed for the default and Luong dot, whose difference stayed within the seeds' spread.
PLACEMENTS.update(
    {
        f"{name}, seed 4": [*PLACEMENTS[f"{name}, seed 1"][:-1], "train.seed=4"]
        for name in ("bahdanau (quick), attention 64", "luong_dot")
    }
)
# bfloat16 compute with float32 weights (train.precision) against float32, the quick preset as shipped
# otherwise: on a CPU with AMX its matmuls run several times faster (docs/decisions/precision-and-xla.md).
PRECISION = {
    f"bahdanau (quick), {precision}, seed {seed}": [f"train.precision={precision}", f"train.seed={seed}"]
    for seed in (1, 2)
    for precision in ("float32", "mixed_bfloat16")
}
# The learning-rate schedule at the budget: the quick preset as shipped (a constant rate, the mean of the last
# epochs' weights shipped) against a rate that falls in a straight line to the budget's end (Li et al. 2020),
# two seeds each; with --jobs 2 each seed's two runs train side by side.
SCHEDULE = {
    f"{name}, seed {seed}": [*overrides, f"train.seed={seed}"]
    for seed in (1, 2)
    for name, overrides in (
        ("constant (quick)", ["train.lr_schedule=constant"]),
        ("budget_linear", ["train.lr_schedule=budget_linear"]),
    )
}
TABLES = {
    "attention": ATTENTION,
    "choices": CHOICES,
    "default": DEFAULT,
    "bahdanau": BAHDANAU,
    "placements": PLACEMENTS,
    "precision": PRECISION,
    "schedule": SCHEDULE,
}


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
            summary[name][key] = {
                "mean": round(sum(values) / len(values), 2),
                "spread": round(max(values) - min(values), 2),
            }
    return summary


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def _history(run_dir: Path) -> list[dict]:
    with (Path(run_dir) / "history.csv").open(newline="", encoding="utf-8") as file:
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
            print(
                f"[quality] training {name!r}" + (f" on core {core}" if core is not None else ""),
                file=sys.stderr,
                flush=True,
            )
        time.sleep(1)
        for name, (process, _, started) in list(running.items()):
            if process.poll() is not None:
                if process.returncode:
                    raise SystemExit(f"training {name!r} failed (exit {process.returncode})")
                seconds[name] = round(time.perf_counter() - started, 1)
                del running[name]
    return seconds


def quality(args: argparse.Namespace) -> None:
    """Which choices learn most in the same wall-clock budget.

        python -m benchmarks quality --table attention --minutes 8 --jobs 2 \\
            --out benchmarks/results/quality_at_budget.json
        python -m benchmarks quality --table choices --minutes 8 --jobs 2 \\
            --out benchmarks/results/quality_choices.json

    Trains one model per variant of a table from the same preset (quick), for
    the same number of minutes of training on the same prepared corpus, in
    fresh processes (``python -m translate train``). ``--table attention``:
    each cell with Bahdanau attention, then the GRU with each other attention
    placement. ``--table choices``: the quick preset's training choices
    (batch size, dropout, ...). ``--table default``: the default attention
    (bahdanau) and luong_dot, two seeds each, with the mean and spread over
    seeds. ``--table bahdanau``: settings of the additive score, two seeds
    each. ``--table placements``: the quick preset as shipped with each
    attention placement, two seeds each. ``--table schedule``: the quick
preset's constant learning rate against ``train.lr_schedule=budget_linear``,
two seeds each. With ``--jobs N`` N variants train at once, each pinned to its own
    core, so that they never share one (on 2 cores, 2 jobs of 1 core each).
    Then each run's best checkpoint translates the dev and test splits with
    the preset's decoding (beam search, as exported), and sacrebleu scores
    them. A variant whose run folder is already under ``--root`` (an earlier
    invocation's) is refused before anything is written: name a new root, or
    score the runs there with ``--evaluate-only``.

    Prints a JSON object (a row per variant: parameters, epochs, dev and test
    BLEU/chrF) and a Markdown table (the form docs/benchmarks.md quotes).
    """
    variants = TABLES[args.table]
    names = [n.strip() for n in args.variants.split(";")] if args.variants else list(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        raise SystemExit(f"unknown variants: {unknown}; the {args.table} table has: {'; '.join(variants)}")
    if args.jobs < 1:
        raise SystemExit("--jobs must be at least 1")

    from translate.config import load_config
    from translate.evaluation import score
    from translate.inference import translate_in_batches
    from translate.model import build_models
    from translate.prepare import prepare_or_load
    from translate.text import vocab_size_of
    from translate.training import load_run

    root = Path(args.root)
    base_overrides = [*args.overrides, f"train.max_minutes={args.minutes}"]
    # A run folder from an earlier invocation is the user's: refused before anything is written, never replaced.
    taken = [str(root / _slug(n)) for n in names if not args.evaluate_only and os.path.lexists(root / _slug(n))]
    if taken:
        raise SystemExit(f"run folders exist: {', '.join(taken)}: name a new --root (or add --evaluate-only)")
    # Prepare once; every variant gets a copy, so all train on the same split and vocabularies.
    prepared = prepare_or_load(load_config(args.preset, overrides=[*base_overrides, f"run_dir={root / 'prepared'}"]))
    commands = {}
    for name in names if not args.evaluate_only else []:
        run_dir = root / _slug(name)
        shutil.copytree(prepared.run_dir, run_dir)
        overrides = [*base_overrides, *variants[name], f"run_dir={run_dir}"]
        commands[name] = [
            sys.executable,
            "-m",
            "translate",
            "train",
            "--preset",
            args.preset,
            "--no-export",
            *overrides,
        ]
    seconds = train_all(names, commands, args.jobs) if not args.evaluate_only else {}

    rows = []
    for name in names:
        run_dir = root / _slug(name)
        run = load_run(run_dir)
        history = _history(run_dir)
        params = build_models(
            run.config.model, vocab_size_of(run.src_model), vocab_size_of(run.tgt_model)
        ).training.count_params()
        row = {
            "variant": name,
            "overrides": variants[name],
            "parameters": params,
            "epochs": len(history),
            "train_command_seconds": seconds.get(name),
            "dev_bleu_by_epoch": [round(float(h["dev_bleu"]), 2) for h in history],
            # Wall-clock minutes since training began, at the end of each epoch (its evaluation included).
            "minutes_by_epoch": [round(float(h["minutes"]), 2) for h in history],
        }
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
    print_table(
        ["variant", "parameters", "epochs", "dev BLEU", "dev chrF", "test BLEU", "test chrF"],
        [
            [
                r["variant"],
                f"{r['parameters']:,}",
                r["epochs"],
                r["dev_bleu"],
                r["dev_chrf"],
                r["test_bleu"],
                r["test_chrf"],
            ]
            for r in rows
        ],
    )


# --- curve ----------------------------------------------------------------------------------


def _scores(graph, pairs, greedy: bool, batch_size: int):
    from translate.evaluation import score
    from translate.inference import translate_in_batches

    translate = (lambda s: graph(s, greedy=True)) if greedy else graph
    hypotheses = translate_in_batches(translate, [s for s, _ in pairs], batch_size, progress=False)
    return score(hypotheses, [t for _, t in pairs])


def learning_curve(run_dir: Path, batch_size: int, members: list[Path] | None = None) -> dict:
    """The per-epoch rows of one run, or of an ensemble's ``members``, and the shipped weights' test scores.

    For an ensemble each row decodes with every member's checkpoint of that epoch (the epochs all members
    kept); its minutes are the slowest member's (they trained side by side) and its losses the members' mean.
    """
    from translate.callbacks import EpochCheckpoints
    from translate.ensemble import Ensemble, check_members, load_ensemble
    from translate.inference import TranslationGraph
    from translate.prepare import read_split
    from translate.run_folder import BEST_DEV_WEIGHTS, best_dev_weights
    from translate.training import CHECKPOINTS_DIR, load_run

    folders = members or [run_dir]
    if members:
        try:
            check_members(members)
        except ValueError as error:
            raise SystemExit(f"{run_dir}: {error}") from None
    runs = [load_run(folder) for folder in folders]
    first = runs[0]
    graph = (
        TranslationGraph(Ensemble([r.models for r in runs]), first.src_model, first.tgt_model, first.config.decode)
        if members
        else first.graph
    )
    splits = {split: read_split(folders[0], split) for split in ("dev", "test")}
    histories = [{int(row["epoch"]) + 1: row for row in _history(folder)} for folder in folders]
    checkpoints = [EpochCheckpoints.epochs_in(folder / CHECKPOINTS_DIR) for folder in folders]
    epochs = sorted(set.intersection(*(set(kept) for kept in checkpoints)))
    if not epochs:
        raise SystemExit(f"{run_dir}: no epoch checkpoints (train with train.keep_checkpoints=N)")
    rows = []
    for epoch in epochs:
        for run, kept in zip(runs, checkpoints):
            run.models.training.load_weights(kept[epoch])
        row = {
            "epoch": epoch,
            "minutes": round(max(float(h[epoch]["minutes"]) for h in histories), 2),
            "train_loss": round(statistics.mean(float(h[epoch]["loss"]) for h in histories), 4),
            "dev_loss": round(statistics.mean(float(h[epoch]["val_loss"]) for h in histories), 4),
        }
        for split, pairs in splits.items():
            scores = _scores(graph, pairs, greedy=True, batch_size=batch_size)
            row[f"{split}_bleu_greedy"], row[f"{split}_chrf_greedy"] = round(scores.bleu, 2), round(scores.chrf, 2)
        rows.append(row)
        print(f"{run_dir} {row}", file=sys.stderr, flush=True)
    # best.weights.h5 (what export ships) of each, decoded as exported.
    shipped = load_ensemble(folders)[0] if members else load_run(run_dir).graph
    final = _scores(shipped, splits["test"], greedy=False, batch_size=batch_size)
    d = first.config.decode
    return {
        "run_dir": str(run_dir),
        **({"members": [str(m) for m in members]} if members else {}),
        "cell": first.config.model.cell,
        "attention": first.config.model.attention,
        "config": first.config.to_dict(),
        "epochs": rows,
        # The epoch of the best dev BLEU of training (greedy, as above).
        "best_epoch": max(rows, key=lambda r: r["dev_bleu_greedy"])["epoch"],
        # best_test scores best.weights.h5: that epoch, or with train.average_last the average of the last N.
        "shipped": (
            f"average of the last {first.config.train.average_last}"
            if best_dev_weights(folders[0]).name == BEST_DEV_WEIGHTS
            else "best dev epoch"
        ),
        "best_test": {
            "decoding": {"beam_size": d.beam_size, "alpha": d.alpha},
            "bleu": round(final.bleu, 2),
            "chrf": round(final.chrf, 2),
            "bleu_signature": final.bleu_signature,
            "chrf_signature": final.chrf_signature,
        },
    }


def _curve_members(run_dir: Path) -> list[Path] | None:
    """The member folders of an ensemble's run folder (``train.members`` > 1), else None."""
    from translate.config import load_config
    from translate.members import member_dirs

    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise SystemExit(f"not a run folder (no config.yaml): {run_dir}")
    config = load_config(config_file=config_file)
    return member_dirs(run_dir, config) if config.train.members > 1 else None


def plot_curves(curves: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from translate.plotting import save_png

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for c in curves:
        minutes = [r["minutes"] for r in c["epochs"]]
        name = f"{c['cell']} + {c['attention']}"
        if "members" in c:
            name = f"ensemble of {len(c['members'])}, {name}"
        if c["attention"] == "bahdanau":
            query_input = c["config"]["model"].get("attention_query_input", False)
            name += ", query [s; y]" if query_input else ", query s"
        axes.plot(
            minutes,
            [r["test_bleu_greedy"] for r in c["epochs"]],
            marker="o",
            markersize=3,
            label=f"{name}: test (Romans)",
        )
        axes.plot(
            minutes,
            [r["dev_bleu_greedy"] for r in c["epochs"]],
            marker="s",
            markersize=3,
            linestyle="--",
            label=f"{name}: dev (James)",
        )
    axes.set_xlabel("training minutes (one core each)")
    axes.set_ylabel("BLEU, greedy")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    save_png(figure, path)


def curve(args: argparse.Namespace) -> None:
    """Dev and test BLEU against training minutes, from runs trained with epoch checkpoints.

        python -m translate train --preset base run_dir=runs/base-gru train.max_minutes=120 \\
            train.keep_checkpoints=40
        python -m benchmarks curve runs/base-gru runs/base-lstm \\
            --out benchmarks/results/base_curve.json --png docs/images/base_curve.png

    For every run: each epoch's checkpoint
    (``checkpoints/epoch-NNN.weights.h5``, kept by ``train.keep_checkpoints``)
    translates the dev and test splits of the run's prepared corpus greedily
    (as the dev BLEU of training does), and sacrebleu scores them; the
    minutes come from ``history.csv``. Then the best checkpoint
    (``best.weights.h5``, the one ``export`` ships) is scored on the test
    split with the run's own decoding (the export's default: beam search with
    the run's ``decode`` settings). Writes one JSON object and a PNG with a
    curve per run and split.

    The folder of an ensemble trained with ``train.members`` gives one curve,
    the ensemble's: every epoch decodes with all members' checkpoints of
    that epoch. ``--ensemble`` does the same for runs trained apart on one
    preparation (the runs given are the members).
    """
    if args.ensemble:
        curves = [learning_curve(args.runs[0], args.batch_size, members=list(args.runs))]
    else:
        curves = [learning_curve(run_dir, args.batch_size, _curve_members(run_dir)) for run_dir in args.runs]
    emit({"machine": machine(), "note": args.note, "runs": curves}, args.out)
    if args.png:
        plot_curves(curves, args.png)
    print_table(
        ["run", "epochs", "minutes", "best epoch", "test BLEU (default decoding)", "test chrF"],
        [
            [
                c["run_dir"],
                len(c["epochs"]),
                c["epochs"][-1]["minutes"],
                c["best_epoch"],
                c["best_test"]["bleu"],
                c["best_test"]["chrf"],
            ]
            for c in curves
        ],
    )


# --- averaging --------------------------------------------------------------------------------


def averaging(args: argparse.Namespace) -> None:
    """Checkpoint averaging: the best epoch against the mean of the last N epochs' weights, on the test split.

        python -m benchmarks averaging --run runs/base --last 2 3 5 --out benchmarks/results/averaging.json

    Scores, on the run's test split (Romans for the built-in Bible) and with
    the run's own decoding (the export's default), the epoch of the best dev
    BLEU of training (``best.weights.h5``, or ``checkpoints/best-dev.weights.h5``
    when ``train.average_last`` shipped an average), the last epoch's
    checkpoint, and for each N the element-wise mean of the last N epoch
    checkpoints (``translate.averaging``, as ``translate average --last N``
    writes it, into a temporary folder). Training must have kept them
    (``train.keep_checkpoints``).
    """
    import tempfile

    from translate.averaging import average_checkpoints, last_checkpoints
    from translate.prepare import read_split
    from translate.run_folder import best_dev_weights
    from translate.training import load_run

    run_dir = Path(args.run)
    run = load_run(run_dir)
    best_dev = best_dev_weights(run_dir)  # best.weights.h5, or what it was before train.average_last
    run.models.training.load_weights(best_dev)
    test = read_split(run_dir, "test")
    history = _history(run_dir)
    best_epoch = 1 + max(range(len(history)), key=lambda i: float(history[i]["dev_bleu"]))
    rows = []

    def score_as(name: str, checkpoints: list[str]) -> None:
        scores = _scores(run.graph, test, greedy=False, batch_size=args.batch_size)
        rows.append(
            {"weights": name, "checkpoints": checkpoints, "bleu": round(scores.bleu, 2), "chrf": round(scores.chrf, 2)}
        )
        print(f"{name}: {rows[-1]}", file=sys.stderr, flush=True)

    score_as(f"best (epoch {best_epoch})", [str(best_dev.relative_to(run_dir))])
    last = last_checkpoints(run_dir, 2)[-1]
    run.models.training.load_weights(last)
    score_as("last epoch", [last.name])
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.last:
            paths = last_checkpoints(run_dir, n)
            run.models.training.load_weights(average_checkpoints(paths, Path(tmp) / f"average-last-{n}.weights.h5"))
            score_as(f"average of the last {n}", [p.name for p in paths])
    d = run.config.decode
    emit(
        {
            "machine": machine(),
            "note": args.note,
            "run_dir": str(run_dir),
            "epochs": len(history),
            "decoding": {"beam_size": d.beam_size, "alpha": d.alpha},
            "test_sentences": len(test),
            "rows": rows,
        },
        args.out,
    )
    print_table(["weights", "test BLEU", "test chrF"], [[r["weights"], r["bleu"], r["chrf"]] for r in rows])


# --- building on trained runs: ensembles, fine-tuning, back-translation --------------------


def _translate_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "translate", *args]


def _train_command(run_dir: Path, preset: str, overrides: list[str], init_from: Path | None = None) -> list[str]:
    start = ["--init-from", str(init_from)] if init_from else []
    return _translate_command("train", "--preset", preset, "--no-export", *start, *overrides, f"run_dir={run_dir}")


def _new_root(root: Path) -> None:
    """Creates ``--root`` for a benchmark's runs; refuses one that holds anything (never replaces a file)."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise SystemExit(f"--root {root} is not empty: name a new folder (or add --evaluate-only to score its runs)")
    root.mkdir(parents=True, exist_ok=True)


def _test_row(name: str, graph, run_dir: Path, test: list, batch_size: int, seconds: dict) -> dict:
    """One row of a table: BLEU/chrF of ``graph`` on the test split (decoded as exported) and the run's epochs."""
    scores = _scores(graph, test, greedy=False, batch_size=batch_size)
    history = _history(run_dir) if (run_dir / "history.csv").is_file() else []
    row = {
        "model": name,
        "run_dir": str(run_dir),
        "epochs": len(history),
        "train_command_seconds": seconds.get(name),
        "bleu": round(scores.bleu, 2),
        "chrf": round(scores.chrf, 2),
    }
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def _scored(rows: list[dict], title: str, extra: list[str] = ()) -> None:
    print_table(
        ["model", "epochs", *extra, "test BLEU", "test chrF"],
        [[r["model"], r["epochs"], *(r.get(k, "") for k in extra), r["bleu"], r["chrf"]] for r in rows],
    )
    print(f"[{title}] done", file=sys.stderr, flush=True)


def ensemble(args: argparse.Namespace) -> None:
    """Two runs trained side by side, one per core, ensembled, against one run on both cores.

        python -m benchmarks ensemble --minutes 15 --root runs/bench-ensemble \\
            --out benchmarks/results/ensemble.json

    Prepares the preset's corpus once (``--root/prepared``); every run takes
    its split and SentencePiece models with ``data.reuse_from``, so the two
    members can be ensembled. First ``one run`` trains alone on every core
    (seed 1, keeping its last 5 epoch checkpoints for ``averaging``); then the
    two members (seeds 1 and 2) train at once, each pinned to its own core,
    for the same minutes. Scores on the test split with the preset's decoding
    (as exported): the run on both cores, each member, and the members'
    ensemble (:func:`translate.ensemble.load_ensemble`, the graph ``export
    --ensemble`` saves). Then times greedy and beam decoding at batch 64 of
    the single run and of the ensemble, in turns.

    With ``--members RUN RUN [...]`` it trains nothing: it scores those runs
    (trained elsewhere on one preparation, e.g. two 2-hour ``base`` runs side
    by side) and their ensemble the same way, and times the ensemble against
    the first member.
    """
    from translate.ensemble import check_members, load_ensemble
    from translate.prepare import read_split
    from translate.training import load_run

    seconds: dict = {}
    if args.members:
        try:  # one line for runs that cannot be an ensemble's members, before any loading
            check_members(args.members)
        except ValueError as error:
            raise SystemExit(f"--members: {error}") from None
        solo, members = None, [Path(m) for m in args.members]
    else:
        root = Path(args.root)
        prepared, solo = root / "prepared", root / "one_run"
        members = [root / f"member_seed_{seed}" for seed in (1, 2)]
        if not args.evaluate_only:
            seconds = _train_side_by_side(args, root, prepared, solo, members)

    test = read_split(members[0], "test")
    rows, member_rows, graphs = [], [], {}
    if solo is not None:
        single = load_run(solo)
        rows.append(_test_row("one run", single.graph, solo, test, args.batch_size, seconds))
        rows[-1]["cores"] = len(os.sched_getaffinity(0))
        graphs["one run"] = single.graph
    for run_dir in members:
        member = load_run(run_dir)
        name = f"member, seed {member.config.train.seed}"
        rows.append(_test_row(name, member.graph, run_dir, test, args.batch_size, seconds))
        rows[-1]["cores"] = 1
        member_rows.append(rows[-1])
        if solo is None and not graphs:
            graphs["one member"] = member.graph  # the single model the ensemble's speed is set against
    graph, config = load_ensemble(members)[:2]
    name = "ensemble of the two members" if len(members) == 2 else f"ensemble of the {len(members)} members"
    rows.append(_test_row(name, graph, members[0], test, args.batch_size, seconds))
    rows[-1].update(cores=1, epochs=[r["epochs"] for r in member_rows])
    graphs["ensemble"] = graph

    sentences = [s for s, _ in test]
    turns = take_turns(
        {
            name: {
                "beam": lambda g=g: time_decoding(g, sentences, (64,), 1, prefix="beam"),
                "greedy": lambda g=g: time_decoding(lambda s: g(s, greedy=True), sentences, (64,), 1, prefix="greedy"),
            }
            for name, g in graphs.items()
        },
        rounds=args.rounds,
        label="ensemble decoding",
    )
    speed = {
        name: {
            f"{event}_sentences_per_s_batch_64": median(
                t[f"{event}_sentences_per_s_batch_64"] for t in turns[event][name]
            )
            for event in ("beam", "greedy")
        }
        for name in graphs
    }
    d = config.decode
    emit(
        {
            "machine": machine(),
            "note": args.note,
            "preset": args.preset if solo is not None else None,
            "training_minutes_each": args.minutes if solo is not None else None,
            "overrides": args.overrides if solo is not None else None,
            "members": [str(m) for m in members],
            "decoding": {"beam_size": d.beam_size, "alpha": d.alpha},
            "test_sentences": len(test),
            "rows": rows,
            "decoding_speed": speed,
            "decoding_rounds": args.rounds,
        },
        args.out,
    )
    _scored(rows, "ensemble")
    print_table(
        ["model", "beam sentences/s (batch 64)", "greedy sentences/s (batch 64)"],
        [[n, s["beam_sentences_per_s_batch_64"], s["greedy_sentences_per_s_batch_64"]] for n, s in speed.items()],
    )


def _train_side_by_side(args: argparse.Namespace, root: Path, prepared: Path, solo: Path, members: list[Path]) -> dict:
    """``ensemble``'s training: one preparation, one run on every core, then the members one core each."""
    _new_root(root)
    subprocess.run(
        _translate_command("prepare", "--preset", args.preset, *args.overrides, f"run_dir={prepared}"), check=True
    )
    reuse = f"data.reuse_from={prepared}"
    budget = [f"train.max_minutes={args.minutes}", *args.overrides]
    seconds = train_all(
        ["one run"],
        {"one run": _train_command(solo, args.preset, [reuse, *budget, "train.seed=1", "train.keep_checkpoints=5"])},
        jobs=1,
    )
    names = [f"member, seed {seed}" for seed in (1, 2)]
    commands = {
        name: _train_command(run_dir, args.preset, [reuse, *budget, f"train.seed={seed}"])
        for name, run_dir, seed in zip(names, members, (1, 2))
    }
    seconds.update(train_all(names, commands, jobs=2))
    return seconds


def finetune(args: argparse.Namespace) -> None:
    """Fine-tuning on a shift of domain: the Old Testament's model, fine-tuned on the Gospels and Acts.

        python -m benchmarks finetune --minutes 15 --finetune-minutes 5 --root runs/bench-finetune \\
            --out benchmarks/results/finetune.json

    Trains at once, each pinned to its own core, for ``--minutes``: a model
    on the Old Testament only (``bible:en-es?train=ot``) and a model from
    scratch on the Gospels and Acts alone (``?train=gospels+acts``). Then,
    again side by side for ``--finetune-minutes``: the Old-Testament model
    fine-tuned on the Gospels and Acts (``train --init-from``, its
    SentencePiece models, learning rate ``--finetune-lr``), and, as the
    control for the extra minutes, the same fine-tuning on the Old Testament
    itself. Scores each on Romans (held out of every selection) with the
    preset's decoding. ``train.epochs`` is lifted so the minutes end every run.
    """
    from translate.prepare import read_split
    from translate.training import load_run

    root = Path(args.root)
    runs = {
        "Old Testament": root / "ot",
        "Gospels and Acts, from scratch": root / "gospels_acts",
        "Old Testament, fine-tuned on the Gospels and Acts": root / "ot_then_gospels_acts",
        "Old Testament, fine-tuned on the Old Testament (control)": root / "ot_then_ot",
    }
    names = list(runs)
    corpus = {
        names[0]: "bible:en-es?train=ot",
        names[1]: "bible:en-es?train=gospels+acts",
        names[2]: "bible:en-es?train=gospels+acts",
        names[3]: "bible:en-es?train=ot",
    }
    common = ["train.epochs=1000", *args.overrides]
    seconds = {}
    if not args.evaluate_only:
        _new_root(root)
        first = {
            name: _train_command(
                runs[name], args.preset, [f"data.corpus={corpus[name]}", f"train.max_minutes={args.minutes}", *common]
            )
            for name in names[:2]
        }
        seconds.update(train_all(names[:2], first, jobs=2))
        tuned = [f"train.max_minutes={args.finetune_minutes}", f"train.learning_rate={args.finetune_lr}", *common]
        second = {
            name: _train_command(runs[name], args.preset, [f"data.corpus={corpus[name]}", *tuned], runs[names[0]])
            for name in names[2:]
        }
        seconds.update(train_all(names[2:], second, jobs=2))

    rows = []
    for name in names:
        run_dir = runs[name]
        rows.append(
            _test_row(name, load_run(run_dir).graph, run_dir, read_split(run_dir, "test"), args.batch_size, seconds)
        )
        rows[-1]["corpus"] = corpus[name]
        rows[-1]["train_pairs"] = len(read_split(run_dir, "train"))
    emit(
        {
            "machine": machine(),
            "note": args.note,
            "preset": args.preset,
            "training_minutes": args.minutes,
            "finetune_minutes": args.finetune_minutes,
            "finetune_learning_rate": args.finetune_lr,
            "overrides": args.overrides,
            "cores_each": 1,
            "rows": rows,
        },
        args.out,
    )
    _scored(rows, "finetune", ["train_pairs"])


# Half of the training books as parallel data, the other half as Spanish text only: each half
# holds Old- and New-Testament books, about 15,000 verses each (corpora.json counts the groups).
PARALLEL_HALF = "law+history+epistles+revelation"
MONOLINGUAL_HALF = "wisdom+prophets+gospels+acts"


def backtranslation(args: argparse.Namespace) -> None:
    """Back-translation on the built-in corpus: half the books parallel, the other half Spanish only.

        python -m benchmarks backtranslation --minutes 15 --root runs/bench-bt \\
            --full runs/bench-ensemble/member_seed_1 --out benchmarks/results/backtranslation.json

    Trains at once, each pinned to its own core: the reverse model (Spanish
    to English) and the half-data model (English to Spanish), both on
    :data:`PARALLEL_HALF`. Writes the Spanish side of :data:`MONOLINGUAL_HALF`
    to a file and back-translates it with the exported reverse model, with
    beam search and with sampling at once (``translate backtranslate``, one
    core each); then trains the half-data model plus each set of synthetic
    pairs (``data.synthetic``, tagged), again side by side. ``--full`` names
    a run of the same preset on all the training books, trained on one core
    for the same minutes (``ensemble``'s first member is one), scored as
    the full-data row. Scores on Romans with the preset's decoding.
    """
    from translate.bible import parse_books, read_bible
    from translate.prepare import read_split
    from translate.training import load_run

    root = Path(args.root)
    half = f"data.corpus=bible:en-es?train={PARALLEL_HALF}"
    budget = [f"train.max_minutes={args.minutes}", *args.overrides]
    reverse, models, mono = root / "reverse", root / "models", root / "mono.es.txt"
    runs = {
        "half the books": root / "half",
        "half + back-translated (beam)": root / "half_bt_beam",
        "half + back-translated (sampled)": root / "half_bt_sampled",
    }
    synthetic = {"beam": root / "synthetic_beam.tsv", "sampled": root / "synthetic_sampled.tsv"}
    seconds = {}
    if not args.evaluate_only:
        _new_root(root)
        verses = [t for _, t, split in read_bible("en-es", None, parse_books(MONOLINGUAL_HALF)) if split == "train"]
        mono.write_text("".join(v + "\n" for v in verses), encoding="utf-8")
        first = {
            "reverse (es-en, half)": _train_command(
                reverse, args.preset, [f"data.corpus=bible:es-en?train={PARALLEL_HALF}", *budget]
            ),
            "half the books": _train_command(runs["half the books"], args.preset, [half, *budget]),
        }
        seconds.update(train_all(list(first), first, jobs=2))
        subprocess.run(
            _translate_command("export", "--model", str(reverse), "--models-dir", str(models), "--name", "reverse"),
            check=True,
        )
        decode = {
            "back-translate (beam)": ["--out", str(synthetic["beam"])],
            "back-translate (sampled)": ["--out", str(synthetic["sampled"]), "--sample"],
        }
        commands = {
            name: _translate_command("backtranslate", "--model", str(models / "reverse"), "--mono", str(mono), *options)
            for name, options in decode.items()
        }
        seconds.update(train_all(list(commands), commands, jobs=2))
        second = {
            name: _train_command(runs[name], args.preset, [half, f"data.synthetic={synthetic[kind]}", *budget])
            for name, kind in zip(list(runs)[1:], ("beam", "sampled"))
        }
        seconds.update(train_all(list(second), second, jobs=2))

    rows = []
    for name, run_dir in [*runs.items(), *([("all the books", Path(args.full))] if args.full else [])]:
        rows.append(
            _test_row(name, load_run(run_dir).graph, run_dir, read_split(run_dir, "test"), args.batch_size, seconds)
        )
        rows[-1]["train_pairs"] = len(read_split(run_dir, "train"))
    emit(
        {
            "machine": machine(),
            "note": args.note,
            "preset": args.preset,
            "training_minutes_each": args.minutes,
            "cores_each": 1,
            "parallel_books": PARALLEL_HALF,
            "monolingual_books": MONOLINGUAL_HALF,
            "monolingual_sentences": sum(1 for _ in mono.open(encoding="utf-8")) if mono.is_file() else None,
            "synthetic_pairs": {
                kind: sum(1 for _ in path.open(encoding="utf-8")) if path.is_file() else None
                for kind, path in synthetic.items()
            },
            "reverse_model_test": _test_row(
                "reverse (es-en, half)",
                load_run(reverse).graph,
                reverse,
                read_split(reverse, "test"),
                args.batch_size,
                seconds,
            ),
            "overrides": args.overrides,
            "rows": rows,
        },
        args.out,
    )
    _scored(rows, "backtranslation", ["train_pairs"])


# --- beam -------------------------------------------------------------------------------------

BEAM_SETTINGS = [(1, 0.0)] + [(k, alpha) for k in (2, 5, 10) for alpha in (0.0, 0.6, 1.0)]


def beam(args: argparse.Namespace) -> None:
    """Greedy vs beam search: BLEU/chrF and decoding speed for each beam width and alpha.

        python -m benchmarks beam --run runs/quick --out benchmarks/results/beam.json
        python -m benchmarks beam --run runs/base --split dev --settings 5:0.6,5:1.0,10:0.6

    Decodes the run's test split (Romans for the built-in Bible; with
    ``--split dev`` its dev split, James, where a decoding can be chosen
    without looking at the test set) with greedy search and with beam widths
    2, 5 and 10 at length penalties alpha 0, 0.6 and 1.0, in batches of 64
    through the same in-graph functions that the export saves, and prints
    one JSON object: a row per setting (BLEU, chrF, sentences per second, the
    median of ``--repeats`` passes) and ``beam5_over_greedy_speed``, beam
    K=5's speed at each alpha as a fraction of greedy's.
    """
    settings = BEAM_SETTINGS
    if args.settings:
        try:
            settings = [(int(b), float(a)) for b, a in (item.split(":") for item in args.settings.split(","))]
        except ValueError:
            raise SystemExit(f"--settings must look like 1:0,5:1.0, got {args.settings!r}") from None

    import tensorflow as tf

    from translate.evaluation import score
    from translate.prepare import read_split
    from translate.training import load_run

    pairs = read_split(Path(args.run), args.split)
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    rows = []
    for width, alpha in settings:
        run = load_run(args.run, [f"decode.beam_size={width}", f"decode.alpha={alpha}"])
        batches = [sources[i : i + args.batch_size] for i in range(0, len(sources), args.batch_size)]
        run.graph(batches[0])  # trace once, outside the timing
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            hypotheses = [t for batch in batches for t in run.graph(batch)]
            times.append(time.perf_counter() - started)
        seconds = statistics.median(times)
        scores = score(hypotheses, references)
        rows.append(
            {
                "beam": width,
                "alpha": alpha,
                "bleu": round(scores.bleu, 2),
                "chrf": round(scores.chrf, 2),
                "sentences_per_s": round(len(sources) / seconds, 1),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    speed = {(r["beam"], r["alpha"]): r["sentences_per_s"] for r in rows}
    report = {
        "run": args.run,
        "split": args.split,
        f"{args.split}_sentences": len(sources),
        "batch_size": args.batch_size,
        "machine": machine(),
        "tensorflow": tf.__version__,
        "bleu_signature": scores.bleu_signature,
        "chrf_signature": scores.chrf_signature,
        "rows": rows,
        "beam5_over_greedy_speed": {
            str(alpha): round(speed[(5, alpha)] / speed[(1, 0.0)], 3)
            for alpha in (0.0, 0.6, 1.0)
            if (5, alpha) in speed and (1, 0.0) in speed
        },
    }
    emit(report, args.out)


# --- the command line ---------------------------------------------------------------------


# --- references -------------------------------------------------------------------------------


def references(args: argparse.Namespace) -> None:
    """How high BLEU goes on the built-in test split: one English version scored against the others.

        python -m benchmarks references --out benchmarks/results/references.json

    The test split of ``bible:es-en`` (Romans) in the King James Version is
    scored as if it were a system's output, against the World English Bible
    (the corpus's target side), the Bible in Basic English and both at once,
    as ``translate evaluate --builtin bible:es-en`` scores a hypothesis file:
    two human translations of the same verses, so a ceiling for a model's
    single-reference scores. Reads the Bible only; seconds on one core.
    """
    from translate.bible import read_references
    from translate.evaluation import per_reference_scores, score

    english = read_references(args.pair, "test")
    streams = dict(zip(english.names, english.references))
    if args.hypothesis not in streams:
        raise SystemExit(f"--hypothesis must be one of {', '.join(english.names)}, got {args.hypothesis!r}")
    hypotheses = streams.pop(args.hypothesis)
    # A verse the hypothesis version lacks is left out, as a reference lacking a verse is.
    kept = [j for j, text in enumerate(hypotheses) if text is not None]
    hypotheses = [hypotheses[j] for j in kept]
    streams = {name: [stream[j] for j in kept] for name, stream in streams.items()}
    rows = {
        name: scores.to_dict()
        for name, scores in per_reference_scores(hypotheses, list(streams.values()), list(streams)).items()
    }
    rows[" + ".join(streams)] = score(hypotheses, *streams.values()).to_dict()
    emit(
        {"machine": machine(), "pair": args.pair, "split": "test", "hypothesis": args.hypothesis, "scores": rows},
        args.out,
    )
    print_table(
        ["references", "BLEU", "chrF", "TER"],
        [[name, round(r["bleu"], 2), round(r["chrf"], 2), round(r["ter"], 2)] for name, r in rows.items()],
    )


def register(commands) -> None:
    p = subcommand(commands, "quality", quality, "variants trained for the same minutes, then scored (quality_*.json)")
    p.add_argument("--preset", default="quick")
    p.add_argument("--table", choices=sorted(TABLES), default="attention", help="which variants")
    p.add_argument("--minutes", type=float, default=4.0, help="training budget of every variant")
    p.add_argument("--variants", help="names from the table, separated by ';' (default: all)")
    p.add_argument("--jobs", type=int, default=1, help="variants training at once, one core each")
    p.add_argument(
        "--root", default="benchmarks/results/quality_at_budget", help="run folders go here (never replaced: refused)"
    )
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument(
        "--evaluate-only",
        action="store_true",
        help="score the variants' run folders already under --root (trained by an earlier call)",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="applied to every variant")

    p = subcommand(commands, "curve", curve, "dev and test BLEU of every kept epoch against training minutes")
    p.add_argument("runs", nargs="+", type=Path, help="run folders trained with train.keep_checkpoints")
    p.add_argument("--ensemble", action="store_true", help="the runs are one ensemble's members: one curve, theirs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--png", type=Path, help="write the curve here")
    p.add_argument("--note", default="", help="how the runs were trained (kept in the JSON)")

    p = subcommand(commands, "averaging", averaging, "the best epoch against averages of the last N (averaging.json)")
    p.add_argument("--run", required=True, help="a run folder trained with train.keep_checkpoints")
    p.add_argument("--last", type=int, nargs="+", default=[2, 3, 5], help="average the last N epoch checkpoints")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--note", default="", help="how the run was trained (kept in the JSON)")

    p = subcommand(commands, "ensemble", ensemble, "two runs side by side, ensembled, against one on both cores")
    _building_on_runs(p, "runs/bench-ensemble")
    p.add_argument(
        "--members",
        nargs="+",
        metavar="RUN",
        help="score these trained runs (one preparation) and their ensemble instead of training any",
    )
    p.add_argument("--rounds", type=int, default=3, help="decoding turns of each model; the median counts")

    p = subcommand(commands, "finetune", finetune, "a model fine-tuned on another domain of the corpus")
    _building_on_runs(p, "runs/bench-finetune")
    p.add_argument("--finetune-minutes", type=float, default=5.0, help="training budget of the fine-tuning runs")
    p.add_argument("--finetune-lr", type=float, default=0.001, help="learning rate of the fine-tuning runs")

    p = subcommand(commands, "backtranslation", backtranslation, "half the books, plus back-translated pairs")
    _building_on_runs(p, "runs/bench-bt")
    p.add_argument("--full", help="a run of the same preset on all the books, scored as the full-data row")

    p = subcommand(commands, "beam", beam, "BLEU and speed of each beam width and alpha (beam.json)")
    p.add_argument("--run", required=True, help="a trained run folder")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3, help="timed passes per setting; the median counts")
    p.add_argument("--settings", help="only these BEAM:ALPHA settings, e.g. 1:0,5:1.0 (default: the full grid)")
    p.add_argument("--split", choices=("test", "dev"), default="test", help="the split decoded and scored")
    p.add_argument("--out", help="also write the JSON here")

    p = subcommand(commands, "references", references, "human translations scored against each other (references.json)")
    p.add_argument("--pair", default="es-en", help="the built-in corpus whose target versions to compare")
    p.add_argument("--hypothesis", default="King James Version", help="the version scored as the output")
    p.add_argument("--out", help="also write the JSON here")


def _building_on_runs(p: argparse.ArgumentParser, root: str) -> None:
    """The options shared by ``ensemble``, ``finetune`` and ``backtranslation``."""
    p.add_argument("--preset", default="quick")
    p.add_argument("--minutes", type=float, default=15.0, help="training budget of every run")
    p.add_argument("--root", default=root, help="a new folder for the runs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--note", default="", help="the machine's state: what else was running (kept in the JSON)")
    p.add_argument("--evaluate-only", action="store_true", help="score the runs already under --root")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="applied to every training run")
