"""Training keeps what it promises: a best checkpoint, a dev BLEU per epoch, a time budget."""

from __future__ import annotations

import csv

from conftest import tiny_config
from translate.prepare import prepare
from translate.callbacks import EpochCheckpoints
from translate.training import BEST_WEIGHTS, CHECKPOINTS_DIR, load_run, train


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
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch-002.weights.h5", "epoch-003.weights.h5",
                                                             "notes.txt"]
    assert list(EpochCheckpoints.epochs_in(checkpoints)) == [2, 3]
    rows = list(csv.DictReader((run.run_dir / "history.csv").open(encoding="utf-8")))
    minutes = [float(row["minutes"]) for row in rows]
    assert minutes == sorted(minutes) and minutes[0] > 0
    # The last checkpoint is the model as training left it.
    run.models.training.load_weights(checkpoints / "epoch-003.weights.h5")
