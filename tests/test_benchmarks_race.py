"""The race in turns of ``python -m benchmarks race`` (issue 9): its protocol and ratios, with stand-in workers,
and the real workers' events on the tiny model."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

import pytest

from benchmarks import compare, harness
from conftest import export_nodes

# A stand-in contestant (run from the repository root, as every worker is): each event reports a fixed time
# for 10 sentences (argv: event=seconds ...).
STAND_IN = """
import sys
from benchmarks.harness import serve

def turn(seconds):
    def run():
        if seconds < 0:
            raise RuntimeError("this event breaks")
        return {"seconds": seconds, "sentences": 10, "tokens": 100}
    return run

serve({name: turn(float(s)) for name, s in (arg.split("=") for arg in sys.argv[1:])})
"""


def stand_in(name: str, *events: str) -> harness.Worker:
    return harness.Worker(name, [sys.executable, "-c", STAND_IN, *events], dict(os.environ))


def test_serve_answers_each_event_and_names_errors():
    out = io.StringIO()
    events = {"fast": lambda: {"seconds": 1.0}, "broken": lambda: 1 / 0}
    harness.serve(events, iter(["fast\n", "\n", "nope\n", "broken\n", "quit\n", "fast\n"]), out)
    answers = out.getvalue().splitlines()
    assert answers[0] == 'RACE {"ready": ["broken", "fast"]}'
    assert json.loads(answers[1].removeprefix("RACE ")).keys() == {"seconds", "idle_cpu_seconds"}
    assert "unknown event 'nope'" in answers[2]
    assert "ZeroDivisionError" in answers[3]
    assert len(answers) == 4  # nothing runs after quit


def test_race_ratios_take_the_faster_baseline_each_round():
    workers = {
        "baseline": stand_in("baseline", "train=2", "greedy_b64=2"),
        "baseline_serial_ops": stand_in("baseline_serial_ops", "train=4", "greedy_b64=1"),
        "baseline_bfloat16": stand_in("baseline_bfloat16", "train=1.6"),
        "ours_equal": stand_in("ours_equal", "train=1"),
        "ours_quick": stand_in("ours_quick", "greedy_b64=0.5", "beam5_b64=1"),
    }
    try:
        turns = harness.take_turns({name: worker.turns() for name, worker in workers.items()}, rounds=3, warmup_turns=2)
    finally:
        for worker in workers.values():
            worker.close()
    assert {name: len(runs) for name, runs in turns["train"].items()} == {
        "baseline": 3,
        "baseline_serial_ops": 3,
        "baseline_bfloat16": 3,
        "ours_equal": 3,
    }
    report = compare.summarize_race(turns)
    # The bfloat16 probe trains fastest of the baselines: train_speedup is measured against it; the tutorial
    # as it trains (float32, the better thread setting) is the other ratio.
    assert report["ratios"] == {
        "train_speedup": 1.6,
        "train_speedup_float32_baseline": 2.0,
        "greedy_speedup_b64": 2.0,
        "beam5_over_greedy_b64": 0.5,
    }
    assert report["per_round"]["train_speedup"] == [1.6, 1.6, 1.6]
    assert report["rates"]["greedy_b64"]["ours_quick"] == {"sentences_per_s": 20.0, "tokens_per_s": 200.0}


def test_a_broken_or_missing_worker_is_named():
    worker = stand_in("ours_quick", "greedy_b64=-1")
    try:
        with pytest.raises(RuntimeError, match="race worker ours_quick: RuntimeError: this event breaks"):
            worker.run("greedy_b64")
    finally:
        worker.close()
    with pytest.raises(RuntimeError, match="race worker gone exited with code 3"):
        harness.Worker("gone", [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ))


# Our model at the tiny run's sizes (the quick preset's overrides of a race worker or of ``ours``), with
# the tiny setting's searches: one loop a signature and short outputs, as ``ours`` exports and decodes what
# barely trained (the quick preset's two shards and 150-piece cap cost most of its time).
TINY_SET = [
    "model.embedding_dim=8",
    "model.encoder_units=4",
    "model.decoder_units=8",
    "model.attention_units=8",
    "train.batch_size=8",
    "decode.shards=1",
    "decode.max_length_cap=40",
]


def baseline_args(tiny_run, **options) -> argparse.Namespace:
    """A race worker's options for the tiny run: the baseline's, and ``options`` on top."""
    return argparse.Namespace(
        run_dir=str(tiny_run.config.run_dir),
        units=8,
        batch_size=8,
        max_length=5,
        seed=1,
        baseline_weights=None,
        train_turn_seconds=0.01,
        **options,
    )


@pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning", "ignore:.*was called on layer:UserWarning")
def test_real_workers_train_and_decode_in_turns(tiny_run, tiny_export):
    args = baseline_args(
        tiny_run,
        decode_passes=2,
        preset="quick",
        train=True,
        precision="float32",
        train_only=False,
        export=[f"greedy={tiny_export}"],
        set=TINY_SET,
    )
    test_sentences = len((Path(args.run_dir) / "data" / "test.src").read_text(encoding="utf-8").splitlines())
    for events in (compare.baseline_worker(args), compare.ours_worker(args)):
        assert sorted(events) == ["greedy_b1", "greedy_b64", "train"]
        trained = events["train"]()
        assert trained["steps"] >= 1 and trained["sentences"] == 8 * trained["steps"] and trained["seconds"] > 0
        for size in (1, 64):
            decoded = events[f"greedy_b{size}"]()
            assert decoded["sentences"] == 2 * min(test_sentences, harness.DECODE_SENTENCES[size])
            assert decoded["seconds"] > 0


@pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning", "ignore:.*was called on layer:UserWarning")
def test_the_baselines_bfloat16_probe_only_trains_and_leaves_the_policy_alone(tiny_run):
    import keras

    args = baseline_args(tiny_run, decode_passes=1, precision="mixed_bfloat16", train_only=True)
    events = compare.baseline_worker(args)
    assert sorted(events) == ["train"]
    assert keras.mixed_precision.global_policy().name == "float32"
    trained = events["train"]()
    assert trained["steps"] >= 1 and trained["sentences"] == 8 * trained["steps"]


def _graph_dtypes(export: Path) -> set[str]:
    """The dtypes named by any node of a SavedModel's graphs or their functions."""
    from tensorflow.python.framework import dtypes

    return {dtypes.as_dtype(v.type).name for node in export_nodes(export) for v in node.attr.values() if v.type}


@pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning", "ignore:.*was called on layer:UserWarning")
def test_our_side_of_compare_exports_in_float32_after_a_budget_in_mixed_precision(tiny_run, tmp_path):
    # What compare times must be what train ships: a float32 export, whatever precision the budget trained in.
    args = argparse.Namespace(
        run_dir=str(tiny_run.config.run_dir),
        preset="quick",
        set=[*TINY_SET, "train.precision=mixed_bfloat16"],
        minutes=0.001,
        warmup_steps=1,
        repeats=1,
        label="ours",
        keep_exports=str(tmp_path / "exports"),
        out=str(tmp_path / "ours.json"),
    )
    compare.ours(args)
    report = json.loads((tmp_path / "ours.json").read_text())
    assert report["train_steps"] >= 1 and report["greedy_sentences_per_s_batch_64"] > 0
    for name in ("greedy", "beam5"):
        (version,) = (tmp_path / "exports" / name).iterdir()
        dtypes = _graph_dtypes(version)
        assert "float32" in dtypes and "bfloat16" not in dtypes, (name, dtypes)
