"""Smoke test of ``python -m benchmarks curve`` on the shared tiny run, which keeps its epoch checkpoints."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import REPO


def _benchmark(out, *args):
    """``python -m benchmarks ARGS --batch-size 8 --out OUT``: the report it wrote."""
    subprocess.run(
        [sys.executable, "-m", "benchmarks", *map(str, args), "--batch-size", "8", "--out", str(out)],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tiny_curve(tiny_run, tmp_path_factory):
    """The tiny run's curve (its report and its PNG), drawn once for the tests that compare with it."""
    folder = tmp_path_factory.mktemp("curve")
    png = folder / "curve.png"
    return _benchmark(folder / "curve.json", "curve", tiny_run.run_dir, "--png", png), png


def test_learning_curve_scores_every_kept_epoch_and_the_best_checkpoint(tiny_run, tiny_curve):
    assert tiny_run.config.train.keep_checkpoints >= tiny_run.config.train.epochs == 2
    report, png = tiny_curve
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


def test_the_curve_of_a_run_ensembled_with_itself_is_the_runs_own(tiny_run, tiny_curve, tmp_path):
    (one,) = tiny_curve[0]["runs"]
    report = _benchmark(tmp_path / "ensemble.json", "curve", "--ensemble", tiny_run.run_dir, tiny_run.run_dir)
    (ensemble,) = report["runs"]
    assert ensemble["members"] == [str(tiny_run.run_dir)] * 2 and "members" not in one
    # Every epoch decodes with both members' checkpoints of that epoch: the same model twice scores as one.
    assert ensemble["epochs"] == one["epochs"]
    assert ensemble["best_test"] == one["best_test"]


def test_averaging_scores_the_best_the_last_and_the_mean_of_the_last_two_without_writing_into_the_run(
    tiny_run, tmp_path
):
    before = sorted(p.relative_to(tiny_run.run_dir) for p in tiny_run.run_dir.rglob("*"))
    report = _benchmark(tmp_path / "averaging.json", "averaging", "--run", tiny_run.run_dir, "--last", "2")
    assert [row["weights"].split(" (")[0] for row in report["rows"]] == ["best", "last epoch", "average of the last 2"]
    assert report["rows"][1]["checkpoints"] == ["epoch-002.weights.h5"]
    assert report["rows"][2]["checkpoints"] == ["epoch-001.weights.h5", "epoch-002.weights.h5"]
    for row in report["rows"]:
        assert 0 <= row["bleu"] <= 100 and 0 <= row["chrf"] <= 100
    assert report["decoding"]["beam_size"] == tiny_run.config.decode.beam_size
    # The average went to a temporary folder: the run folder is as it was.
    assert sorted(p.relative_to(tiny_run.run_dir) for p in tiny_run.run_dir.rglob("*")) == before


def test_beam_scores_the_dev_split_when_asked(tiny_run, tmp_path):
    from translate.evaluation import score
    from translate.prepare import read_split, split_files
    from translate.training import load_run

    # The tiny corpus's dev and test splits hold the same pairs: keep 5 dev pairs in a copy of the run,
    # so that scoring the test split instead would show.
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run_dir)
    for path in split_files(run_dir, "dev"):
        path.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:5]), encoding="utf-8")
    settings = ["--split", "dev", "--settings", "1:0,2:0.6", "--repeats", "1"]
    report = _benchmark(tmp_path / "beam_dev.json", "beam", "--run", run_dir, *settings)
    dev = read_split(run_dir, "dev")
    assert report["split"] == "dev" and report["dev_sentences"] == len(dev) == 5
    assert [(row["beam"], row["alpha"]) for row in report["rows"]] == [(1, 0.0), (2, 0.6)]
    # The greedy row is the greedy decoding of the dev split, scored against its references.
    greedy = load_run(run_dir, ["decode.beam_size=1", "decode.alpha=0.0"]).graph
    hypotheses = [t for i in range(0, len(dev), 8) for t in greedy([s for s, _ in dev[i : i + 8]])]
    expected = score(hypotheses, [t for _, t in dev])
    assert report["rows"][0]["bleu"] == round(expected.bleu, 2)
    assert report["rows"][0]["chrf"] == round(expected.chrf, 2)


def test_ensemble_of_trained_members_scores_each_and_their_ensemble(tiny_run, tmp_path):
    members = [tiny_run.run_dir] * 2
    report = _benchmark(tmp_path / "ensemble.json", "ensemble", "--members", *members, "--rounds", "1")
    seed = tiny_run.config.train.seed
    assert [row["model"] for row in report["rows"]] == [f"member, seed {seed}"] * 2 + ["ensemble of the two members"]
    member, _, both = report["rows"]
    # A run ensembled with itself decodes exactly as the run alone.
    assert (both["bleu"], both["chrf"]) == (member["bleu"], member["chrf"])
    assert both["epochs"] == [member["epochs"]] * 2
    assert set(report["decoding_speed"]) == {"one member", "ensemble"}
    assert report["decoding"]["beam_size"] == tiny_run.config.decode.beam_size


def test_ensemble_refuses_members_that_are_not_runs_in_one_line(tiny_run, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "ensemble", "--members", str(tiny_run.run_dir), str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    # TensorFlow may log its start-up lines first; the refusal is the one line after them, with no traceback.
    assert result.stderr.strip().splitlines()[-1] == f"--members: not a run folder (no config.yaml): {tmp_path}"
    assert "Traceback" not in result.stderr
