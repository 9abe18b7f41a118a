"""Checkpoint averaging (translate/averaging.py, ``python -m translate average``)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from conftest import one_error_line
from translate import averaging
from translate.cli import main

SMALL = {"embedding_dim": 8, "encoder_units": 4, "decoder_units": 8, "attention_units": 8}


def save_model_weights(path, seed: int, **sizes):
    """A small model's freshly initialized weights (no training) as ``path``; returns them."""
    import keras

    from translate.config import ModelConfig
    from translate.model import build_models

    keras.utils.set_random_seed(seed)
    models = build_models(ModelConfig(**{**SMALL, **sizes}), 20, 20)
    models.training.save_weights(path)
    return models


def datasets(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    a, b, other = folder / "a.weights.h5", folder / "b.weights.h5", folder / "wider.weights.h5"
    save_model_weights(a, seed=1)
    save_model_weights(b, seed=2)
    save_model_weights(other, seed=3, decoder_units=16)
    return a, b, other


def test_an_average_of_identical_checkpoints_is_the_checkpoint(checkpoints, tmp_path):
    a, _, _ = checkpoints
    out = averaging.average_checkpoints([a, a, a], tmp_path / "avg.weights.h5")
    original, averaged = datasets(a), datasets(out)
    assert original.keys() == averaged.keys() and original
    for name, value in original.items():
        assert averaged[name].dtype == value.dtype
        np.testing.assert_array_equal(averaged[name], value)
    assert [p.name for p in tmp_path.iterdir()] == ["avg.weights.h5"]  # no temporary left


def test_an_average_of_two_checkpoints_is_their_elementwise_mean_and_loads(checkpoints, tmp_path):
    a, b, _ = checkpoints
    out = averaging.average_checkpoints([a, b], tmp_path / "avg.weights.h5")
    first, second, averaged = datasets(a), datasets(b), datasets(out)
    assert any(not np.array_equal(first[n], second[n]) for n in first)  # really two different checkpoints
    for name in first:
        np.testing.assert_allclose(averaged[name], (first[name] + second[name]) / 2, rtol=1e-6, atol=1e-7)
    # Keras loads it into the model, as export --weights does.
    models = save_model_weights(tmp_path / "fresh.weights.h5", seed=9)
    models.training.load_weights(out)
    loaded = datasets(tmp_path / "fresh.weights.h5")
    models.training.save_weights(tmp_path / "reloaded.weights.h5")
    reloaded = datasets(tmp_path / "reloaded.weights.h5")
    assert reloaded.keys() == loaded.keys()
    for name in reloaded:
        np.testing.assert_array_equal(reloaded[name], averaged[name])


def test_checkpoints_of_different_shapes_are_refused(checkpoints, tmp_path):
    a, _, wider = checkpoints
    with pytest.raises(ValueError, match="the checkpoints differ in shape: .* is \\[.*\\] in .* but \\[.*\\] in"):
        averaging.average_checkpoints([a, wider], tmp_path / "avg.weights.h5")
    assert list(tmp_path.iterdir()) == []


def make_run(folder, checkpoints, best):
    """A run folder with config.yaml, best.weights.h5 and ``checkpoints`` as checkpoints/epoch-00N."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text("model: {}\n", encoding="utf-8")
    shutil.copy(best, folder / "best.weights.h5")
    for epoch, path in enumerate(checkpoints, start=1):
        shutil.copy(path, folder / "checkpoints" / f"epoch-{epoch:03d}.weights.h5")
    return folder


def test_cli_averages_the_last_n_and_refuses_bad_input_in_one_line(checkpoints, tmp_path, capsys):
    a, b, wider = checkpoints
    run = make_run(tmp_path / "run", [b, a, b], best=a)
    assert main(["average", "--run", str(run), "--last", "2"]) == 0
    out = run / "checkpoints" / "average-last-2.weights.h5"
    assert capsys.readouterr().out.strip() == str(out)
    expected = averaging.average_checkpoints([a, b], tmp_path / "expected.weights.h5")
    for name, value in datasets(expected).items():
        np.testing.assert_array_equal(datasets(out)[name], value)
    before = out.read_bytes()

    assert "exists: averaging never replaces a file" in one_error_line(
        capsys, ["average", "--run", str(run), "--last", "2"]
    )
    assert out.read_bytes() == before
    assert "not a run folder (no config.yaml): " in one_error_line(
        capsys, ["average", "--run", str(tmp_path / "none"), "--last", "2"]
    )
    assert "holds 3 epoch checkpoints" in one_error_line(capsys, ["average", "--run", str(run), "--last", "4"])
    assert "--last must be at least 2" in one_error_line(capsys, ["average", "--run", str(run), "--last", "1"])
    assert "--last needs --run" in one_error_line(capsys, ["average", "--last", "2"])
    assert "give --out" in one_error_line(capsys, ["average", "--checkpoints", str(a), str(b)])
    target = tmp_path / "x.weights.h5"
    assert "differ in shape" in one_error_line(
        capsys, ["average", "--checkpoints", str(a), str(wider), "--out", str(target)]
    )
    assert "does not fit the model of run" in one_error_line(
        capsys, ["average", "--run", str(make_run(tmp_path / "wide", [wider, wider], best=a)), "--last", "2"]
    )
    assert "must be a .weights.h5 file" in one_error_line(
        capsys, ["average", "--checkpoints", str(a), str(b), "--out", str(tmp_path / "x.h5")]
    )
    assert "checkpoint not found" in one_error_line(
        capsys, ["average", "--checkpoints", str(a), str(tmp_path / "no.weights.h5"), "--out", str(target)]
    )
    (tmp_path / "text.weights.h5").write_text("not hdf5", encoding="utf-8")
    assert "cannot read checkpoint" in one_error_line(
        capsys, ["average", "--checkpoints", str(a), str(tmp_path / "text.weights.h5"), "--out", str(target)]
    )
    assert not target.exists()
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    assert "cannot make the folder for" in one_error_line(
        capsys,
        ["average", "--checkpoints", str(a), str(b), "--out", str(tmp_path / "a-file" / "sub" / "x.weights.h5")],
    )


def test_export_refuses_weights_of_another_shape_in_one_line(checkpoints, tmp_path, capsys):
    a, _, wider = checkpoints
    run = make_run(tmp_path / "run", [], best=a)
    line = one_error_line(capsys, ["export", "--model", str(run), "--weights", str(wider)])
    assert "does not fit the model of run" in line
    line = one_error_line(capsys, ["export", "--model", str(run), "--weights", str(tmp_path / "no.weights.h5")])
    assert "checkpoint not found" in line


def test_an_averaged_run_exports_and_translates_as_its_checkpoint(tiny_run, tmp_path, capsys):
    """Averaging copies of the best weights, then ``export --weights``: the same translations as the run."""
    import translate

    run = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns("logs", "data", "backup"))
    best = run / "best.weights.h5"
    (run / "checkpoints").mkdir(exist_ok=True)
    for epoch in (1, 2, 3):
        shutil.copy(best, run / "checkpoints" / f"epoch-{epoch:03d}.weights.h5")
    assert main(["average", "--run", str(run), "--last", "3"]) == 0
    out = capsys.readouterr().out.strip()
    assert main(["export", "--model", str(run), "--weights", out, "--models-dir", str(tmp_path / "models")]) == 0
    version = capsys.readouterr().out.strip().splitlines()[-1]
    sentences = ["Good morning.", "Thank you."]
    assert translate.load(version)(sentences) == tiny_run.graph(sentences)


def test_train_ships_the_average_of_the_last_epochs(tmp_path, caplog):
    """``train.average_last=2``: best.weights.h5 is the mean of the last two epochs' checkpoints, the best-dev
    epoch's weights stay in checkpoints/best-dev.weights.h5, and the returned run holds the average."""
    from conftest import tiny_config
    from translate.training import train

    config = tiny_config(tmp_path, "train.epochs=3", "train.keep_checkpoints=3", "train.average_last=2")
    with caplog.at_level("INFO", logger="translate"):
        run = train(config, verbose=0)
    folder = run.run_dir / "checkpoints"
    last_two = [datasets(folder / f"epoch-00{epoch}.weights.h5") for epoch in (2, 3)]
    shipped = datasets(run.run_dir / "best.weights.h5")
    assert shipped.keys() == last_two[0].keys()
    for key, value in shipped.items():
        if value.dtype.kind == "f":
            np.testing.assert_allclose(value, (last_two[0][key] + last_two[1][key]) / 2, rtol=1e-6, atol=1e-7)
        else:  # the optimizer's step counter: the last epoch's
            np.testing.assert_array_equal(value, last_two[1][key])
    assert (folder / "best-dev.weights.h5").is_file()
    run.models.training.save_weights(tmp_path / "in_memory.weights.h5")
    for key, value in datasets(tmp_path / "in_memory.weights.h5").items():
        np.testing.assert_array_equal(value, shipped[key])
    assert "dev BLEU of the average of the last 2 epochs" in caplog.text


def test_too_few_kept_epochs_leave_the_best_dev_weights(tmp_path, caplog):
    from conftest import tiny_config
    from translate.training import train

    config = tiny_config(tmp_path, "train.epochs=1", "train.keep_checkpoints=2", "train.average_last=2")
    with caplog.at_level("WARNING", logger="translate"):
        run = train(config, verbose=0)
    assert "train.average_last=2: the run kept 1 epoch checkpoint(s)" in caplog.text
    assert not (run.run_dir / "checkpoints" / "best-dev.weights.h5").exists()
    only = datasets(run.run_dir / "checkpoints" / "epoch-001.weights.h5")
    for key, value in datasets(run.run_dir / "best.weights.h5").items():
        np.testing.assert_array_equal(value, only[key])


def test_a_file_in_the_way_of_the_best_dev_copy_is_left_alone(checkpoints, tmp_path):
    a, b, _ = checkpoints
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(a, run / "best.weights.h5")
    for epoch, source in ((1, a), (2, b)):
        shutil.copy(source, run / "checkpoints" / f"epoch-00{epoch}.weights.h5")
    mine = run / "checkpoints" / "best-dev.weights.h5"
    mine.write_text("a user's file")
    assert averaging.ship_average(run, 2) is None
    assert mine.read_text() == "a user's file"
    assert (run / "best.weights.h5").read_bytes() == a.read_bytes()
    mine.unlink()
    assert averaging.ship_average(run, 2) == [run / "checkpoints" / f"epoch-00{e}.weights.h5" for e in (1, 2)]
    assert mine.read_bytes() == a.read_bytes()
    expected = {k: (v + datasets(b)[k]) / 2 for k, v in datasets(a).items() if v.dtype.kind == "f"}
    for key, value in expected.items():
        np.testing.assert_allclose(datasets(run / "best.weights.h5")[key], value, rtol=1e-6)
