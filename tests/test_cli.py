"""Bad command lines exit non-zero with one clear line, before any model is touched."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading

import pytest

from conftest import INVALID_UTF8, REPO, TINY_OVERRIDES


def run_cli(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "translate", *args], capture_output=True, text=True, cwd=cwd, timeout=300, env=env
    )


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
    files = {
        "best.weights.h5": "weights",
        "config.yaml": "model: {cell: gru}\n",
        "history.csv": "epoch\n0\n",
        "src.model": "model",
        "tgt.model": "model",
        "stats.json": "{}",
    }
    for name, text in files.items():
        (run_dir / name).write_text(text, encoding="utf-8")
    for command, message in (("train", "holds a finished run"), ("prepare", "holds a trained model")):
        assert_one_line_error(run_cli(command, *TINY_OVERRIDES, f"run_dir={run_dir}"), message)
        assert {p.name: p.read_text(encoding="utf-8") for p in run_dir.iterdir() if p.is_file()} == files


def test_every_command_has_help():
    for command in (
        "prepare",
        "train",
        "export",
        "average",
        "translate",
        "backtranslate",
        "evaluate",
        "plot",
        "serving-config",
    ):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout


@pytest.mark.parametrize("source", ["stdin", "input file"])
def test_translate_names_the_line_with_invalid_utf8_and_translates_the_rest(
    cli, tiny_export, tiny_translator, tmp_path, source
):
    text = b"Good morning.\n" + INVALID_UTF8 + b"\nThank you.\n"
    if source == "stdin":
        result, where = cli("translate", "--model", tiny_export, "--scores", stdin=text), "line 2"
    else:
        (tmp_path / "in.txt").write_bytes(text)
        result = cli("translate", "--model", tiny_export, "--scores", "--input", tmp_path / "in.txt")
        where = f"{tmp_path / 'in.txt'} line 2"
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        f"warning: {where}: not valid UTF-8 (byte 0xc3 at column 4): translated with replacement characters"
    ]
    # One output line per input line; the bad line is translated as its text with U+FFFD in place of bad bytes.
    replaced = INVALID_UTF8.decode("utf-8", errors="replace")
    translations, scores = tiny_translator.translate_with_scores(["Good morning.", replaced, "Thank you."])
    assert result.stdout.split("\n") == [f"{s:.4f}\t{t}" for t, s in zip(translations, scores)] + [""]


def test_translate_streams_stdin_in_batches(tiny_export):
    """Each batch of --batch-size lines is answered before the rest of the input arrives."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "translate",
            "translate",
            "--model",
            str(tiny_export),
            "--batch-size",
            "2",
            "--nbest",
            "2",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )
    output: queue.Queue = queue.Queue()

    def read():
        for line in process.stdout:
            output.put(line)
        output.put(None)  # end of output

    threading.Thread(target=read, daemon=True).start()
    try:
        process.stdin.write("Good morning.\nThank you.\n")
        process.stdin.flush()
        first = []  # 2 sentences x 2 best, while stdin is still open
        while len(first) < 4 and (line := output.get(timeout=240)) is not None:
            first.append(line)
        assert [line.split("\t")[:2] for line in first] == [["0", "1"], ["0", "2"], ["1", "1"], ["1", "2"]]
        assert process.poll() is None
        process.stdin.write("Where is the house?\n")
        process.stdin.close()
        assert process.wait(timeout=240) == 0, process.stderr.read()[-3000:]
        rest = [output.get(timeout=10) for _ in range(2)]
        assert [line.split("\t")[:2] for line in rest] == [["2", "1"], ["2", "2"]]
        assert output.get(timeout=10) is None
    finally:
        process.kill()
        process.wait()


def test_translate_refuses_a_batch_size_below_1(cli, tiny_export):
    result = cli("translate", "--model", tiny_export, "--batch-size", "0", "hello")
    assert (result.returncode, result.stderr) == (2, "error: --batch-size must be at least 1, got 0\n")


@pytest.mark.parametrize("case", ["truncated saved_model.pb", "another project's SavedModel", "only version empty"])
def test_translate_says_one_line_for_a_savedmodel_it_cannot_load(cli, tiny_export, foreign_savedmodel, tmp_path, case):
    model = tmp_path / "translator"
    if case == "truncated saved_model.pb":
        shutil.copytree(tiny_export, model / "1")
        pb = model / "1" / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[:1000])
        message = f"error: cannot load the SavedModel in {model / '1'}: saved_model.pb is truncated or damaged"
    elif case == "another project's SavedModel":
        shutil.copytree(foreign_savedmodel, model / "1")
        message = (
            f"error: cannot load the SavedModel in {model / '1'}: not an export of this project: no assets/config.yaml"
        )
    else:
        (model / "1").mkdir(parents=True)
        message = f"error: cannot load the SavedModel in {model / '1'}: the version folder is empty"
    result = cli("translate", "--model", model, "hello")
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr[-3000:]


def test_translate_skips_an_empty_newest_version_with_one_warning(cli, caplog, tiny_export, tmp_path):
    model = tmp_path / "translator"
    shutil.copytree(tiny_export, model / "1")
    (model / "2").mkdir()
    result = cli("translate", "--model", model, "hello")
    assert result.returncode == 0, result.stderr[-3000:]
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning.name == "translate.translator"
    assert warning.getMessage().startswith(
        f"skipped version 2 of {model}, which does not load: the version folder is empty"
    )
    assert len(result.stdout.split("\n")) == 2  # one translation
