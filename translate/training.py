"""Training: SentencePiece models, ``fit`` with teacher forcing, callbacks.

A run folder holds everything a run makes:

    config.yaml          the full config, defaults included
    data/, stats.json    the prepared corpus (see translate.prepare)
    src.model tgt.model  SentencePiece models
    best.weights.h5      weights of the epoch with the best dev BLEU; with train.average_last=N,
                         once training ends, the mean of the last N epochs' weights
    checkpoints/         the last train.keep_checkpoints epochs' weights (epoch-NNN.weights.h5);
                         with train.average_last, the best-dev epoch's (best-dev.weights.h5)
    history.csv          one row per epoch: loss, accuracy, perplexity, grad_norm,
                         learning_rate, their dev (val_) values, dev BLEU and
                         the minutes since training began
    logs/                TensorBoard event files (train.tensorboard), attention images in logs/attention
    backup/              the state of an unfinished run, to resume it (see
                         translate.callbacks.ResumableBackup); gone once it finishes

Training into a folder that holds a finished run is refused unless
``train.overwrite`` is set (:mod:`translate.run_folder`); every check runs
before the first write, and every file is written atomically
(:mod:`translate.atomic`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import tensorflow as tf

from translate.atomic import remove_stale_temporaries
from translate.averaging import ship_average
from translate.callbacks import (
    AttentionImages,
    DevBleu,
    EpochCheckpoints,
    HistoryCsv,
    ResumableBackup,
    StopOnNaN,
    TimeBudget,
    TrainingLogs,
    trim_history,
)
from translate.config import Config, load_config, save_config
from translate.distribute import load_prepared_for_workers, make_strategy, output_dir, worker_backup_dir
from translate.evaluation import score
from translate.grad_norm import GradNormModel
from translate.inference import TranslationGraph, translate_in_batches
from translate.losses import MaskedAccuracy, SmoothedCrossEntropy
from translate.model import Seq2Seq, build_models, keep_bahdanau_loops_in_tensorflow
from translate.pipeline import make_dataset, pairs_from_files, pairs_from_memory
from translate.precision import resolve as resolve_precision
from translate.prepare import Prepared, prepare_or_load
from translate.reuse import check_init_from, reused_data
from translate.run_folder import (
    BACKUP_DIR,
    BEST_WEIGHTS,
    CHECKPOINTS_DIR,
    CONFIG,
    HISTORY,
    check_train,
    remove_previous_training,
)
from translate.schedules import BudgetLinear, InverseSqrt
from translate.text import vocab_size_of

log = logging.getLogger(__name__)


@dataclass
class Run:
    """A trained (or loaded) run: config, models, tokenizers and translator."""

    config: Config
    run_dir: Path
    models: Seq2Seq
    src_model: bytes
    tgt_model: bytes
    graph: TranslationGraph
    prepared: Prepared | None = None
    # The dtype policy the run was trained in (train.precision); its models here compute in float32.
    trained_in: str = "float32"


def build_run(
    config: Config, run_dir: Path, src_model: bytes, tgt_model: bytes, training_class: type[keras.Model] = keras.Model
) -> Run:
    """Models and the translation graph for a config and two SentencePiece models
    (``training_class``: see :func:`translate.model.build_models`)."""
    models = build_models(
        config.model, vocab_size_of(src_model), vocab_size_of(tgt_model), training_class=training_class
    )
    graph = TranslationGraph(models, src_model, tgt_model, config.decode)
    return Run(config, run_dir, models, src_model, tgt_model, graph)


def load_run(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Run:
    """A finished run from its folder, with its best weights; ``overrides`` as ``key=value``
    (e.g. ``decode.beam_size=10``: decoding settings may change after training)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ValueError(f"not a run folder (no config.yaml): {run_dir}")
    config = load_config(config_file=run_dir / "config.yaml", overrides=overrides)
    weights = run_dir / BEST_WEIGHTS
    if not weights.is_file():
        raise ValueError(f"run folder has no trained weights ({BEST_WEIGHTS}): {run_dir}")
    run = build_run(config, run_dir, (run_dir / "src.model").read_bytes(), (run_dir / "tgt.model").read_bytes())
    run.models.training.load_weights(weights)
    return run


def make_optimizer(config: Config) -> keras.optimizers.Optimizer:
    """Adam or AdamW, with the learning-rate schedule and global-norm clipping of ``config.train``."""
    t = config.train
    if t.lr_schedule == "inverse_sqrt":
        learning_rate = InverseSqrt(t.learning_rate, t.warmup_steps)
    elif t.lr_schedule in ("constant", "plateau", "budget_linear"):
        # plateau: a plain rate, which ReduceLROnPlateau lowers between epochs;
        # budget_linear: one that BudgetLinear sets before every batch.
        learning_rate = t.learning_rate
    else:
        raise ValueError(
            f"train.lr_schedule must be constant, inverse_sqrt, plateau or budget_linear, got {t.lr_schedule!r}"
        )
    clip = t.clip_norm if t.clip_norm > 0 else None
    if t.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=clip)
    if t.optimizer == "adamw":
        # Decoupled weight decay (Loshchilov and Hutter 2019).
        return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=t.weight_decay, global_clipnorm=clip)
    raise ValueError(f"train.optimizer must be adam or adamw, got {t.optimizer!r}")


def compile_for_training(run: Run, config: Config) -> None:
    """The optimizer, the per-token masked (optionally label-smoothed) loss and a masked accuracy."""
    # Padding adds nothing to the loss, which is the mean over real tokens
    # (never pre-averaged per sentence); see translate.losses.
    loss = SmoothedCrossEntropy(config.train.label_smoothing)
    if config.train.jit_compile:
        # A Bahdanau decoder's loop stays a tf.while_loop, not the compiled kernel: XLA compiles stock ops only.
        keep_bahdanau_loops_in_tensorflow(run.models.training)
    run.models.training.compile(
        optimizer=make_optimizer(config), loss=loss, metrics=[MaskedAccuracy()], jit_compile=config.train.jit_compile
    )


def make_callbacks(run: Run, config: Config, dev_pairs: list[tuple[str, str]]) -> list[keras.callbacks.Callback]:
    """The callbacks of ``fit``, in the order they must run (see :mod:`translate.callbacks`).

    When the run folder holds a backup of an unfinished run, history.csv keeps
    the rows of the epochs that backup has done and goes on from there.
    """
    t, run_dir = config.train, run.run_dir
    # Each worker of a cluster keeps its own backup, never in a temporary folder: all must resume alike.
    backup_dir = worker_backup_dir(Path(config.run_dir), BACKUP_DIR, t.strategy)
    epochs_done = ResumableBackup.committed_epoch(backup_dir)
    if epochs_done:
        trim_history(run_dir / HISTORY, epochs_done)
    # Dev BLEU decodes in float32, as the export will, also when training computes in bfloat16.
    dev_bleu = DevBleu(in_float32(run).graph, dev_pairs, run_dir / BEST_WEIGHTS, t.batch_size)
    callbacks: list[keras.callbacks.Callback] = [TimeBudget(t.max_minutes), StopOnNaN(dev_bleu), dev_bleu]
    states = {"dev_bleu": (dev_bleu, ("best", "best_epoch"))}
    if t.early_stopping_patience is not None:
        early = keras.callbacks.EarlyStopping(monitor="dev_bleu", mode="max", patience=t.early_stopping_patience)
        callbacks.append(early)
        states["early_stopping"] = (early, ("wait", "best", "best_epoch", "stopped_epoch"))
    if t.keep_checkpoints:
        callbacks.append(EpochCheckpoints(run_dir / CHECKPOINTS_DIR, t.keep_checkpoints))
    # Before ReduceLROnPlateau, so that learning_rate is the rate this epoch trained with.
    callbacks.append(TrainingLogs())
    if t.lr_schedule == "plateau":
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            mode="min",
            factor=t.plateau_factor,
            patience=t.plateau_patience,
            min_lr=t.min_learning_rate,
        )
        callbacks.append(plateau)
        states["plateau"] = (plateau, ("wait", "best", "cooldown_counter"))
    if t.lr_schedule == "budget_linear":
        budget_linear = BudgetLinear(t.learning_rate, t.min_learning_rate, t.max_minutes)
        callbacks.append(budget_linear)
        states["budget_linear"] = (budget_linear, ("spent",))
    if t.tensorboard and not _tensorboard_installed():
        log.warning(
            "train.tensorboard is on but the tensorboard package is not installed "
            "(pip install -r requirements.txt): no TensorBoard logs for this run"
        )
    elif t.tensorboard:
        callbacks.append(
            keras.callbacks.TensorBoard(
                log_dir=str(run_dir / "logs"), write_graph=False, update_freq="epoch", profile_batch=0
            )
        )
        if t.attention_images > 0:
            sentences = [source for source, _ in dev_pairs[: t.attention_images]]
            callbacks.append(AttentionImages(run.graph, sentences, run_dir / "logs" / "attention"))
    callbacks.append(HistoryCsv(run_dir / HISTORY, resume=epochs_done > 0))
    callbacks.append(ResumableBackup(backup_dir, states))
    return callbacks


def _tensorboard_installed() -> bool:
    # tf.summary writes nothing without it and raises at the first scalar.
    return importlib.util.find_spec("tensorboard") is not None


@contextlib.contextmanager
def precision_policy(precision: str):
    """Sets Keras's global dtype policy (``float32`` or ``mixed_bfloat16``; ``auto``
    as :func:`translate.precision.resolve` chooses) for the models built inside,
    and restores the previous one afterwards, also on errors.

    Models keep the policy they were built with, so a run trained in
    mixed_bfloat16 still translates after the policy is back to float32.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(resolve_precision(precision))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def train(config: Config, verbose: int | str = "auto", prepared: Prepared | None = None) -> Run:
    """Trains a model as ``config`` says and returns the run with its best weights.

    The run folder's prepared data is reused when it matches ``config.data``;
    otherwise the corpus is prepared first (:mod:`translate.prepare`). A run
    folder with a backup of an unfinished run (killed, say) resumes it after
    its last finished epoch. A finished run is refused unless
    ``train.overwrite``, which trains it again from scratch. With
    ``data.reuse_from`` the splits and SentencePiece models are another run's
    (copied); with ``train.init_from`` training starts from another run's
    best weights, its SentencePiece models encoding the corpus
    (:mod:`translate.reuse`).

    Args:
        verbose: Keras ``fit`` verbosity (the progress bar); 0 also hides prepare's progress.

    Raises:
        ValueError: bad config or data, a run folder that may not be trained
            (:func:`translate.run_folder.check_train`), the loss became NaN
            before any epoch finished, or ``train.members`` above 1 (an
            ensemble trains in processes of its own:
            :func:`translate.members.train_members`). Until training starts, a
            refusal changes nothing in the run folder.
    """
    if config.train.members > 1:
        raise ValueError(
            f"train.members={config.train.members}: an ensemble's members train in processes of their own "
            "(python -m translate train, or translate.members.train_members); set train.members=1 for one model here"
        )
    with precision_policy(config.train.precision):
        run = _train(config, verbose, prepared)
    return in_float32(run)


def in_float32(run: Run) -> Run:
    """``run`` with its models rebuilt in float32 and holding the same weights, where it was
    trained in mixed precision: what ``train`` returns translates and scores as its export does
    (exports and ``load_run`` always build in float32)."""
    policy = run.models.training.dtype_policy.name
    if policy == "float32":
        return run
    with precision_policy("float32"):  # also inside train's own precision_policy
        rebuilt = build_run(run.config, run.run_dir, run.src_model, run.tgt_model)
    rebuilt.models.training.set_weights(run.models.training.get_weights())
    return replace(rebuilt, prepared=run.prepared, trained_in=policy)


def _train(config: Config, verbose: int | str, prepared: Prepared | None) -> Run:
    # data.reuse_from: that run's data settings hold here (and go into config.yaml).
    config = reused_data(config)
    # Every check comes before the first write: a refused run leaves its folder as it was.
    check_train(config)
    check_init_from(config)
    if prepared is None and config.train.strategy == "multi_worker":
        # Every worker needs the same SentencePiece models and splits; none may prepare its own.
        prepared = load_prepared_for_workers(config)
    # First: a multi-worker strategy must configure TensorFlow before it runs anything.
    strategy = make_strategy(config.train.strategy)
    # A non-chief worker writes its copies of the outputs to a temporary folder.
    run_dir = output_dir(Path(config.run_dir), config.train.strategy)
    keras.utils.set_random_seed(config.train.seed)
    if prepared is None:
        # Refuses other data settings before it writes; prepare checks the folder before it writes.
        prepared = prepare_or_load(config, progress=verbose != 0)
    with strategy.scope():
        run = build_run(config, run_dir, prepared.src_model, prepared.tgt_model, training_class=GradNormModel)
    run.prepared = prepared
    if config.train.init_from:
        if not _same_models(prepared, config.train.init_from):
            raise ValueError(
                f"run folder {config.run_dir} was prepared with other SentencePiece models than "
                f"train.init_from={config.train.init_from}: use a new run_dir"
            )
        # Fine-tuning starts from the weights of the run it names (a backup, when resuming, replaces them).
        run.models.training.load_weights(Path(config.train.init_from) / BEST_WEIGHTS)
        log.info("starting from the weights of %s", Path(config.train.init_from) / BEST_WEIGHTS)

    train_cfg = config.train
    src_tok, tgt_tok = run.graph.src_tokenizer, run.graph.tgt_tokenizer
    train_data = training_dataset(run, config, prepared)
    # About one pass over the training split per epoch; counted by prepare, not by reading it again.
    steps = train_cfg.steps_per_epoch or math.ceil(prepared.pairs["train"] / train_cfg.batch_size)
    dev_pairs = prepared.read("dev")
    dev_data = make_dataset(
        pairs_from_memory(dev_pairs), src_tok, tgt_tok, train_cfg.batch_size, config.data.max_pieces
    )
    dev_steps = _count_batches(dev_data)
    if dev_steps == 0:
        raise ValueError(f"no dev pair has at most data.max_pieces={config.data.max_pieces} pieces")

    # The checks are done: from here on the run folder is written.
    backup_dir = worker_backup_dir(Path(config.run_dir), BACKUP_DIR, config.train.strategy)
    if train_cfg.overwrite:
        remove_previous_training(run_dir, backup_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for folder in (run_dir, run_dir / CHECKPOINTS_DIR, backup_dir):
        remove_stale_temporaries(folder)  # what a killed run left
    save_config(config, run_dir / CONFIG)

    with strategy.scope():
        compile_for_training(run, config)

    dev_sample = dev_pairs[: train_cfg.dev_sentences]
    callbacks = make_callbacks(run, config, dev_sample)
    # Exact resume: fit keeps one iterator over the repeated stream for all
    # epochs, and the stream is the same in every process (seeded shuffle), so
    # a run resumed after N epochs skips the N * steps batches those epochs
    # took. The weights file of the backup holds the optimizer and the dropout
    # seed generators' states, so the rest continues as if never stopped.
    done = ResumableBackup.committed_epoch(worker_backup_dir(Path(config.run_dir), BACKUP_DIR, train_cfg.strategy))
    run.models.training.fit(
        train_data.repeat().skip(done * steps),
        epochs=train_cfg.epochs,
        steps_per_epoch=steps,
        validation_data=dev_data,
        validation_steps=dev_steps,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    by_name = {type(c).__name__: c for c in callbacks}
    early = by_name.get("EarlyStopping")
    if early is not None and early.stopped_epoch:
        log.info(
            "early stopping after epoch %d: no better dev BLEU for %d epochs",
            early.stopped_epoch + 1,
            train_cfg.early_stopping_patience,
        )
    if by_name["StopOnNaN"].stopped and not by_name["DevBleu"].best_epoch:
        raise ValueError(
            "training diverged: the loss became NaN before the first epoch finished, so there is "
            "no checkpoint; lower train.learning_rate or set train.clip_norm"
        )
    averaged = None
    if train_cfg.average_last and not by_name["StopOnNaN"].stopped:
        averaged = ship_average(run_dir, train_cfg.average_last)
    best = run_dir / BEST_WEIGHTS
    if best.is_file():
        run.models.training.load_weights(best)
    if averaged:
        log.info(
            "dev BLEU of the average of the last %d epochs: %.2f (best epoch %d: %.2f)",
            len(averaged),
            by_name["DevBleu"].score_current(),
            by_name["DevBleu"].best_epoch,
            by_name["DevBleu"].best,
        )
    return run


def _same_models(prepared: Prepared, run_dir: str) -> bool:
    folder = Path(run_dir)
    return (prepared.src_model, prepared.tgt_model) == (
        (folder / "src.model").read_bytes(),
        (folder / "tgt.model").read_bytes(),
    )


def training_dataset(run: Run, config: Config, prepared: Prepared, repeat: bool = False) -> tf.data.Dataset:
    """The shuffled, bucketed training split of ``prepared``, tokenized by ``run``'s in-graph tokenizers
    (what ``train`` fits on; the benchmarks time the same batches)."""
    t = config.train
    # null: a buffer as large as the split, a uniform shuffle (the cache holds every pair's ids anyway).
    whole_split = max(1, prepared.pairs["train"])
    return make_dataset(
        pairs_from_files(*prepared.files("train")),
        run.graph.src_tokenizer,
        run.graph.tgt_tokenizer,
        t.batch_size,
        config.data.max_pieces,
        shuffle_buffer=whole_split if t.shuffle_buffer is None else t.shuffle_buffer,
        seed=t.seed,
        repeat=repeat,
    )


def _count_batches(dataset: tf.data.Dataset) -> int:
    return int(dataset.reduce(0, lambda count, _: count + 1))


def evaluate_run(run: Run, pairs: list[tuple[str, str]], batch_size: int = 64):
    """Translations of ``pairs``' sources (with the run's decoding settings) and their scores."""
    return evaluate_graph(run.graph, pairs, batch_size)


def evaluate_graph(graph: TranslationGraph, pairs: list[tuple[str, str]], batch_size: int = 64):
    """Translations of ``pairs``' sources by ``graph`` (a run's or an ensemble's) and their scores."""
    hypotheses = translate_in_batches(graph, [s for s, _ in pairs], batch_size)
    return hypotheses, score(hypotheses, [t for _, t in pairs])
