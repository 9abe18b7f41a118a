"""Training callbacks: dev BLEU and the best checkpoint, the time budget, NaN, logs, resuming.

Keras's own callbacks are used where they exist (EarlyStopping,
ReduceLROnPlateau, TensorBoard, TerminateOnNaN, BackupAndRestore); the
classes here add what this project needs on top of them, or replace them
where they write files in place (CSVLogger): every file is written
atomically (:mod:`translate.atomic`). The order of the list that
:func:`translate.training.train` builds matters, because callbacks run in
list order at every hook:

* ``DevBleu`` before ``EarlyStopping`` (which reads ``dev_bleu`` from the logs);
* ``TrainingLogs`` before ``TensorBoard`` and ``HistoryCsv`` (which write the logs);
* ``AttentionImages`` (heatmaps in TensorBoard) anywhere before ``ResumableBackup``;
* ``ResumableBackup`` last: at the end of an epoch it commits the state the
  others have just written, and at the start of training it restores their
  state after their own ``on_train_begin`` has reset it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import keras

from translate.atomic import atomic_path, write_text
from translate.evaluation import score
from translate.inference import TranslationGraph, translate_in_batches
from translate.run_folder import (
    BACKUP_METADATA,
    BACKUP_WEIGHTS_PATTERN,
    CHECKPOINT_PATTERN,
    committed_epoch,
    remove_backup,
)

log = logging.getLogger(__name__)


def _finite_loss(logs: dict | None) -> bool:
    """False when the logs hold a NaN or infinite training loss."""
    loss = (logs or {}).get("loss")
    return loss is None or math.isfinite(float(loss))


class DevBleu(keras.callbacks.Callback):
    """After each epoch: greedy-decode dev sentences, log BLEU, keep the best weights.

    ``graph`` decodes: the training model's own graph, or (for a model trained
    in mixed precision) that of a float32 twin (:func:`translate.training.in_float32`),
    which takes the training model's weights before each scoring. The twin
    decodes as the export and ``load_run`` do, so the BLEU that picks the best
    checkpoint and stops early is the shipped model's, not that of bfloat16
    arithmetic (which differed by up to 0.66 BLEU on the base preset's dev
    set, ``benchmarks/results/base_curve_gru_bf16_nostop.json`` against that
    run's ``history.csv``).

    The weights are written atomically (:mod:`translate.atomic`), so a crash
    never leaves a half-written best checkpoint. An epoch whose training loss is not
    finite is neither scored nor saved: its weights have diverged, and the
    checkpoint of the last good epoch must survive. ``best`` and
    ``best_epoch`` are restored by :class:`ResumableBackup` when a run resumes,
    so a resumed run never overwrites a better checkpoint.
    """

    def __init__(self, graph: TranslationGraph, pairs: list[tuple[str, str]], best_path: Path, batch_size: int):
        super().__init__()
        self.graph = graph
        self.sources = [s for s, _ in pairs]
        self.references = [t for _, t in pairs]
        self.best_path = Path(best_path)
        self.batch_size = batch_size
        self.best = -math.inf
        # 1-based number of the epoch whose weights best_path holds; 0: none yet.
        self.best_epoch = 0

    def translate_current(self) -> list[str]:
        """Greedy translations of the dev sources by the model's weights as they are now."""
        decoder = self.graph.models.training
        if self.model is not None and decoder is not self.model:
            decoder.set_weights(self.model.get_weights())
        greedy = lambda sentences: self.graph(sentences, greedy=True)  # noqa: E731
        return translate_in_batches(greedy, self.sources, self.batch_size, progress=False)

    def score_current(self) -> float:
        """Dev BLEU (greedy) of the model's weights as they are now."""
        return score(self.translate_current(), self.references).bleu

    def on_epoch_end(self, epoch, logs=None):
        if not _finite_loss(logs):
            log.warning(
                "epoch %d: training loss is not finite; dev BLEU not computed, %s left as it is",
                epoch + 1,
                self.best_path.name,
            )
            return
        bleu = self.score_current()
        if logs is not None:
            logs["dev_bleu"] = bleu
        log.info("epoch %d: dev BLEU %.2f (best so far %.2f)", epoch + 1, bleu, max(self.best, bleu))
        if bleu > self.best:
            self.best = bleu
            self.best_epoch = epoch + 1
            with atomic_path(self.best_path, suffix=".weights.h5") as tmp:
                self.model.save_weights(tmp)


class AttentionImages(keras.callbacks.Callback):
    """After each epoch: attention heatmaps of a few dev sentences as TensorBoard images.

    Written with ``tf.summary.image`` to their own log folder (TensorBoard
    lists it as a run named after it, beside Keras's ``train`` and
    ``validation``), one tag per sentence and the epoch as the step, so the
    slider shows attention sharpening as training goes. The heatmaps come
    from the translation graph's ``align`` function, the one the export
    serves. Drawing never stops training: a failure is logged and the
    images are skipped.
    """

    def __init__(self, graph: TranslationGraph, sentences: list[str], log_dir: str | Path):
        super().__init__()
        self.graph = graph
        self.sentences = list(sentences)
        self.log_dir = Path(log_dir)
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if not self.sentences or not _finite_loss(logs):
            return
        import tensorflow as tf

        try:
            from translate.plotting import figure_to_rgb, plot_attention
        except ImportError as err:  # matplotlib missing: the run matters more than its pictures
            log.warning("no attention images in TensorBoard: %s (pip install -r requirements.txt)", err)
            self.sentences = []
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        with self._writer.as_default():
            for index, sentence in enumerate(self.sentences):
                try:
                    image = figure_to_rgb(plot_attention(self.graph, sentence))
                except ValueError as err:
                    log.warning("attention image %d of epoch %d skipped: %s", index + 1, epoch + 1, err)
                    continue
                tf.summary.image(f"attention/dev_{index + 1}", image[None], step=epoch, description=sentence[:200])
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class TimeBudget(keras.callbacks.Callback):
    """Stops training cleanly once ``max_minutes`` have passed since it began.

    The epoch in progress ends early, so the end-of-epoch callbacks (dev BLEU,
    best checkpoint) still run on it. The budget counts from the start of this
    ``fit`` call: a resumed run gets the whole budget again.
    """

    def __init__(self, max_minutes: float):
        super().__init__()
        self.max_seconds = max_minutes * 60
        self.start = 0.0
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self.start >= self.max_seconds:
            if not self.stopped_early:
                log.info(
                    "time budget of %.1f minutes reached: stopping after this epoch's evaluation", self.max_seconds / 60
                )
            self.stopped_early = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        # Wall-clock minutes since this fit began, as a history.csv column (learning curves against time).
        if logs is not None:
            logs["minutes"] = (time.monotonic() - self.start) / 60


class EpochCheckpoints(keras.callbacks.Callback):
    """Keeps the weights of the last ``keep`` epochs as ``epoch-NNN.weights.h5`` in ``directory``.

    Each file is written atomically (:mod:`translate.atomic`), so a crash
    never leaves a half-written checkpoint. Only files of this exact pattern are
    removed, oldest epoch first; anything else in the folder is left alone. An
    epoch whose training loss is not finite is not saved.
    """

    PATTERN = CHECKPOINT_PATTERN

    def __init__(self, directory: Path, keep: int):
        super().__init__()
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep

    @classmethod
    def epochs_in(cls, directory: Path) -> dict[int, Path]:
        """The checkpoints in ``directory`` by 1-based epoch number."""
        found = {}
        if Path(directory).is_dir():
            for path in Path(directory).iterdir():
                match = cls.PATTERN.fullmatch(path.name)
                if match:
                    found[int(match.group(1))] = path
        return dict(sorted(found.items()))

    def on_epoch_end(self, epoch, logs=None):
        if not _finite_loss(logs):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"epoch-{epoch + 1:03d}.weights.h5"
        with atomic_path(path, suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp)
        kept = self.epochs_in(self.directory)
        for number in list(kept)[: max(0, len(kept) - self.keep)]:
            kept[number].unlink()


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras's TerminateOnNaN (stop after the batch whose loss is NaN or infinite),
    with a logged message that says which checkpoint is kept."""

    def __init__(self, dev_bleu: DevBleu):
        super().__init__(raise_error=False)
        self.dev_bleu = dev_bleu
        self.epoch = 0
        self.stopped = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)) or self.stopped:
            return
        self.stopped = True
        self.model.stop_training = True
        best = self.dev_bleu
        if best.best_epoch:
            kept = (
                f"keeping {best.best_path} from epoch {best.best_epoch} (dev BLEU {best.best:.2f}), "
                f"the best of the epochs before the loss diverged"
            )
        else:
            kept = "no checkpoint is kept: no epoch had finished with a finite loss"
        log.error(
            "training stopped on a %s loss at epoch %d, batch %d; %s. A lower train.learning_rate "
            "or train.clip_norm may help.",
            loss,
            self.epoch + 1,
            batch + 1,
            kept,
        )


class TrainingLogs(keras.callbacks.Callback):
    """Adds ``learning_rate``, ``perplexity`` and ``val_perplexity`` to the epoch logs.

    Perplexity is ``exp(loss)``: the exponent of the mean per-token
    cross-entropy (of the label-smoothed one when ``train.label_smoothing`` >
    0, which makes it an upper bound of the true perplexity).
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        for key in ("loss", "val_loss"):
            if key in logs:
                # Capped so that a diverged epoch logs inf instead of raising OverflowError.
                value = float(logs[key])
                logs[key.replace("loss", "perplexity")] = math.exp(value) if value < 700 else math.inf


class HistoryCsv(keras.callbacks.Callback):
    """``history.csv``: one row per epoch, the whole file rewritten atomically after each.

    Keras's CSVLogger appends to the file in place, so a kill mid-write can
    leave a torn last row. The columns are CSVLogger's: ``epoch`` (counted
    from 0), then the log keys sorted by name; a key that first appears later
    is added at the end, and cells without a value read ``NA``. With
    ``resume`` (a run resumed from its backup) the rows already in the file,
    which :func:`trim_history` has cut to the finished epochs, are kept and
    the new epochs follow them; otherwise the file starts again.
    """

    def __init__(self, path: str | Path, resume: bool = False):
        super().__init__()
        self.path = Path(path)
        self.resume = resume
        self.fields: list[str] = ["epoch"]
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        self.fields, self.rows = ["epoch"], []
        if self.resume and self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                self.rows = list(reader)
                self.fields = list(reader.fieldnames or self.fields)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.fields += [key for key in sorted(logs) if key not in self.fields]
        self.rows.append({"epoch": epoch, **logs})
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.fields, restval="NA", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, text.getvalue())


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore with atomic writes and the callbacks' state included.

    Keras 3.15 writes ``latest.weights.h5`` in place and then
    ``training_metadata.json``: a kill during the first leaves a truncated
    weights file, and a kill between the two pairs new weights with the old
    epoch number. Here each backup is a new weights file written under a
    temporary name and renamed, and the metadata, which names that file, is
    then replaced the same way: the rename of the metadata is the single
    moment a backup becomes current, so the folder always holds one complete,
    consistent state. Older weights files of the backup are deleted
    afterwards, and when training ends only the backup's own files go (Keras
    deletes the whole folder). A run with no backup yet backs up its starting
    weights as epoch 0 when training begins, so that from the first write of
    ``best.weights.h5`` until training ends the folder always holds a backup
    and never looks like a finished run.

    The dropout seed generators' states, which Keras's weights files leave
    out, go into the metadata too, so that a resumed run draws the same masks
    as an uninterrupted one (with the data stream that ``train`` skips ahead,
    the resume is exact: ``tests/test_training_loop.py``).

    ``states`` maps a name to ``(object, attribute names)``; those attributes
    (numbers or None, e.g. DevBleu's best BLEU, EarlyStopping's wait count) are
    saved with each backup and set again on resume, after the objects' own
    ``on_train_begin`` has reset them; this callback must come last in the list.
    """

    METADATA = BACKUP_METADATA  # the file Keras's BackupAndRestore writes its epoch into

    def __init__(self, backup_dir: str | Path, states: dict[str, tuple[Any, tuple[str, ...]]] | None = None):
        super().__init__(str(backup_dir), save_freq="epoch", double_checkpoint=False, delete_checkpoint=True)
        self.states = states or {}
        self.resumed_epoch = 0

    @classmethod
    def committed_epoch(cls, backup_dir: str | Path) -> int:
        """How many epochs the backup in ``backup_dir`` has finished (0: no backup)."""
        return committed_epoch(backup_dir)

    def on_train_begin(self, logs=None):
        if not self._load_model():
            # A backup of epoch 0 (the starting weights), at once: DevBleu writes best.weights.h5 before
            # this callback commits the first epoch's backup, and a run killed in between must not look
            # finished (best weights and no backup), which train refuses to touch.
            self._current_epoch = 0
            self._save_model()

    def _build_optimizer(self):
        if self.model.optimizer is not None and not self.model.optimizer.built:
            # The backup holds the optimizer's variables too (Adam's moments, the step count).
            self.model.optimizer.build(self.model.trainable_variables)

    def _load_model(self) -> bool:
        """Restores the backup if there is one; returns whether there was."""
        metadata = _read_json(Path(self._training_metadata_path))
        if metadata is None:
            return False
        weights = os.path.join(self.backup_dir, metadata["weights"])
        self._build_optimizer()
        self.model.load_weights(weights)
        _set_seed_states(self.model, metadata.get("seed_generators", {}))
        # How Keras's own BackupAndRestore tells fit where to start.
        self.model._initial_epoch = self.resumed_epoch = int(metadata["epoch"])
        restored = []
        for name, (obj, attributes) in self.states.items():
            saved = metadata.get("states", {}).get(name, {})
            for attribute in attributes:
                if attribute in saved:
                    setattr(obj, attribute, saved[attribute])
                    value = saved[attribute]
                    restored.append(
                        f"{name}.{attribute}={value:.2f}" if isinstance(value, float) else f"{name}.{attribute}={value}"
                    )
        log.info(
            "resuming from the backup in %s: %d epoch(s) done, continuing with epoch %d; restored %s",
            self.backup_dir,
            self.resumed_epoch,
            self.resumed_epoch + 1,
            ", ".join(restored) or "nothing",
        )
        return True

    def on_epoch_end(self, epoch, logs=None):
        if not _finite_loss(logs):
            # Diverged weights are no state to resume from; the last backup stays current.
            self._current_epoch = epoch + 1
            return
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            remove_backup(Path(self.backup_dir))

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        self._build_optimizer()
        name = f"epoch-{self._current_epoch:04d}.weights.h5"
        with atomic_path(Path(self.backup_dir) / name, suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp, overwrite=True)
        metadata = {
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
            "weights": name,
            "seed_generators": _seed_states(self.model),
            "states": {
                name_: {attribute: _plain(getattr(obj, attribute)) for attribute in attributes}
                for name_, (obj, attributes) in self.states.items()
            },
        }
        write_text(self._training_metadata_path, json.dumps(metadata, indent=1))
        for old in os.listdir(self.backup_dir):
            if BACKUP_WEIGHTS_PATTERN.fullmatch(old) and old != name:
                os.remove(os.path.join(self.backup_dir, old))


def _seed_generator_variables(model: keras.Model) -> dict[str, Any]:
    """The state variables of the model's random seed generators (dropout's), by path."""
    return {v.path: v for v in model.variables if v.path.endswith("seed_generator_state")}


def _seed_states(model: keras.Model) -> dict[str, list[int]]:
    # Keras's save_weights leaves the seed generators out; without their state
    # a resumed run would draw other dropout masks than an uninterrupted one.
    return {
        path: [int(x) for x in keras.ops.convert_to_numpy(v)] for path, v in _seed_generator_variables(model).items()
    }


def _set_seed_states(model: keras.Model, states: dict[str, list[int]]) -> None:
    variables = _seed_generator_variables(model)
    for path, state in states.items():
        if path in variables:
            variables[path].assign(keras.ops.convert_to_tensor(state, dtype=variables[path].dtype))


def trim_history(path: Path, epochs: int) -> None:
    """Keeps the header and the rows of ``history.csv`` for epochs ``0 .. epochs - 1``.

    A run killed after :class:`HistoryCsv` wrote an epoch's row but before
    that epoch's backup was committed trains the epoch again; without this it
    would have two rows.
    """
    if not path.is_file():
        return
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [row for row in rows[1:] if row and row[0].isdigit() and int(row[0]) < epochs]
    if len(kept) != len(rows):
        log.info("history.csv: dropping %d row(s) of epochs that are trained again", len(rows) - len(kept))
        text = io.StringIO()
        csv.writer(text).writerows(kept)
        write_text(path, text.getvalue())


def _plain(value: Any) -> Any:
    """A number (numpy scalars included) or None as a JSON value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"cannot back up a callback attribute of type {type(value).__name__}") from None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
