"""The SavedModel contract: versions, atomic writes, the serving signature, assets."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from conftest import REPO
from translate import export as export_module
from translate.export import WARMUP_FILE, export, warmup_requests, write_warmup
from translate.versions import resolve_version, versions


def signatures(export_dir):
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((export_dir / "saved_model.pb").read_bytes())
    (meta_graph,) = saved_model.meta_graphs
    assert list(meta_graph.meta_info_def.tags) == ["serve"]
    return meta_graph.signature_def


def shape_of(tensor_info):
    return [d.size for d in tensor_info.tensor_shape.dim]


STRING, FLOAT = tf.string.as_datatype_enum, tf.float32.as_datatype_enum


def test_signature_contract(tiny_export):
    beam = 5  # the default decode.beam_size of the tiny run
    expected = {
        "serving_default": {"translations": (STRING, [-1]), "scores": (FLOAT, [-1])},
        "nbest": {"translations": (STRING, [-1, beam]), "scores": (FLOAT, [-1, beam])},
        "align": {
            "source_pieces": (STRING, [-1, -1]),
            "target_pieces": (STRING, [-1, -1]),
            "attention": (FLOAT, [-1, -1, -1]),
        },
    }
    found = signatures(tiny_export)
    assert set(expected) <= set(found)
    for name, outputs in expected.items():
        signature = found[name]
        assert signature.method_name == "tensorflow/serving/predict"
        assert set(signature.inputs) == {"sentences"}
        assert signature.inputs["sentences"].dtype == STRING
        assert shape_of(signature.inputs["sentences"]) == [-1]
        assert {key: (info.dtype, shape_of(info)) for key, info in signature.outputs.items()} == outputs
        # TF Serving's row format: dimension 0 is the batch everywhere; no *_bytes names.
        assert not any(key.endswith("_bytes") for key in signature.outputs)


def test_assets_hold_the_sentencepiece_models_and_the_config(tiny_run, tiny_export):
    assets = tiny_export / "assets"
    assert (assets / "src.model").read_bytes() == tiny_run.src_model
    assert (assets / "tgt.model").read_bytes() == tiny_run.tgt_model
    config = (assets / "config.yaml").read_text(encoding="utf-8")
    assert "max_length_cap" in config and "beam_size: 5" in config and "alpha: 0.6" in config


def test_versions_are_consecutive_and_never_overwritten(tiny_run, tiny_export, tmp_path):
    # Version 1 is the shared export, copied (an export of its own would trace every search again).
    first = copy_version(tiny_export, tmp_path / "m" / "1")
    marker = first / "assets" / "marker"
    marker.write_text("version one", encoding="utf-8")
    second = export(tiny_run.graph, tiny_run.config, tiny_run.src_model, tiny_run.tgt_model, tmp_path, "m")
    assert (first.name, second.name) == ("1", "2")
    assert marker.read_text(encoding="utf-8") == "version one"
    assert versions(tmp_path / "m") == [1, 2]
    # Nothing half-written is left beside the versions.
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]


def test_cli_exports_any_checkpoint_of_a_run(cli, tiny_run, tiny_export, tmp_path):
    """``export --model RUN --weights CKPT`` writes the next version, warm-up records included."""
    from translate.cli import build_parser

    # --run is the older name of --model.
    assert build_parser().parse_args(["export", "--run", "runs/x"]).run == "runs/x"
    first = copy_version(tiny_export, tmp_path / "cli" / "1")  # the version the CLI's export must follow
    weights = tiny_run.run_dir / "best.weights.h5"
    args = ["--models-dir", tmp_path, "--name", "cli", "--beam", "2"]
    result = cli("export", "--model", tiny_run.run_dir, "--weights", weights, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(tmp_path / "cli" / "2") and first.name == "1"
    assert versions(tmp_path / "cli") == [1, 2]
    assert (tmp_path / "cli" / "2" / "assets.extra" / "tf_serving_warmup_requests").stat().st_size > 0
    assert "beam_size: 2" in (tmp_path / "cli" / "2" / "assets" / "config.yaml").read_text(encoding="utf-8")
    result = cli("export", "--model", tiny_run.run_dir, "--weights", tmp_path / "none.weights.h5")
    assert result.returncode == 2 and "checkpoint not found" in result.stderr


# --- Names, temporaries and atomic writes -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "<absolute>", ".hidden", "..", "two\nlines", ""])
def test_export_name_cannot_leave_the_models_folder(tiny_run, tmp_path, name):
    models = tmp_path / "a" / "models"
    name = str(tmp_path / "b") if name == "<absolute>" else name
    with pytest.raises(ValueError, match="^export name .* must be a single folder name"):
        export(tiny_run.graph, tiny_run.config, tiny_run.src_model, tiny_run.tgt_model, models, name)
    assert list(tmp_path.rglob("*")) == []  # checked before anything is written


def test_cli_export_name_cannot_leave_the_models_folder(tiny_run, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "translate",
            "export",
            "--model",
            str(tiny_run.run_dir),
            "--models-dir",
            str(tmp_path / "a" / "models"),
            "--name",
            "../../x",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: --name '../../x' must be a single folder name of at most 128 "
        "letters, digits, '.', '_' and '-', not starting with '.'"
    ]
    assert list(tmp_path.rglob("*")) == []


def a_dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_export_temporaries_are_cleaned_and_never_a_version(tiny_run, tmp_path):
    model_dir = tmp_path / "m"
    host = export_module._host()
    dead = model_dir / f".export-{host}-{a_dead_pid()}-0123abcd"  # an export killed before its rename
    live = model_dir / f".export-{host}-{os.getpid()}-89abcdef"  # an export running now
    elsewhere = model_dir / f".export-other-machine.example-{a_dead_pid()}-00c0ffee"  # pid on another host
    legacy_old = model_dir / ".export-k3_9xq2a"  # tempfile.mkdtemp's name, two days old
    legacy_new = model_dir / ".export-p0w8zz1m"  # ... and one from a minute ago
    mine = model_dir / ".export-notes"  # a user's folder
    for folder in (dead, live, elsewhere, legacy_old, legacy_new, mine):
        (folder / "model").mkdir(parents=True)
        (folder / "model" / "saved_model.pb").write_bytes(b"half")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(legacy_old, (two_days_ago, two_days_ago))
    not_a_folder = model_dir / f".export-{host}-{a_dead_pid()}-deadbeef"
    not_a_folder.write_text("a user's file", encoding="utf-8")

    assert versions(model_dir) == []  # never mistaken for versions
    with pytest.raises(ValueError, match="no SavedModel in"):
        resolve_version(model_dir)

    first = export(tiny_run.graph, tiny_run.config, tiny_run.src_model, tiny_run.tgt_model, tmp_path, "m")
    assert first == model_dir / "1" and versions(model_dir) == [1]
    assert not dead.exists() and not legacy_old.exists()
    assert all(p.is_dir() for p in (live, elsewhere, legacy_new, mine)) and not_a_folder.is_file()
    # The export's own temporary folder is gone too; nothing else was added.
    left = sorted(p.name for p in model_dir.iterdir())
    assert left == sorted(["1", live.name, elsewhere.name, legacy_new.name, mine.name, not_a_folder.name])


def test_only_ascii_digit_folders_are_versions(tmp_path):
    for name in ("1", "3", "²", "١٢", "0", ".export-host-1-0123abcd", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version", encoding="utf-8")
    assert versions(tmp_path) == [1, 3]
    assert resolve_version(tmp_path) == tmp_path / "3"


def test_a_failed_warmup_write_leaves_the_old_records(tmp_path, monkeypatch):
    path = write_warmup(tmp_path, warmup_requests())
    before = path.read_bytes()

    class Failing(tf.io.TFRecordWriter):
        def write(self, record):
            super().write(record)
            raise OSError("disk full")

    monkeypatch.setattr(tf.io, "TFRecordWriter", Failing)
    with pytest.raises(OSError, match="disk full"):
        write_warmup(tmp_path, warmup_requests(("One.",)))
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [WARMUP_FILE]


def copy_version(source, destination):
    import shutil

    shutil.copytree(source, destination)
    return destination


def truncate_saved_model(version):
    pb = version / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    return version


@pytest.fixture
def nothing_may_load(monkeypatch):
    """Fails the test if a SavedModel is loaded, i.e. if any of its graph runs."""

    def refuse(*args, **kwargs):
        raise AssertionError("tf.saved_model.load was called")

    monkeypatch.setattr(tf.saved_model, "load", refuse)


def test_load_refuses_a_savedmodel_of_another_project(foreign_savedmodel, tiny_export, tmp_path, nothing_may_load):
    import translate

    with pytest.raises(ValueError, match="not an export of this project: no assets/config.yaml") as err:
        translate.load(foreign_savedmodel)
    assert str(err.value).startswith(f"cannot load the SavedModel in {foreign_savedmodel}: ")
    # With this project's config asset copied in, the signatures still give it away.
    disguised = copy_version(foreign_savedmodel, tmp_path / "disguised")
    (disguised / "assets").mkdir(exist_ok=True)
    (disguised / "assets" / "config.yaml").write_bytes((tiny_export / "assets" / "config.yaml").read_bytes())
    with pytest.raises(
        ValueError,
        match=r"not an export of this project: no nbest, align signatures "
        r"\(it has: serving_default\)",
    ):
        translate.load(disguised)
    # A config asset that is not this project's config.
    (disguised / "assets" / "config.yaml").write_text("name: someone else's model\n", encoding="utf-8")
    with pytest.raises(
        ValueError,
        match=r"assets/config.yaml is not this project's config "
        r"\(no data, model, decode sections\)",
    ):
        translate.load(disguised)


def test_load_refuses_a_truncated_saved_model_pb(tiny_export, tmp_path, nothing_may_load):
    import translate

    version = truncate_saved_model(copy_version(tiny_export, tmp_path / "model" / "1"))
    for path in (version, version.parent):
        with pytest.raises(ValueError, match="saved_model.pb is truncated or damaged") as err:
            translate.load(path)
        assert str(err.value).startswith(f"cannot load the SavedModel in {version}: ")
        assert "\n" not in str(err.value)


def test_load_falls_back_to_the_newest_loadable_version(
    tiny_export, tiny_translator, foreign_savedmodel, tmp_path, caplog
):
    import translate

    model = tmp_path / "translator"
    copy_version(tiny_export, model / "1")
    truncate_saved_model(copy_version(tiny_export, model / "2"))
    copy_version(foreign_savedmodel, model / "3")
    (model / "4").mkdir()  # an empty newest version, e.g. an export that never got written
    with caplog.at_level(logging.WARNING, logger="translate.translator"):
        translator = translate.load(model)
    assert translator.path == model / "1"
    assert translator(["Good morning."]) == tiny_translator(["Good morning."])
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert warnings[0].startswith(f"skipped version 4 of {model}, which does not load: the version folder is empty")
    assert warnings[1].startswith(f"skipped version 3 of {model}, which does not load: not an export of this project")
    assert warnings[2].startswith(f"skipped version 2 of {model}, which does not load: saved_model.pb is truncated")
    # A version folder named on its own is loaded or refused, never swapped for another.
    with pytest.raises(ValueError, match="no SavedModel in"):
        translate.load(model / "4")
    # When no version loads, one line names the newest and its problem.
    (model / "1" / "saved_model.pb").unlink()
    with pytest.raises(ValueError) as err:
        translate.load(model)
    assert str(err.value) == (
        f"cannot load the SavedModel in {model / '4'}: the version folder is empty "
        "(no saved_model.pb); no older version loads either (tried 3, 2, 1)"
    )
