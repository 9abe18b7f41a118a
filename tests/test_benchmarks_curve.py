"""Smoke test of ``python -m benchmarks curve`` on the shared tiny run, which keeps its epoch checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_learning_curve_scores_every_kept_epoch_and_the_best_checkpoint(tiny_run, tmp_path):
    assert tiny_run.config.train.keep_checkpoints >= tiny_run.config.train.epochs == 2
    out, png = tmp_path / "curve.json", tmp_path / "curve.png"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "curve",
            str(tiny_run.run_dir),
            "--batch-size",
            "8",
            "--out",
            str(out),
            "--png",
            str(png),
        ],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    report = json.loads(out.read_text(encoding="utf-8"))
    (curve,) = report["runs"]
    assert [row["epoch"] for row in curve["epochs"]] == [1, 2]
    minutes = [row["minutes"] for row in curve["epochs"]]
    assert minutes == sorted(minutes)
    for row in curve["epochs"]:
        assert 0 <= row["test_bleu_greedy"] <= 100 and 0 <= row["dev_chrf_greedy"] <= 100
    assert curve["best_epoch"] in (1, 2)
    assert curve["best_test"]["decoding"]["beam_size"] == tiny_run.config.decode.beam_size
    assert 0 <= curve["best_test"]["bleu"] <= 100
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_averaging_scores_the_best_the_last_and_the_mean_of_the_last_two_without_writing_into_the_run(
    tiny_run, tmp_path
):
    before = sorted(p.relative_to(tiny_run.run_dir) for p in tiny_run.run_dir.rglob("*"))
    out = tmp_path / "averaging.json"
    subprocess.run(
        [sys.executable, "-m", "benchmarks", "averaging", "--run", str(tiny_run.run_dir), "--last", "2"]
        + ["--batch-size", "8", "--out", str(out)],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    report = json.loads(out.read_text(encoding="utf-8"))
    assert [row["weights"].split(" (")[0] for row in report["rows"]] == ["best", "last epoch", "average of the last 2"]
    assert report["rows"][1]["checkpoints"] == ["epoch-002.weights.h5"]
    assert report["rows"][2]["checkpoints"] == ["epoch-001.weights.h5", "epoch-002.weights.h5"]
    for row in report["rows"]:
        assert 0 <= row["bleu"] <= 100 and 0 <= row["chrf"] <= 100
    assert report["decoding"]["beam_size"] == tiny_run.config.decode.beam_size
    # The average went to a temporary folder: the run folder is as it was.
    assert sorted(p.relative_to(tiny_run.run_dir) for p in tiny_run.run_dir.rglob("*")) == before
