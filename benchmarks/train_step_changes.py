"""Two changes to the training step, each against what it replaced, taking turns in one process.

    python benchmarks/train_step_changes.py --out benchmarks/results/train_step_changes.json

On the ``compare.py`` equal-size model (everything 256, ``luong_general``,
batch 64) and the quick preset's built-in corpus (prepared into a temp
folder, or ``--run-dir`` as it was prepared):

* ``loss``: the cross-entropy with a written-out gradient
  (``translate.losses.sparse_cross_entropy``) against TensorFlow's fused
  ``SparseSoftmaxCrossEntropyWithLogits`` (what the loss used before), two
  models with the same initial weights on the same batches: ms per step;
* ``buckets``: the pipeline's length buckets against the earlier, wider ones,
  one model on batches from each: sentences per second, and the share of
  padded positions of each (``profiling.padding``).

Each race runs ``--rounds`` rounds of ``--steps`` steps, the contestants
taking turns (``gru_step.take_turns``), so the machine's drift hits both alike;
the median round counts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from gru_step import EQUAL_SIZE, add_race_arguments, race_setup, take_turns
from report import emit, machine, print_table

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The pipeline's boundaries before the 2-piece buckets.
WIDER_BUCKETS = (8, 12, 16, 20, 24, 32, 40, 48, 64, 80, 100, 128)


def fused_loss_class():
    """``SmoothedCrossEntropy`` as it was: TensorFlow's fused op, no label smoothing."""
    from keras import ops

    from translate.losses import PAD_ID, SmoothedCrossEntropy

    class FusedCrossEntropy(SmoothedCrossEntropy):
        def call(self, y_true, y_pred):
            y_true = ops.cast(y_true, "int32")
            nll = ops.sparse_categorical_crossentropy(y_true, ops.cast(y_pred, self.dtype), from_logits=True)
            real = ops.cast(ops.not_equal(y_true, PAD_ID), self.dtype)
            return ops.divide_no_nan(nll * real, ops.sum(real))

    return FusedCrossEntropy


def build(config, prepared, loss_class=None):
    """A compiled run with the config's seed, optionally with another loss class."""
    import keras

    import translate.training
    from translate.training import build_run, compile_for_training

    keras.utils.set_random_seed(config.train.seed)
    run = build_run(config, prepared.run_dir, prepared.src_model, prepared.tgt_model)
    original = translate.training.SmoothedCrossEntropy
    try:
        if loss_class is not None:
            translate.training.SmoothedCrossEntropy = loss_class
        compile_for_training(run, config)
    finally:
        translate.training.SmoothedCrossEntropy = original
    return run


def race_loss(config, prepared, steps: int, rounds: int, warmup: int) -> dict:
    from translate.training import training_dataset

    runs = {"fused op": build(config, prepared, fused_loss_class()), "ours": build(config, prepared)}
    batches = list(training_dataset(runs["ours"], config, prepared).repeat().take(warmup + steps * rounds))
    result = take_turns({name: (run, batches) for name, run in runs.items()}, steps, rounds, warmup)
    ms = result["ms_per_step"]
    return {**result, "speedup": round(ms["fused op"] / ms["ours"], 3)}


def race_buckets(config, prepared, steps: int, rounds: int, warmup: int) -> dict:
    import translate.pipeline
    from profiling import padding
    from translate.training import training_dataset

    run = build(config, prepared)
    boundaries = {"wider": WIDER_BUCKETS, "ours": translate.pipeline._BUCKET_BOUNDARIES}
    batches, padded = {}, {}
    try:
        for name, bounds in boundaries.items():
            translate.pipeline._BUCKET_BOUNDARIES = bounds
            batches[name] = list(training_dataset(run, config, prepared).repeat().take(warmup + steps * rounds))
            padded[name] = padding(run, config, prepared)["bucketed"]
    finally:
        translate.pipeline._BUCKET_BOUNDARIES = boundaries["ours"]
    result = take_turns({name: (run, batches[name]) for name in boundaries}, steps, rounds, warmup)
    rates = result["sentences_per_s"]
    return {"boundaries": {name: list(b) for name, b in boundaries.items()}, "padding_share": padded, **result,
            "speedup": round(rates["ours"] / rates["wider"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_race_arguments(parser)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="overrides on top of the equal-size model (e.g. a tiny smoke setting)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    report = {"machine": machine(), "preset": args.preset, "overrides": [*EQUAL_SIZE, *args.set],
              "steps": args.steps, "rounds": args.rounds}
    with tempfile.TemporaryDirectory() as tmp:
        config, prepared = race_setup(args.preset, args.run_dir, [*EQUAL_SIZE, *args.set], tmp)
        report["loss"] = race_loss(config, prepared, args.steps, args.rounds, args.warmup)
        report["buckets"] = race_buckets(config, prepared, args.steps, args.rounds, args.warmup)
    loss, buckets = report["loss"], report["buckets"]
    print_table(["change", "before", "after", "speedup"], [
        ["loss: ms per step (fused op -> ours)", loss["ms_per_step"]["fused op"], loss["ms_per_step"]["ours"],
         loss["speedup"]],
        ["buckets: sentences/s (wider -> 2 pieces)", buckets["sentences_per_s"]["wider"],
         buckets["sentences_per_s"]["ours"], buckets["speedup"]],
        ["buckets: padding share", buckets["padding_share"]["wider"], buckets["padding_share"]["ours"], ""],
    ])
    emit(report, args.out)


if __name__ == "__main__":
    main()
