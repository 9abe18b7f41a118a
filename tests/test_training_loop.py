"""The training loop: loss, schedules, gradient norm, precision, callbacks, NaN and resuming after a kill."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import re
import signal
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, tiny_config
from translate import atomic, schedules, training
from translate.callbacks import HistoryCsv, ResumableBackup, TrainingLogs, trim_history
from translate.grad_norm import GradNormModel
from translate.losses import MaskedAccuracy, SmoothedCrossEntropy, sparse_cross_entropy
from translate.model import build_models
from translate.schedules import BudgetLinear, InverseSqrt

# A short run: a few steps per epoch, a few dev sentences for BLEU.
SHORT = ["train.steps_per_epoch=3", "train.dev_sentences=6", "train.tensorboard=false"]


def _history(run_dir):
    with (run_dir / training.HISTORY).open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


# Loss and metric.


def _logits_and_labels(seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(3, 5, 11)).astype("float32") * 3
    labels = rng.integers(1, 11, size=(3, 5)).astype("int32")
    labels[0, 3:] = 0
    labels[2, 1:] = 0
    return logits, labels


def test_unsmoothed_loss_equals_keras_sparse_crossentropy_with_ignore_class():
    logits, labels = _logits_and_labels()
    ours = float(SmoothedCrossEntropy(0.0)(labels, logits))
    keras_loss = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)(labels, logits))
    assert ours == pytest.approx(keras_loss, rel=1e-6)


def test_smoothed_loss_is_the_crossentropy_with_the_smoothed_target_over_real_tokens():
    logits, labels = _logits_and_labels(1)
    eps, vocab = 0.1, logits.shape[-1]
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    target = np.full(logits.shape, eps / vocab) + (1 - eps) * np.eye(vocab)[labels]
    per_token = -(target * log_p).sum(-1)
    real = labels != 0
    expected = per_token[real].mean()
    assert float(SmoothedCrossEntropy(eps)(labels, logits)) == pytest.approx(expected, rel=1e-5)
    # What the model predicts at padded positions changes nothing.
    changed = logits.copy()
    changed[~real] = 100.0
    assert float(SmoothedCrossEntropy(eps)(labels, changed)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="label_smoothing"):
        SmoothedCrossEntropy(1.0)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_loss_gradient_equals_the_gradient_through_log_softmax(eps):
    # The loss's hand-written gradient against autodiff of the textbook formula.
    logits, labels = _logits_and_labels(2)
    logits[1, 2] += 40.0  # large logits: the shift by the row maximum must hold
    vocab = logits.shape[-1]
    logits = tf.constant(logits)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        ours = SmoothedCrossEntropy(eps)(labels, logits)
        log_p = tf.nn.log_softmax(logits)
        target = eps / vocab + (1 - eps) * tf.one_hot(labels, vocab)
        real = tf.cast(labels != 0, tf.float32)
        textbook = tf.reduce_sum(-tf.reduce_sum(target * log_p, -1) * real) / tf.reduce_sum(real)
    assert float(ours) == pytest.approx(float(textbook), rel=1e-5)
    np.testing.assert_allclose(tape.gradient(ours, logits), tape.gradient(textbook, logits), atol=1e-6)


def test_sparse_cross_entropy_matches_tensorflow_and_rejects_labels_outside_the_vocabulary():
    logits, labels = _logits_and_labels(3)
    nll, log_normalizer = sparse_cross_entropy(tf.constant(labels), tf.constant(logits))
    np.testing.assert_allclose(nll, tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits), rtol=1e-5)
    np.testing.assert_allclose(log_normalizer, tf.reduce_logsumexp(logits, -1), rtol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError):
        sparse_cross_entropy(tf.constant(labels + 11), tf.constant(logits))


def test_masked_accuracy_counts_real_tokens_only():
    labels = np.array([[5, 6, 0, 0], [7, 0, 0, 0]])
    predicted = np.array([[5, 1, 0, 0], [7, 0, 0, 0]])  # 2 of 3 real tokens right; the pads "match" too
    metric = MaskedAccuracy()
    metric.update_state(labels, np.eye(8)[predicted])
    assert float(metric.result()) == pytest.approx(2 / 3)


# Learning-rate schedule and optimizer.


def test_inverse_sqrt_warms_up_linearly_then_decays_and_serializes():
    schedule = InverseSqrt(0.002, warmup_steps=100)
    rate = lambda iteration: float(schedule(iteration))  # noqa: E731
    assert rate(0) == pytest.approx(0.002 / 100)  # the first update: step 1
    assert rate(49) == pytest.approx(0.001)
    assert rate(99) == pytest.approx(0.002)  # the peak, at step == warmup_steps
    assert rate(399) == pytest.approx(0.001)  # lr * sqrt(100 / 400)
    assert rate(200) < rate(150) < rate(99)
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    restored = keras.optimizers.Adam.from_config(optimizer.get_config())
    assert isinstance(restored._learning_rate, InverseSqrt)
    assert float(restored._learning_rate(399)) == pytest.approx(0.001)
    with pytest.raises(ValueError, match="warmup_steps"):
        InverseSqrt(0.001, 0)


class FakeClock:
    """``time.monotonic`` for the schedules module: advanced by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_budget_linear_falls_with_the_clock_and_resumes_where_its_backup_left_it(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(schedules.time, "monotonic", clock)
    schedule = BudgetLinear(0.01, min_learning_rate=0.001, max_minutes=1)
    assert [schedule.rate(s) for s in (0, 15, 30, 54, 60, 600)] == pytest.approx(
        [0.01, 0.0075, 0.005, 0.001, 0.001, 0.001]
    )
    optimizer = keras.optimizers.Adam(0.01)
    schedule.set_model(types.SimpleNamespace(optimizer=optimizer))
    schedule.on_train_begin()
    schedule.on_train_batch_begin(0)
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    clock.now += 24  # dev evaluation time counts too: the budget is wall clock
    schedule.on_train_batch_begin(1)
    assert float(optimizer.learning_rate) == pytest.approx(0.006)
    clock.now += 6
    schedule.on_epoch_end(0)
    assert schedule.spent == pytest.approx(30)  # what ResumableBackup saves with the epoch's backup
    # A resumed run: a new callback, hours later; the backup sets spent after on_train_begin.
    clock.now += 7200
    resumed = BudgetLinear(0.01, min_learning_rate=0.001, max_minutes=1)
    resumed.set_model(types.SimpleNamespace(optimizer=optimizer))
    resumed.on_train_begin()
    resumed.spent = 30.0
    clock.now += 12
    resumed.on_train_batch_begin(0)
    assert float(optimizer.learning_rate) == pytest.approx(0.01 * (1 - 42 / 60))
    for bad, match in (
        ((0.0, 0.0, 1), "learning_rate must be positive"),
        ((0.01, 0.02, 1), "min_learning_rate"),
        ((0.01, 0.0, 0), "max_minutes"),
    ):
        with pytest.raises(ValueError, match=match):
            BudgetLinear(*bad)


def test_a_budget_linear_run_logs_falling_rates_and_backs_up_its_spent_time(tmp_path):
    config = tiny_config(tmp_path, *SHORT, "train.epochs=3", "train.lr_schedule=budget_linear", "train.max_minutes=5")
    callbacks = training.make_callbacks(
        types.SimpleNamespace(run_dir=tmp_path, graph=None, models=_float32()), config, []
    )
    budget = next(c for c in callbacks if isinstance(c, BudgetLinear))
    assert (budget.learning_rate, budget.min_learning_rate, budget.budget) == (0.01, 1e-5, 300.0)
    assert callbacks[-1].states["budget_linear"] == (budget, ("spent",))
    run = training.train(config, verbose=0)
    rates = [float(r["learning_rate"]) for r in _history(run.run_dir)]
    assert len(rates) == 3 and 0.01 > rates[0] > rates[1] > rates[2] > 0.001, rates


def test_optimizer_follows_the_config(tmp_path):
    adamw = training.make_optimizer(
        tiny_config(
            tmp_path,
            "train.optimizer=adamw",
            "train.weight_decay=0.05",
            "train.lr_schedule=inverse_sqrt",
            "train.clip_norm=0",
        )
    )
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert adamw.weight_decay == pytest.approx(0.05)
    assert adamw.global_clipnorm is None
    assert isinstance(adamw._learning_rate, InverseSqrt)
    adam = training.make_optimizer(tiny_config(tmp_path, "train.lr_schedule=plateau", "train.clip_norm=2"))
    assert type(adam) is keras.optimizers.Adam
    assert adam.global_clipnorm == 2.0
    assert float(adam.learning_rate) == pytest.approx(0.01)


# The gradient norm.


def _toy_rnn(steps_ahead: int, seed: int):
    """A SimpleRNN reading 150 steps whose target depends on the first 10: a long-range dependency."""
    keras.utils.set_random_seed(seed)
    length = 150
    inputs = keras.Input((length, 1))
    model = GradNormModel(inputs, keras.layers.Dense(1)(keras.layers.SimpleRNN(16)(inputs)))
    x = np.random.default_rng(seed).normal(size=(steps_ahead * 16, length, 1)).astype("float32")
    return model, x, x[:, :10, 0].sum(-1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_without_clipping_the_gradient_norm_explodes(seed):
    # Plain SGD with a large rate: an update is rate * gradient, so one large
    # gradient throws the weights where the gradients are larger still, unless
    # it is clipped. (Adam divides by the gradient's own scale, which hides this.)
    norms = {}
    for clip in (None, 1.0):
        model, x, y = _toy_rnn(10, seed)
        model.compile(keras.optimizers.SGD(0.5, global_clipnorm=clip), "mse")
        history = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
        norms[clip] = history["grad_norm"][0]
    assert math.isfinite(norms[None]) and math.isfinite(norms[1.0])
    assert norms[None] > 1000 * norms[1.0], norms


def test_grad_norm_is_measured_before_clipping():
    model, x, y = _toy_rnn(1, seed=3)
    model.compile(keras.optimizers.SGD(0.01, global_clipnorm=1e-3), "mse")
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(y, model(x))
    expected = float(tf.linalg.global_norm(tape.gradient(loss, model.trainable_weights)))
    logs = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert expected > 0.1
    assert logs["grad_norm"][0] == pytest.approx(expected, rel=1e-4)
    # Evaluation has no gradient to report.
    assert "grad_norm" not in model.evaluate(x, y, verbose=0, return_dict=True)


# Callbacks.


def _float32():
    """The models of a run trained in float32, as make_callbacks sees them (DevBleu decodes with its own graph)."""
    return types.SimpleNamespace(training=types.SimpleNamespace(dtype_policy=keras.DTypePolicy("float32")))


def test_callbacks_run_in_the_order_their_logs_need(tmp_path):
    config = tiny_config(
        tmp_path,
        "train.early_stopping_patience=2",
        "train.lr_schedule=plateau",
        "train.plateau_factor=0.3",
        "train.plateau_patience=4",
        "train.min_learning_rate=0.0001",
    )
    run = types.SimpleNamespace(run_dir=tmp_path, graph=None, models=_float32())
    names = [type(c).__name__ for c in training.make_callbacks(run, config, [])]
    assert names.index("DevBleu") < names.index("EarlyStopping")
    assert names.index("TrainingLogs") < names.index("ReduceLROnPlateau")
    assert names.index("TrainingLogs") < names.index("TensorBoard") < names.index("HistoryCsv")
    assert names[-1] == "ResumableBackup"
    callbacks = {type(c).__name__: c for c in training.make_callbacks(run, config, [])}
    early, plateau = callbacks["EarlyStopping"], callbacks["ReduceLROnPlateau"]
    assert (early.monitor, early.mode, early.patience) == ("dev_bleu", "max", 2)
    assert (plateau.monitor, plateau.factor, plateau.patience, plateau.min_lr) == ("val_loss", 0.3, 4, 1e-4)
    config.train.tensorboard = False
    config.train.early_stopping_patience = None
    names = [type(c).__name__ for c in training.make_callbacks(run, config, [])]
    assert "TensorBoard" not in names and "EarlyStopping" not in names


def test_training_logs_add_learning_rate_and_perplexity():
    callback = TrainingLogs()
    callback.set_model(types.SimpleNamespace(optimizer=keras.optimizers.Adam(0.003)))
    logs = {"loss": 2.0, "val_loss": 1.0}
    callback.on_epoch_end(0, logs)
    assert logs["learning_rate"] == pytest.approx(0.003)
    assert logs["perplexity"] == pytest.approx(math.exp(2.0))
    assert logs["val_perplexity"] == pytest.approx(math.e)


def test_a_run_with_adamw_warmup_smoothing_and_tensorboard_logs_every_scalar(tmp_path):
    config = tiny_config(
        tmp_path,
        *SHORT,
        "train.optimizer=adamw",
        "train.lr_schedule=inverse_sqrt",
        "train.warmup_steps=4",
        "train.label_smoothing=0.1",
        "train.tensorboard=true",
        "train.early_stopping_patience=5",
    )
    run = training.train(config, verbose=0)
    rows = _history(run.run_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    for key in (
        "loss",
        "accuracy",
        "perplexity",
        "grad_norm",
        "learning_rate",
        "dev_bleu",
        "val_loss",
        "val_accuracy",
        "val_perplexity",
    ):
        assert all(math.isfinite(float(r[key])) for r in rows), key
    assert "val_grad_norm" not in rows[0]
    # The rate after 3 and 6 updates (iterations 3 and 6 are steps 4 and 7 of the schedule).
    schedule = InverseSqrt(0.01, 4)
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([float(schedule(3)), float(schedule(6))])
    assert float(rows[0]["perplexity"]) == pytest.approx(math.exp(float(rows[0]["loss"])), rel=1e-5)
    events = list((run.run_dir / "logs" / "train").glob("events.out.tfevents.*"))
    assert events and not (run.run_dir / training.BACKUP_DIR).exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run.run_dir / "logs" / "train"))
    accumulator.Reload()
    tags = set(accumulator.Tags()["tensors"])
    assert {
        "epoch_loss",
        "epoch_grad_norm",
        "epoch_learning_rate",
        "epoch_perplexity",
        "epoch_dev_bleu",
        "epoch_accuracy",
    } <= tags


def test_mixed_bfloat16_trains_translates_and_restores_float32(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, *SHORT, "train.epochs=1", "train.precision=mixed_bfloat16")
    built = []
    monkeypatch.setattr(training, "build_models", lambda *a, **k: built.append(build_models(*a, **k)) or built[-1])
    run = training.train(config, verbose=0)
    assert keras.mixed_precision.global_policy().name == "float32"
    trained = built[0].training
    assert {layer.dtype_policy.name for layer in trained.layers if layer.weights} >= {"mixed_bfloat16"}
    assert trained.output.dtype == "float32"  # logits for the loss and the softmax
    # ... from the output matmul in bfloat16, the largest of a step.
    assert trained.get_layer("logits").compute_dtype == "bfloat16"
    assert math.isfinite(float(_history(run.run_dir)[0]["loss"]))
    # What train returns computes in float32 with the trained weights, as its export will.
    assert run.trained_in == "mixed_bfloat16" and run.models.training.compute_dtype == "float32"
    for a, b in zip(run.models.training.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)
    translations = run.graph(["Good morning.", "Thank you."])
    assert len(translations) == 2 and all(isinstance(t, str) for t in translations)

    # Restored when training fails, too.
    def fail(*args, **kwargs):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        raise ValueError("no data")

    monkeypatch.setattr(training, "_train", fail)
    with pytest.raises(ValueError, match="no data"):
        training.train(config, verbose=0)
    assert keras.mixed_precision.global_policy().name == "float32"


def test_dev_bleu_of_a_mixed_precision_model_decodes_in_float32_as_the_export_does(tiny_run):
    """The dev BLEU that picks the best checkpoint and stops early is that of the model as shipped: a run trained
    in mixed_bfloat16 is scored by a float32 twin that takes the training model's weights before each scoring."""
    from translate.callbacks import DevBleu

    with training.precision_policy("mixed_bfloat16"):
        mixed = training.build_run(tiny_run.config, tiny_run.run_dir, tiny_run.src_model, tiny_run.tgt_model)
    twin = training.in_float32(mixed)
    assert twin.models.training.compute_dtype == "float32" and twin.models.training is not mixed.models.training
    # Weights that training reaches after the twin was built (the twin must take them itself); random and large,
    # so that bfloat16 arithmetic picks other words than float32 (the tiny run's own weights emit "." either way).
    rng = np.random.default_rng(0)
    mixed.models.training.set_weights([rng.standard_normal(w.shape) for w in mixed.models.training.get_weights()])
    sources = ["Good morning.", "Thank you.", "Where is the station?", "I am tired.", "Come here!", "It is late."]
    dev_bleu = DevBleu(twin.graph, [(s, "x") for s in sources], tiny_run.run_dir / "unused.weights.h5", 6)
    dev_bleu.set_model(mixed.models.training)
    exported = training.in_float32(mixed).graph(sources, greedy=True)  # a float32 build, as export and load_run
    assert dev_bleu.translate_current() == exported
    assert mixed.graph(sources, greedy=True) != exported  # what DevBleu decoded before


@pytest.mark.parametrize(
    "model",
    [
        ["model.cell=lstm", "model.attention=luong_dot", "model.input_feeding=true"],  # the step-by-step scan
        ["model.cell=lstm", "model.attention=bahdanau"],
        ["model.cell=simple_rnn", "model.attention=luong_general"],  # the fused path
    ],
    ids=["lstm-input-feeding", "lstm-bahdanau", "simple-rnn"],
)
def test_keras_rnns_stay_in_float32_inside_a_mixed_model(tmp_path, model):
    """Keras's LSTM and SimpleRNN are faster in float32 on a CPU (translate/model.py, _rnn_options): under
    mixed_bfloat16 they keep float32 while the rest computes in bfloat16, and training and translating work."""
    config = tiny_config(tmp_path, *SHORT, "train.epochs=1", "train.precision=mixed_bfloat16", *model)
    run = training.train(config, verbose=0)
    with training.precision_policy("mixed_bfloat16"):
        trained = build_models(config.model, 50, 50).training  # the model as train built it
    assert trained.get_layer("logits").dtype_policy.name == "mixed_bfloat16"
    layers = list(trained._flatten_layers(include_self=False, recursive=True))
    rnns = [layer for layer in layers if isinstance(layer, (keras.layers.LSTM, keras.layers.SimpleRNN))]
    assert len(rnns) >= 2 and all(layer.compute_dtype == "float32" for layer in rnns)  # encoder and decoder
    assert any(layer.compute_dtype == "bfloat16" for layer in layers if isinstance(layer, keras.layers.Embedding))
    assert math.isfinite(float(_history(run.run_dir)[0]["loss"]))
    assert all(isinstance(t, str) for t in run.graph(["Good morning.", "Thank you."]))


class _PoisonWeights(keras.callbacks.Callback):
    """Turns a weight into NaN at the second batch of the second epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            weight = self.model.trainable_weights[0]
            weight.assign(np.full(weight.shape, np.nan, weight.dtype))


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, caplog):
    make_callbacks = training.make_callbacks
    monkeypatch.setattr(training, "make_callbacks", lambda *a, **k: make_callbacks(*a, **k) + [_PoisonWeights()])
    config = tiny_config(tmp_path, *SHORT, "train.epochs=4")
    with caplog.at_level(logging.INFO, logger="translate"):
        run = training.train(config, verbose=0)
    stop = [r.getMessage() for r in caplog.records if "training stopped" in r.getMessage()]
    assert len(stop) == 1
    assert "nan loss at epoch 2, batch 2" in stop[0]
    assert f"keeping {run.run_dir / training.BEST_WEIGHTS} from epoch 1" in stop[0]
    rows = _history(run.run_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1]  # no third epoch
    assert math.isnan(float(rows[1]["loss"]))
    # The returned model holds the epoch-1 weights, which translate.
    assert all(np.isfinite(w).all() for w in run.models.training.get_weights())
    assert all(isinstance(t, str) for t in run.graph(["Good morning."]))


# Resuming.


def test_backups_are_atomic_and_carry_callback_state(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(keras.optimizers.Adam(), "mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    dev = types.SimpleNamespace(best=12.5, best_epoch=1)
    backup = ResumableBackup(tmp_path / "backup", {"dev_bleu": (dev, ("best", "best_epoch"))})
    backup.set_model(model)
    backup.on_epoch_end(0, {"loss": 1.0})
    committed = [w.copy() for w in model.get_weights()]
    assert ResumableBackup.committed_epoch(tmp_path / "backup") == 1

    # A kill while the next backup is written: the half-written file never becomes current.
    model.layers[-1].kernel.assign(np.zeros((3, 2)))
    dev.best, dev.best_epoch = 20.0, 2

    def killed(path, overwrite=True):
        with open(path, "wb") as f:
            f.write(b"\x89HDF half")
        raise KeyboardInterrupt

    model.save_weights = killed
    with pytest.raises(KeyboardInterrupt):
        backup.on_epoch_end(1, {"loss": 0.5})
    del model.save_weights
    # A diverged epoch is not backed up either.
    backup.on_epoch_end(1, {"loss": float("nan")})
    assert ResumableBackup.committed_epoch(tmp_path / "backup") == 1

    restored_dev = types.SimpleNamespace(best=-math.inf, best_epoch=0)
    resume = ResumableBackup(tmp_path / "backup", {"dev_bleu": (restored_dev, ("best", "best_epoch"))})
    resume.set_model(model)
    resume.on_train_begin()
    assert model._initial_epoch == 1
    assert (restored_dev.best, restored_dev.best_epoch) == (12.5, 1)
    for got, want in zip(model.get_weights(), committed):
        np.testing.assert_array_equal(got, want)


def test_trim_history_drops_rows_of_epochs_trained_again(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,3.0\n1,2.0\n2,1.0\n", encoding="utf-8")
    trim_history(path, 2)
    assert path.read_text(encoding="utf-8").splitlines() == ["epoch,loss", "0,3.0", "1,2.0"]


def test_history_csv_is_rewritten_whole_after_each_epoch_and_a_resume_keeps_finished_epochs(tmp_path, monkeypatch):
    path = tmp_path / "history.csv"
    logger = HistoryCsv(path)
    logger.on_train_begin()
    logger.on_epoch_end(0, {"val_loss": 2.5, "loss": 3.0, "dev_bleu": 1.5})
    logger.on_epoch_end(1, {"val_loss": 2.0, "loss": float("nan"), "dev_bleu": 2.5})
    # CSVLogger's columns: epoch, then the keys sorted by name.
    assert path.read_text(encoding="utf-8").splitlines() == [
        "epoch,dev_bleu,loss,val_loss",
        "0,1.5,3.0,2.5",
        "1,2.5,nan,2.0",
    ]
    # A write that fails (a kill before the rename, say) leaves the history of the epochs before it whole.
    before = path.read_bytes()

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        logger.on_epoch_end(2, {"val_loss": 1.5, "loss": 2.0, "dev_bleu": 3.5})
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["history.csv"]

    # Resumed after one finished epoch: that epoch's row stays, the new epochs follow it.
    trim_history(path, 1)
    resumed = HistoryCsv(path, resume=True)
    resumed.on_train_begin()
    resumed.on_epoch_end(1, {"val_loss": 1.8, "loss": 2.2, "dev_bleu": 2.0, "minutes": 0.5})
    assert path.read_text(encoding="utf-8").splitlines() == [
        "epoch,dev_bleu,loss,val_loss,minutes",
        "0,1.5,3.0,2.5,NA",
        "1,2.0,2.2,1.8,0.5",
    ]


# Run with cwd=REPO: ``python -c`` imports translate from the working folder.
_TRAIN_SCRIPT = """
import logging, os, signal, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
import keras
from translate import training
from translate.testing.tiny import tiny_config

class KillMidEpoch2(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 2:
            print("KILLING", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[2] == "kill":
    make_callbacks = training.make_callbacks
    training.make_callbacks = lambda *a, **k: make_callbacks(*a, **k) + [KillMidEpoch2()]
training.train(tiny_config(Path(sys.argv[1]), *sys.argv[3:]), verbose=0)
"""


@pytest.mark.timeout(1200)
def test_a_killed_and_resumed_run_trains_exactly_as_an_uninterrupted_one(tmp_path):
    """SIGKILL in the middle of epoch 2, then the same command again: it resumes after epoch 1 (not trained
    again, its best dev BLEU kept) and ends with the losses and weights of a run that was never killed."""
    # Dropout on, so that the random state must be restored too, not only the data order; TensorBoard on, so
    # that its writer resumes too.
    settings = [
        *SHORT,
        "train.steps_per_epoch=5",
        "train.epochs=3",
        "model.dropout=0.3",
        "train.keep_checkpoints=1",
        "train.tensorboard=true",
    ]

    def train_process(folder, mode):
        return subprocess.run(
            [sys.executable, "-c", _TRAIN_SCRIPT, str(folder), mode, *settings],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=400,
        )

    whole = train_process(tmp_path / "whole", "full")
    assert whole.returncode == 0, whole.stderr[-3000:]

    killed = train_process(tmp_path / "cut", "kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert "KILLING" in killed.stdout
    run_dir = tmp_path / "cut" / "run"
    assert [int(r["epoch"]) for r in _history(run_dir)] == [0]
    metadata = json.loads((run_dir / "backup" / ResumableBackup.METADATA).read_text(encoding="utf-8"))
    assert metadata["epoch"] == 1
    assert not list((run_dir / "backup").glob(".tmp-*"))
    first_bleu = float(re.search(r"epoch 1: dev BLEU ([\d.]+)", killed.stderr).group(1))
    assert metadata["states"]["dev_bleu"]["best"] == pytest.approx(first_bleu, abs=0.01)

    resumed = train_process(tmp_path / "cut", "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stderr
    assert "resuming from the backup" in log and "1 epoch(s) done, continuing with epoch 2" in log
    # Epoch 1 is not trained again, and the best BLEU so far starts from epoch 1's, not from -inf.
    assert "epoch 1: dev BLEU" not in log
    assert f"dev_bleu.best={first_bleu:.2f}" in log and "dev_bleu.best_epoch=1" in log
    bests = [float(b) for b in re.findall(r"epoch [23]: dev BLEU [\d.]+ \(best so far ([\d.]+)\)", log)]
    assert len(bests) == 2 and all(b >= first_bleu - 0.01 for b in bests)
    assert not (run_dir / "backup").exists()
    assert (run_dir / training.BEST_WEIGHTS).is_file()

    # Exactly the uninterrupted run: the same per-epoch losses, the same final weights.
    uninterrupted, cut = _history(tmp_path / "whole" / "run"), _history(run_dir)
    assert [int(r["epoch"]) for r in cut] == [0, 1, 2]
    for column in ("loss", "val_loss", "grad_norm"):
        want = [float(r[column]) for r in uninterrupted]
        assert [float(r[column]) for r in cut] == pytest.approx(want, rel=1e-5), column
    model = training.load_run(tmp_path / "whole" / "run").models.training
    last = "checkpoints/epoch-003.weights.h5"
    model.load_weights(tmp_path / "whole" / "run" / last)
    expected = [w.copy() for w in model.get_weights()]
    model.load_weights(run_dir / last)
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_each_epoch_draws_from_the_whole_train_split_not_from_its_first_lines(tiny_run, tmp_path):
    """Split files keep their corpus's order (the Bible's books in canonical order, synthetic pairs last), so a
    shuffle buffer smaller than the split made each epoch a walk from the file's start to its end. By default
    (train.shuffle_buffer null) the first half of an epoch comes from all over the split."""
    from translate.pipeline import make_dataset, pairs_from_files
    from translate.prepare import Prepared
    from translate.text import PAD_ID
    from translate.training import training_dataset

    # 400 distinct pairs in a known order: two tiny-corpus sentences joined.
    tiny = tiny_run.prepared.read("train")
    pairs = [(a[0] + " " + b[0], a[1] + " " + b[1]) for a in tiny for b in tiny][:400]
    (tmp_path / "data").mkdir()
    for side, suffix in ((0, "src"), (1, "tgt")):
        (tmp_path / "data" / f"train.{suffix}").write_text("".join(p[side] + "\n" for p in pairs), encoding="utf-8")
    prepared = Prepared(tmp_path, {"train": len(pairs)}, tiny_run.src_model, tiny_run.tgt_model, {})
    graph = tiny_run.graph

    def rows(dataset):
        for (source, _), target_out in dataset:
            for s, t in zip(source.numpy(), target_out.numpy()):
                yield tuple(s[s != PAD_ID]), tuple(t[t != PAD_ID])

    in_file = make_dataset(
        pairs_from_files(*prepared.files("train")), graph.src_tokenizer, graph.tgt_tokenizer, 1, 1000
    )
    line_of = {row: index for index, row in enumerate(rows(in_file))}
    assert len(line_of) == len(pairs)

    def first_half_mean_position(shuffle_buffer):
        train = dataclasses.replace(tiny_run.config.train, shuffle_buffer=shuffle_buffer, batch_size=1)
        config = dataclasses.replace(
            tiny_run.config, train=train, data=dataclasses.replace(tiny_run.config.data, max_pieces=1000)
        )
        order = [line_of[row] for row in rows(training_dataset(tiny_run, config, prepared))]
        assert sorted(order) == list(range(len(pairs)))  # each pair once per epoch
        return np.mean(order[: len(order) // 2]) / len(order)

    assert tiny_run.config.train.shuffle_buffer is None  # the default
    assert 0.45 < first_half_mean_position(None) < 0.55
    # A buffer of a tenth of the split, or none: the first half of an epoch is about the file's first half.
    assert first_half_mean_position(len(pairs) // 10) < 0.3
    assert first_half_mean_position(0) < 0.3


def test_an_xla_train_step_learns_as_the_plain_one(tiny_run):
    # train.jit_compile compiles the same step with XLA: the same losses on the same batches.
    from translate.training import build_run, compile_for_training, training_dataset

    losses = {}
    for jit in (False, True):
        config = dataclasses.replace(tiny_run.config, train=dataclasses.replace(tiny_run.config.train, jit_compile=jit))
        keras.utils.set_random_seed(0)
        run = build_run(config, tiny_run.run_dir, tiny_run.src_model, tiny_run.tgt_model)
        compile_for_training(run, config)
        assert run.models.training.jit_compile is jit
        inputs, target_out = next(iter(training_dataset(run, config, tiny_run.prepared)))
        losses[jit] = [float(run.models.training.train_on_batch(inputs, target_out)[0]) for _ in range(3)]
    assert losses[False][-1] < losses[False][0]
    assert np.allclose(losses[True], losses[False], rtol=1e-3), losses
