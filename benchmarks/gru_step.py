"""Keras's GRU against ours (translate/gru.py) in the training step, taking turns in one process.

    python benchmarks/gru_step.py --out benchmarks/results/gru_step.json
    python benchmarks/gru_step.py --preset quick --set model.encoder_units=256 --set train.batch_size=64

Builds the same model twice on the preset's built-in corpus (prepared into
a temp folder, or ``--run-dir`` as it was prepared), once with
``keras.layers.GRU`` and once with ``translate.gru.GRU``, with the same
initial weights, and runs the compiled train step of each over the same
batches: ``--rounds`` rounds of ``--steps`` steps, the two models taking
turns, so that the machine's drift hits both alike (absolute times here
move 10-20% between runs). The median round counts. Default sizes: the ``compare.py`` equal-size model (everything 256,
``luong_general``, batch 64) and the quick preset as shipped.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from report import emit, machine, print_table

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EQUAL_SIZE = ["model.attention=luong_general", "model.embedding_dim=256", "model.encoder_units=256",
              "model.decoder_units=256", "model.attention_units=256", "train.batch_size=64"]


def race(config, prepared, steps: int, rounds: int, warmup: int) -> dict:
    """Median ms per step of each GRU, and their ratio."""
    import keras

    import translate.model
    from translate.gru import GRU
    from translate.training import build_run, compile_for_training, training_dataset

    kinds = {"keras": keras.layers.GRU, "ours": GRU}
    runs = {}
    original = translate.model._RNNS["gru"]
    try:
        for name, layer_class in kinds.items():
            translate.model._RNNS["gru"] = (layer_class, 1)
            keras.utils.set_random_seed(config.train.seed)
            runs[name] = build_run(config, prepared.run_dir, prepared.src_model, prepared.tgt_model)
            compile_for_training(runs[name], config)
    finally:
        translate.model._RNNS["gru"] = original
    batches = list(training_dataset(runs["keras"], config, prepared).repeat().take(warmup + steps * rounds))
    result = take_turns({name: (run, batches) for name, run in runs.items()}, steps, rounds, warmup)
    medians = result["ms_per_step"]
    return {"batch_size": config.train.batch_size, **result, "speedup": round(medians["keras"] / medians["ours"], 3)}


def take_turns(contestants: dict, steps: int, rounds: int, warmup: int) -> dict:
    """Compiled train steps of several runs, in turns: ``rounds`` rounds of ``steps`` steps each.

    ``contestants`` maps a name to ``(run, batches)``, each list holding at
    least ``warmup + steps * rounds`` batches; a round takes every run's next
    ``steps`` batches. Returns the median round's ms per step and sentences
    per second of each run, and every round's ms per step.
    """
    import numpy as np

    for run, batches in contestants.values():
        for (source, target_in), target_out in batches[:warmup]:
            run.models.training.train_on_batch((source, target_in), target_out)
    ms: dict[str, list[float]] = {name: [] for name in contestants}
    rates: dict[str, list[float]] = {name: [] for name in contestants}
    for r in range(rounds):
        for name, (run, batches) in contestants.items():
            chunk = batches[warmup + r * steps : warmup + (r + 1) * steps]
            begun = time.perf_counter()
            for (source, target_in), target_out in chunk:
                run.models.training.train_on_batch((source, target_in), target_out)
            seconds = time.perf_counter() - begun
            ms[name].append(1000 * seconds / steps)
            rates[name].append(sum(int(source.shape[0]) for (source, _), _ in chunk) / seconds)
    return {"ms_per_step": {name: round(float(np.median(values)), 1) for name, values in ms.items()},
            "sentences_per_s": {name: round(float(np.median(values)), 1) for name, values in rates.items()},
            "rounds_ms_per_step": {name: [round(v, 1) for v in values] for name, values in ms.items()}}


def add_race_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every race in turns takes: the corpus and the rounds."""
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--run-dir", help="a prepared run folder of the preset's corpus (default: prepare one)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=20)


def race_setup(preset: str, run_dir: str | None, overrides: list[str], tmp: str):
    """``(config, prepared)`` of a race: the preset with ``overrides`` on ``run_dir`` as it was prepared
    (its own data settings), or on the preset's corpus prepared into ``tmp``.

    A ``data.*`` override with ``run_dir`` is refused: preparing that folder
    again with other data settings would rebuild it, and a run's data with it.
    """
    from ours import config_for
    from translate.config import load_config
    from translate.prepare import load_prepared, prepare

    if not run_dir:
        config = load_config(preset, overrides=[*overrides, f"run_dir={tmp}/run"])
        return config, prepare(config, progress=False)
    data = [o for o in overrides if o.startswith("data.")]
    if data:
        raise SystemExit(f"--run-dir {run_dir} keeps its own data settings; drop {', '.join(data)} "
                         "(or leave out --run-dir to prepare the corpus afresh)")
    config = config_for(Path(run_dir), preset, overrides)
    return config, load_prepared(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_race_arguments(parser)
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                        help="one model to race, by overrides (default: the equal-size model and the preset)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    variants = {"custom": args.set} if args.set else {"equal size (compare.py)": EQUAL_SIZE, args.preset: []}
    report = {"machine": machine(), "preset": args.preset, "steps": args.steps, "rounds": args.rounds, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir
        for label, overrides in variants.items():
            config, prepared = race_setup(args.preset, run_dir, overrides, tmp)
            run_dir = str(prepared.run_dir)  # prepared once, for every variant
            report["models"][label] = {"overrides": overrides,
                                       **race(config, prepared, args.steps, args.rounds, args.warmup)}
    print_table(["model", "batch", "Keras GRU, ms/step", "ours, ms/step", "speedup"],
                [[label, r["batch_size"], r["ms_per_step"]["keras"], r["ms_per_step"]["ours"], r["speedup"]]
                 for label, r in report["models"].items()])
    emit(report, args.out)


if __name__ == "__main__":
    main()
