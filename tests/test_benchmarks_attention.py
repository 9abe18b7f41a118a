"""Smoke tests of ``python -m benchmarks attention`` (issue 17) on the tiny corpus and model."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, TINY_OVERRIDES


def run_script(*args, tmp_path) -> dict:
    out = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "benchmarks", "attention", *args, "--out", str(out)],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    return json.loads(out.read_text(encoding="utf-8"))


def on_the_tiny_run(tiny_run) -> list[str]:
    """``--run-dir`` and the tiny model's overrides: the run folder as prepared keeps its own data settings, so
    only the model and training overrides go on top, less the query's, which the variants set themselves."""
    model_and_training = [o for o in TINY_OVERRIDES if not o.startswith(("data.", "model.attention_query_input"))]
    return ["--run-dir", str(tiny_run.run_dir), *(f"--set={o}" for o in model_and_training)]


def test_training_race_times_every_attention_in_turns(tiny_run, tmp_path):
    report = run_script(
        *on_the_tiny_run(tiny_run),
        "--steps",
        "2",
        "--rounds",
        "2",
        "--warmup",
        "1",
        tmp_path=tmp_path,
    )
    training = report["training"]
    assert training["batch_size"] == 8
    names = {"luong_dot", "bahdanau", "bahdanau, tf.while_loop", "bahdanau, query s_{t-1}"}
    assert set(training["ms_per_step"]) == names
    assert all(ms > 0 for ms in training["ms_per_step"].values())
    assert all(len(rounds) == 2 for rounds in training["rounds_ms_per_step"].values())
    assert training["ratio_to_luong_dot"]["luong_dot"] == 1.0
    assert training["ratio_to_luong_dot"]["bahdanau"] > 0


def test_mixed_precision_variants_are_measured_against_luong_dot_in_mixed_precision(tiny_run, tmp_path):
    report = run_script(
        *on_the_tiny_run(tiny_run),
        "--variants",
        "luong_dot, mixed_bfloat16",
        "bahdanau, mixed_bfloat16",
        "--steps",
        "1",
        "--rounds",
        "1",
        "--warmup",
        "1",
        tmp_path=tmp_path,
    )
    ratios = report["training"]["ratio_to_luong_dot"]
    assert ratios["luong_dot, mixed_bfloat16"] == 1.0 and ratios["bahdanau, mixed_bfloat16"] > 0


def test_decoding_race_exports_greedy_and_beam_of_each_run(tiny_run, tmp_path):
    run = str(tiny_run.run_dir)
    report = run_script(
        "--decode",
        f"bahdanau={run}",
        f"luong_dot={run}",
        "--decode-rounds",
        "2",
        "--decode-batch",
        "4",
        "--decode-sentences",
        "8",
        tmp_path=tmp_path,
    )
    decoding = report["decoding"]
    assert decoding["sentences"] == 8 and report["decode_rounds"] == 2
    assert set(decoding["sentences_per_s"]) == {
        "bahdanau greedy",
        "bahdanau beam5",
        "luong_dot greedy",
        "luong_dot beam5",
    }
    assert all(rate > 0 for rate in decoding["sentences_per_s"].values())
    assert set(decoding["ratio_to_luong_dot"]) == {"bahdanau greedy", "bahdanau beam5"}
