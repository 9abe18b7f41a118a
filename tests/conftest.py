"""Shared fixtures: one tiny model, trained for a few steps on the tiny corpus and exported once.

The tiny setting itself lives in :mod:`translate.testing.tiny`; tests import it from here as before.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from translate.testing.tiny import TINY_CORPUS, TINY_OVERRIDES, tiny_config  # noqa: F401  (tests import them from here)

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def bahdanau_kernel():
    """The compiled Bahdanau loop (translate/bahdanau_kernel.py), built once per machine. Skips only where it is
    switched off or no C++ compiler exists; a compiler that fails to build it fails the test."""
    from translate import bahdanau_kernel as kernel

    library = kernel.load()
    if library is None:
        if os.environ.get(kernel.ENV_SWITCH) == "0":
            pytest.skip(f"{kernel.ENV_SWITCH}=0")
        if shutil.which(kernel.compiler_and_flags()[0][0]) is None:
            pytest.skip("no C++ compiler to build the Bahdanau kernel")
        pytest.fail("the Bahdanau kernel did not build or load (the warning above says why)")
    return library


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A trained tiny run (in-process graph included), keeping each epoch's checkpoint
    (``checkpoints/epoch-NNN.weights.h5``) for the learning-curve benchmark's test."""
    from translate.training import train

    tmp = tmp_path_factory.mktemp("tiny")
    return train(tiny_config(tmp, "train.keep_checkpoints=2"), verbose=0)


@pytest.fixture(scope="session")
def tiny_export(tiny_run):
    """The tiny run exported as version 1 of ``<tmp>/saved_models/translator``, its searches in two shards
    (the default of the presets; the tiny setting itself has one) so that the serving, C++ and bad-input tests
    run the sharded graph users export."""
    import dataclasses

    from translate.export import export
    from translate.inference import TranslationGraph

    decode = dataclasses.replace(tiny_run.config.decode, shards=2)
    graph = TranslationGraph(tiny_run.models, tiny_run.src_model, tiny_run.tgt_model, decode)
    config = dataclasses.replace(tiny_run.config, decode=decode)
    return export(graph, config, tiny_run.src_model, tiny_run.tgt_model)


@pytest.fixture(scope="session")
def tiny_translator(tiny_export):
    """``translate.load(tiny_export)``, loaded once for the tests that use it as it is (each load restores
    every function of the SavedModel, and the first calls warm them up: seconds of CPU a load)."""
    import translate

    return translate.load(tiny_export)


def file_states(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` (as a relative POSIX path) with its size and modification time: what a
    refused command must leave as it was."""
    states = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            states[path.relative_to(folder).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return states


def export_nodes(export_dir: Path) -> list:
    """Every node (``NodeDef``) of a SavedModel: its main graphs' and those of every function in their
    libraries, read from ``saved_model.pb`` without loading it."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    return [
        node
        for meta_graph in saved_model.meta_graphs
        for nodes in (meta_graph.graph_def.node, *(f.node_def for f in meta_graph.graph_def.library.function))
        for node in nodes
    ]


# Inputs a user can type that must never crash the model.
HOSTILE_SENTENCES = [
    "",
    "   ",
    "Good morning. " * 700,  # ~10,000 characters
    "I love you 😀🎉👍🏽",
    "mixed Ελληνικά русский 中文 text",
    "control \x00\x07\x1b characters",
]
INVALID_UTF8 = b"caf\xc3 \xff\xfe broken"


@pytest.fixture(scope="session")
def foreign_savedmodel(tmp_path_factory):
    """A SavedModel of another project: a ``serving_default`` that upper-cases strings, no config asset."""
    import tensorflow as tf

    class Upper(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
        def serve(self, sentences):
            return {"out": tf.strings.upper(sentences)}

    module = Upper()
    path = tmp_path_factory.mktemp("foreign") / "model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


# -- two tiers: `python -m pytest -m "not slow"` skips what trains, spawns the CLI, a benchmark or a
# notebook, or builds the C++ loader; `python -m pytest` runs everything -------------------------------

# Fixtures that train or build something (with everything that depends on them).
SLOW_FIXTURES = {"tiny_run", "tiny_export", "tiny_translator", "finished_run", "baseline", "binary"}
# Whole files: the C++ loader, a soak, benchmark scripts in subprocesses, the CLI in subprocesses.
SLOW_FILES = {
    "test_cpp_serving_harness.py",
    "test_serving_cpp.py",
    "test_soak.py",
    "test_benchmarks_curve.py",
    "test_benchmarks_attention.py",
    "test_cli.py",
    "test_kill.py",
}
# Single tests, as file::function (every parametrization) or file::function[id]: training runs, CLI and worker
# subprocesses, notebooks; then, to keep the fast tier fast, the full-size preset models, the very large
# inputs, and the shard counts whose cases (uneven, one sentence a part, empty parts) [2-1] and [5-3] also cover.
SLOW_TESTS = {
    "test_notebooks.py::test_notebook_runs_top_to_bottom_in_the_tiny_setting",
    "test_bad_input.py::test_standard_input_without_line_breaks_is_refused_at_the_cap",
    "test_bad_input.py::test_evaluating_a_file_without_line_breaks_is_refused_at_the_cap",
    "test_config.py::test_config_naming_a_directory_is_one_line",
    "test_config.py::test_vocab_size_over_the_bound_is_refused_before_reading",
    "test_corpora.py::test_prepare_refuses_a_corpus_without_line_breaks_in_one_line",
    "test_distribute.py::test_mirrored_over_two_cpus_follows_the_one_device_loss_curve",
    "test_distribute.py::test_two_workers_train_to_the_end_and_only_the_chief_writes",
    "test_serving_config.py::test_cli_writes_the_files_and_refuses_a_dir_without_versions",
    "test_serving_config.py::test_a_model_folder_name_with_a_line_break_is_refused_in_one_line",
    "test_training.py::test_the_time_budget_stops_training_early_and_keeps_a_model",
    "test_training.py::test_keep_checkpoints_keeps_the_last_epochs_weights_and_history_has_minutes",
    "test_training_loop.py::test_a_run_with_adamw_warmup_smoothing_and_tensorboard_logs_every_scalar",
    "test_training_loop.py::test_mixed_bfloat16_trains_translates_and_restores_float32",
    "test_training_loop.py::test_a_budget_linear_run_logs_falling_rates_and_backs_up_its_spent_time",
    "test_training_loop.py::test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint",
    "test_training_loop.py::test_a_killed_and_resumed_run_trains_exactly_as_an_uninterrupted_one",
    "test_model.py::test_every_preset_builds",
    "test_members.py::test_two_members_train_side_by_side_and_ship_their_ensemble",
    "test_members.py::test_a_member_that_fails_stops_the_others_and_is_named_with_its_log",
    "test_config.py::test_a_huge_value_is_cut_short_in_the_error_message",
    "test_corpora.py::test_tmx_memory_stays_flat",
    "test_search.py::test_a_batch_in_shards_gives_what_one_loop_gives[2-3]",
    "test_search.py::test_a_batch_in_shards_gives_what_one_loop_gives[3-1]",
    "test_search.py::test_a_batch_in_shards_gives_what_one_loop_gives[3-3]",
    "test_search.py::test_a_batch_in_shards_gives_what_one_loop_gives[5-1]",
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        names = {f"{item.path.name}::{item.name}", f"{item.path.name}::{getattr(item, 'originalname', item.name)}"}
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in SLOW_FILES or names & SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@dataclass
class CliResult:
    """What a command run by the ``cli`` fixture returned and printed (as ``subprocess.CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


def run_main(capsys, args) -> CliResult:
    """``translate.cli.main(args)`` in this process, with what it printed (captured by pytest's ``capsys``)."""
    from translate.cli import main

    capsys.readouterr()
    returncode = main([str(a) for a in args])
    captured = capsys.readouterr()
    return CliResult(returncode, captured.out, captured.err)


@pytest.fixture
def cli(capsys, monkeypatch):
    """Runs ``python -m translate ARGS`` in this process: ``cli(*args, stdin=b"...") -> CliResult``.

    The same ``main`` as the command line, without a fresh process's TensorFlow import (seconds of CPU each).
    Log records (warnings included) go to pytest's log capture, not stderr: read them with ``caplog``. The
    tests that need a process of its own (a fresh load, streaming through a pipe, kills) keep spawning one.
    """

    def run(*args: str, stdin: bytes = b"") -> CliResult:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        return run_main(capsys, args)

    return run


def one_error_line(capsys, argv: list[str]) -> str:
    """Runs the CLI in process on ``argv``; asserts exit status 2 and one ``error: ...`` line on stderr; returns it."""
    result = run_main(capsys, argv)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result
    return lines[0]
