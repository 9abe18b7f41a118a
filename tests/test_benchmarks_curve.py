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
