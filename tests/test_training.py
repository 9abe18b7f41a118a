"""Training keeps what it promises: a best checkpoint, a dev BLEU per epoch, a time budget."""

from __future__ import annotations

import csv
import shutil

import pytest

from conftest import tiny_config
from translate.callbacks import EpochCheckpoints
from translate.prepare import prepare
from translate.training import BEST_WEIGHTS, CHECKPOINTS_DIR, load_run, train

# A short run: a few steps per epoch, a few dev sentences for BLEU.
SHORT = ["train.steps_per_epoch=3", "train.dev_sentences=6", "train.tensorboard=false"]


def test_run_folder_holds_config_models_best_weights_and_history(tiny_run):
    run_dir = tiny_run.run_dir
    for name in ("config.yaml", "src.model", "tgt.model", BEST_WEIGHTS, "history.csv"):
        assert (run_dir / name).is_file(), name
    rows = list(csv.DictReader((run_dir / "history.csv").open(encoding="utf-8")))
    assert len(rows) == tiny_run.config.train.epochs
    assert all(0.0 <= float(row["dev_bleu"]) <= 100.0 for row in rows)
    assert {"loss", "val_loss"} <= set(rows[0])


def test_a_reloaded_run_translates_like_the_trained_one(tiny_run):
    reloaded = load_run(tiny_run.run_dir)
    sentences = ["Good morning.", "Thank you."]
    assert reloaded.graph(sentences) == tiny_run.graph(sentences)


def test_the_time_budget_stops_training_early_and_keeps_a_model(tmp_path):
    # 0.001 minutes: over after the first batch, though 5 epochs of 15 steps were asked for.
    config = tiny_config(tmp_path, "train.max_minutes=0.001", "train.epochs=5")
    prepare(config, progress=False)
    prepared_at = (tmp_path / "run" / "data" / "train.src").stat().st_mtime_ns
    run = train(config, verbose=0)
    # train reused the prepared run folder instead of preparing it again.
    assert (run.run_dir / "data" / "train.src").stat().st_mtime_ns == prepared_at
    rows = list(csv.DictReader((run.run_dir / "history.csv").open(encoding="utf-8")))
    assert len(rows) == 1
    assert (run.run_dir / BEST_WEIGHTS).is_file()


def test_keep_checkpoints_keeps_the_last_epochs_weights_and_history_has_minutes(tmp_path):
    config = tiny_config(tmp_path, "train.epochs=3", "train.steps_per_epoch=3", "train.keep_checkpoints=2")
    checkpoints = tmp_path / "run" / CHECKPOINTS_DIR
    checkpoints.mkdir(parents=True)
    (checkpoints / "notes.txt").write_text("mine", encoding="utf-8")  # a user's file stays
    run = train(config, verbose=0)
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "epoch-002.weights.h5",
        "epoch-003.weights.h5",
        "notes.txt",
    ]
    assert list(EpochCheckpoints.epochs_in(checkpoints)) == [2, 3]
    rows = list(csv.DictReader((run.run_dir / "history.csv").open(encoding="utf-8")))
    minutes = [float(row["minutes"]) for row in rows]
    assert minutes == sorted(minutes) and minutes[0] > 0
    # The last checkpoint is the model as training left it.
    run.models.training.load_weights(checkpoints / "epoch-003.weights.h5")


# A run folder holds hours of work: it is never replaced by accident.


def _files(folder):
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """The folder of a finished short run, with two epoch checkpoints; tests copy it before changing it."""
    tmp = tmp_path_factory.mktemp("finished")
    train(tiny_config(tmp, *SHORT, "train.keep_checkpoints=2"), verbose=0)
    return tmp


def test_train_into_a_finished_run_refuses_and_says_how_to_go_on(finished_run):
    before = _files(finished_run)
    with pytest.raises(ValueError) as refused:
        train(tiny_config(finished_run, *SHORT, "train.epochs=3"), verbose=0)
    message = str(refused.value)
    assert "holds a finished run" in message and "\n" not in message
    for way_on in ("new run_dir", "train.overwrite=true", "backup/ folder, resumes"):
        assert way_on in message
    assert _files(finished_run) == before


def test_a_refused_train_leaves_config_yaml_unchanged(finished_run):
    before = _files(finished_run)
    # Refused as a finished run, and, with train.overwrite, for its other data settings: nothing is written.
    with pytest.raises(ValueError, match="holds a finished run"):
        train(tiny_config(finished_run, *SHORT, "data.lowercase=true", "model.cell=lstm"), verbose=0)
    with pytest.raises(ValueError, match="prepared with other data settings"):
        train(
            tiny_config(finished_run, *SHORT, "data.lowercase=true", "model.cell=lstm", "train.overwrite=true"),
            verbose=0,
        )
    assert _files(finished_run) == before
    assert load_run(finished_run / "run").config.model.cell == "gru"


def test_an_unfinished_run_resumes_only_with_its_own_model_settings(finished_run, tmp_path):
    shutil.copytree(finished_run / "run", tmp_path / "run")
    backup = tmp_path / "run" / "backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text('{"epoch": 1, "weights": "epoch-0001.weights.h5"}', encoding="utf-8")
    before = _files(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"unfinished run trained with other model settings \(model.cell: 'gru', "
        r"not 'lstm'\)",
    ):
        train(tiny_config(tmp_path, *SHORT, "model.cell=lstm"), verbose=0)
    assert _files(tmp_path) == before


def test_train_overwrite_true_replaces_the_run(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run / "run", run_dir)
    (run_dir / "notes.txt").write_text("mine", encoding="utf-8")
    (run_dir / CHECKPOINTS_DIR / "mine.weights.h5").write_bytes(b"a user's weights")
    (run_dir / ".tmp-history.csv-0a1b2c3d").write_text("half", encoding="utf-8")  # a killed run's
    before = _files(tmp_path)
    run = train(tiny_config(tmp_path, *SHORT, "train.epochs=1", "model.cell=lstm", "train.overwrite=true"), verbose=0)
    rows = list(csv.DictReader((run_dir / "history.csv").open(encoding="utf-8")))
    assert [row["epoch"] for row in rows] == ["0"]
    assert (run_dir / BEST_WEIGHTS).read_bytes() != before[f"run/{BEST_WEIGHTS}"]
    assert load_run(run_dir).config.model.cell == "lstm"
    # The old run's epoch checkpoints went (its epoch 2 would outlive the new epoch 1); the user's files stayed.
    assert sorted(p.name for p in (run_dir / CHECKPOINTS_DIR).iterdir()) == ["mine.weights.h5"]
    assert (run_dir / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert not list(run_dir.glob(".tmp-*"))
    # config.yaml records the run, not the instruction: reusing it never replaces a run by itself.
    assert run.config.train.overwrite and load_run(run_dir).config.train.overwrite is False
