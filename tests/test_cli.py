"""Bad command lines exit non-zero with one clear line, before any model is touched."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO, TINY_OVERRIDES


def run_cli(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "translate", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["translate", "--model", "no/such/model", "hello"], "model path does not exist: no/such/model"),
        (["train", "--preset", "nosuch"], "unknown preset 'nosuch'"),
        (["train", "--preset", "quick", "train.epoch=3"], "unknown config key 'train.epoch'"),
        (["train", "--preset", "quick", "model.cell=transformer"], "model.cell must be one of"),
        (["train", "--config", "no/such.yaml"], "config file not found: no/such.yaml"),
        (["train", "--preset", "quick", "train.epochs"], "must look like key=value"),
        (["evaluate", "--model", "no/such/model", "--src", "a", "--ref", "b"], "model path does not exist"),
        (["export", "--model", "no/such/run"], "not a run folder (no config.yaml): no/such/run"),
        (["serving-config", "--models-dir", "no/such/dir"], "models dir does not exist: no/such/dir"),
        (["prepare", "--preset", "quick", "data.corpus=csv:x.csv"], "unknown corpus format 'csv'"),
        (["prepare", "--preset", "quick", "data.corpus=tsv:no/such.tsv"], "no/such.tsv"),
        (["prepare", "--preset", "quick", "data.corpus=tsv:tests"], "tests"),
        (["prepare", "--preset", "quick", "data.corpus=bible:en-xx"], "xx"),
        (["train", "--preset", "quick", "run_dir=/nonexistent/run", "data.corpus=moses:nope?src=en&tgt=es"], "nope"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message):
    assert_one_line_error(run_cli(*args), message)


@pytest.mark.parametrize("command", ["prepare", "train"])
def test_empty_run_dir_is_refused(command, tmp_path):
    # run_dir= would make the current folder the run folder, beside whatever is in it.
    result = run_cli(command, *TINY_OVERRIDES, "run_dir=", cwd=tmp_path)
    assert_one_line_error(result, "run_dir is empty")
    assert list(tmp_path.iterdir()) == []


def test_a_finished_run_is_refused_in_one_line_and_left_as_it_was(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "data").mkdir(parents=True)
    files = {"best.weights.h5": "weights", "config.yaml": "model: {cell: gru}\n", "history.csv": "epoch\n0\n",
             "src.model": "model", "tgt.model": "model", "stats.json": "{}"}
    for name, text in files.items():
        (run_dir / name).write_text(text, encoding="utf-8")
    for command, message in (("train", "holds a finished run"), ("prepare", "holds a trained model")):
        assert_one_line_error(run_cli(command, *TINY_OVERRIDES, f"run_dir={run_dir}"), message)
        assert {p.name: p.read_text(encoding="utf-8") for p in run_dir.iterdir() if p.is_file()} == files


def test_every_command_has_help():
    for command in ("prepare", "train", "export", "translate", "evaluate", "plot", "serving-config"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout
