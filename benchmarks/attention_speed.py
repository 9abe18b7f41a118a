"""Bahdanau attention against Luong dot at the same sizes: training step and SavedModel decoding, in turns.

    taskset -c 0 python benchmarks/attention_speed.py --out benchmarks/results/attention_speed_gru.json
    taskset -c 0 python benchmarks/attention_speed.py --run-dir /tmp/quick --cell lstm
    taskset -c 0 python benchmarks/attention_speed.py --decode bahdanau=runs/b luong_dot=runs/l

Training: builds the preset's model (quick: batch 16) once per variant, all
with the same sizes and the same batches, and runs their compiled train
steps (``translate train``'s model class) in turns, ``--rounds`` rounds of
``--steps`` steps, so that the machine's drift hits every variant alike; the
median round counts. Variants: ``luong_dot`` (attention after Keras's fused
RNN) and ``bahdanau`` (attention inside the recurrence, the hoisted loop of
``translate/bahdanau.py``). The plain ``tf.scan`` of Keras cells that the
hoisted loop replaced is not raced here: under ``train_on_batch``'s static
batch size it stops in a oneDNN error on this machine.

Decoding (``--decode NAME=RUN_DIR ...``, trained run folders): exports each
run twice (greedy and beam 5, as ``benchmarks/ours.py`` does), loads the
SavedModels with ``translate.load``, and times them in turns on the test
split at batch 64: ``--decode-rounds`` rounds of one pass each, median round.

Pin it to one core (``taskset -c N``): the preset's quick model is what one
core of a 2-core laptop trains.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

from gru_step import add_race_arguments, race_setup, take_turns
from report import emit, machine, print_table

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = {
    "luong_dot": ["model.attention=luong_dot"],
    "bahdanau": ["model.attention=bahdanau"],
}


def training_race(args, tmp: str) -> dict:
    """Median ms per train step of each variant (``translate train``'s model), in turns."""
    import keras

    from translate.trainer import GradNormModel
    from translate.training import build_run, compile_for_training, training_dataset

    runs, run_dir, batches = {}, args.run_dir, None
    for name, overrides in VARIANTS.items():
        if name not in args.variants:
            continue
        config, prepared = race_setup(args.preset, run_dir, [*overrides, f"model.cell={args.cell}", *args.set], tmp)
        run_dir = str(prepared.run_dir)
        keras.utils.set_random_seed(config.train.seed)
        run = build_run(config, prepared.run_dir, prepared.src_model, prepared.tgt_model, training_class=GradNormModel)
        compile_for_training(run, config)
        runs[name] = run
        if batches is None:
            batches = list(training_dataset(run, config, prepared, repeat=True).take(
                args.warmup + args.steps * args.rounds))

    result = take_turns({name: (run, batches) for name, run in runs.items()}, args.steps, args.rounds, args.warmup)
    ms = result["ms_per_step"]
    return {"batch_size": int(batches[0][0][0].shape[0]), **result,
            "ratio_to_luong_dot": {name: round(ms[name] / ms["luong_dot"], 3) for name in ms if "luong_dot" in ms}}


def decoding_race(args, tmp: str) -> dict:
    """Sentences/s of each run's greedy and beam-5 exports at batch 64, in turns."""
    import numpy as np

    import translate
    from timing import decode_passes
    from translate.export import export
    from translate.inference import TranslationGraph
    from translate.prepare import read_split
    from translate.training import load_run

    translators, sources = {}, None
    for spec in args.decode:
        name, _, run_dir = spec.partition("=")
        if not run_dir:
            raise SystemExit(f"--decode takes NAME=RUN_DIR, got {spec!r}")
        if sources is None:
            sources = [s for s, _ in read_split(Path(run_dir), "test")][:args.decode_sentences]
        run = load_run(run_dir)
        for search, beam in (("greedy", 1), ("beam5", 5)):
            # One loaded run, two searches over its models (as benchmarks/ours.py exports them).
            decode = dataclasses.replace(run.config.decode, beam_size=beam, alpha=0.0 if beam == 1 else 0.6)
            graph = TranslationGraph(run.models, run.src_model, run.tgt_model, decode)
            path = export(graph, dataclasses.replace(run.config, decode=decode), run.src_model, run.tgt_model, tmp,
                          f"{name}-{search}")
            translators[f"{name} {search}"] = translate.load(path)
    for translator in translators.values():  # untimed: the first trace of each batch shape
        decode_passes(translator, sources, args.decode_batch)
    rates: dict[str, list[float]] = {name: [] for name in translators}
    for r in range(args.decode_rounds):
        names = list(translators)
        for name in names[r % len(names):] + names[:r % len(names)]:  # the order rotates each round
            begun = time.perf_counter()
            decode_passes(translators[name], sources, args.decode_batch)
            rates[name].append(len(sources) / (time.perf_counter() - begun))
    medians = {name: round(float(np.median(v)), 1) for name, v in rates.items()}
    ratios = {}
    for name, value in medians.items():
        model, search = name.split(" ")
        if model != "luong_dot" and f"luong_dot {search}" in medians:
            ratios[name] = round(value / medians[f"luong_dot {search}"], 3)
    return {"batch_size": args.decode_batch, "sentences": len(sources), "runs": dict(s.partition("=")[::2]
            for s in args.decode), "sentences_per_s": medians,
            "rounds_sentences_per_s": {n: [round(v, 1) for v in vs] for n, vs in rates.items()},
            "ratio_to_luong_dot": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_race_arguments(parser)
    parser.add_argument("--cell", default="gru", choices=["gru", "lstm"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--decode", nargs="*", default=[], metavar="NAME=RUN_DIR",
                        help="trained run folders whose exports to time (instead of training steps)")
    parser.add_argument("--decode-rounds", type=int, default=5)
    parser.add_argument("--decode-batch", type=int, default=64)
    parser.add_argument("--decode-sentences", type=int, default=256, help="test sentences per pass")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    report = {"machine": machine(), "preset": args.preset, "cell": args.cell, "overrides": args.set,
              "steps": args.steps, "rounds": args.rounds}
    with tempfile.TemporaryDirectory() as tmp:
        if args.decode:
            report["decode_rounds"] = args.decode_rounds
            report["decoding"] = decoding = decoding_race(args, tmp)
            print_table(["export", "sentences/s", "x luong_dot"],
                        [[name, rate, decoding["ratio_to_luong_dot"].get(name, "")]
                         for name, rate in decoding["sentences_per_s"].items()])
        else:
            report["training"] = training = training_race(args, tmp)
            print_table(["variant", "ms/step", "sentences/s", "x luong_dot"],
                        [[name, ms, training["sentences_per_s"][name], training["ratio_to_luong_dot"].get(name, "")]
                         for name, ms in training["ms_per_step"].items()])
    emit(report, args.out)


if __name__ == "__main__":
    main()
