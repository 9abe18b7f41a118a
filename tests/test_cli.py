"""Bad command lines exit non-zero with one clear line, before any model is touched."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "translate", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


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
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0]


def test_every_command_has_help():
    for command in ("prepare", "train", "export", "translate", "evaluate", "plot", "serving-config"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout
