"""Training: SentencePiece models, ``fit`` with teacher forcing, callbacks.

A run folder holds everything a run makes:

    config.yaml          the full config, defaults included
    data/, stats.json    the prepared corpus (see translate.prepare)
    src.model tgt.model  SentencePiece models
    best.weights.h5      weights of the epoch with the best dev BLEU
    history.csv          loss, dev loss and dev BLEU per epoch
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from translate.config import Config, load_config, save_config
from translate.evaluation import score, translate_in_batches
from translate.inference import TranslationGraph
from translate.model import Seq2Seq, build_models
from translate.pipeline import make_dataset, pairs_from_files, pairs_from_memory
from translate.prepare import Prepared, prepare_or_load
from translate.text import vocab_size_of

log = logging.getLogger(__name__)

BEST_WEIGHTS = "best.weights.h5"


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


class DevBleu(keras.callbacks.Callback):
    """After each epoch: greedy-decode dev sentences, log BLEU, keep the best weights.

    The weights are written to a temporary file and renamed, so a crash never
    leaves a half-written best checkpoint.
    """

    def __init__(self, graph: TranslationGraph, pairs: list[tuple[str, str]], best_path: Path, batch_size: int):
        super().__init__()
        self.graph = graph
        self.sources = [s for s, _ in pairs]
        self.references = [t for _, t in pairs]
        self.best_path = best_path
        self.batch_size = batch_size
        self.best = -math.inf

    def on_epoch_end(self, epoch, logs=None):
        greedy = lambda sentences: self.graph(sentences, greedy=True)  # noqa: E731
        hypotheses = translate_in_batches(greedy, self.sources, self.batch_size, progress=False)
        bleu = score(hypotheses, self.references).bleu
        if logs is not None:
            logs["dev_bleu"] = bleu
        log.info("epoch %d: dev BLEU %.2f (best so far %.2f)", epoch + 1, bleu, max(self.best, bleu))
        if bleu > self.best:
            self.best = bleu
            tmp = self.best_path.with_name(f".tmp-{self.best_path.name}")
            self.model.save_weights(tmp)
            os.replace(tmp, self.best_path)


class TimeBudget(keras.callbacks.Callback):
    """Stops training cleanly once ``max_minutes`` have passed since it began.

    The epoch in progress ends early, so the end-of-epoch callbacks (dev BLEU,
    best checkpoint) still run on it.
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
                log.info("time budget of %.1f minutes reached: stopping", self.max_seconds / 60)
            self.stopped_early = True
            self.model.stop_training = True


def build_run(config: Config, run_dir: Path, src_model: bytes, tgt_model: bytes) -> Run:
    """Models and the translation graph for a config and two SentencePiece models."""
    models = build_models(config.model, vocab_size_of(src_model), vocab_size_of(tgt_model))
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


def compile_for_training(run: Run, config: Config) -> None:
    """Adam with global-norm clipping and the per-token masked loss."""
    optimizer = keras.optimizers.Adam(
        learning_rate=config.train.learning_rate,
        global_clipnorm=config.train.clip_norm if config.train.clip_norm > 0 else None,
    )
    # ignore_class=0: padding adds nothing to the loss, and Keras averages over
    # real tokens only (the loss is never pre-averaged per sentence).
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    run.models.training.compile(optimizer=optimizer, loss=loss, jit_compile=False)


def train(config: Config, verbose: int | str = "auto", prepared: Prepared | None = None) -> Run:
    """Trains a model as ``config`` says and returns the run with its best weights.

    The run folder's prepared data is reused when it matches ``config.data``;
    otherwise the corpus is prepared first (:mod:`translate.prepare`).

    Args:
        verbose: Keras ``fit`` verbosity (the progress bar); 0 also hides prepare's progress.
    """
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    keras.utils.set_random_seed(config.train.seed)
    if prepared is None:
        prepared = prepare_or_load(config, progress=verbose != 0)
    run = build_run(config, run_dir, prepared.src_model, prepared.tgt_model)
    run.prepared = prepared

    train_cfg = config.train
    src_tok, tgt_tok = run.graph.src_tokenizer, run.graph.tgt_tokenizer
    train_data = make_dataset(pairs_from_files(*prepared.files("train")), src_tok, tgt_tok, train_cfg.batch_size,
                              config.data.max_pieces, shuffle_buffer=train_cfg.shuffle_buffer, seed=train_cfg.seed)
    # About one pass over the training split per epoch; counted by prepare, not by reading it again.
    steps = train_cfg.steps_per_epoch or math.ceil(prepared.pairs["train"] / train_cfg.batch_size)
    dev_pairs = prepared.read("dev")
    dev_data = make_dataset(pairs_from_memory(dev_pairs), src_tok, tgt_tok, train_cfg.batch_size,
                            config.data.max_pieces)
    dev_steps = _count_batches(dev_data)
    if dev_steps == 0:
        raise ValueError(f"no dev pair has at most data.max_pieces={config.data.max_pieces} pieces")

    compile_for_training(run, config)

    dev_sample = dev_pairs[: train_cfg.dev_sentences]
    callbacks = [
        DevBleu(run.graph, dev_sample, run_dir / BEST_WEIGHTS, train_cfg.batch_size),
        TimeBudget(train_cfg.max_minutes),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
    ]
    run.models.training.fit(
        train_data.repeat(),
        epochs=train_cfg.epochs,
        steps_per_epoch=steps,
        validation_data=dev_data,
        validation_steps=dev_steps,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    best = run_dir / BEST_WEIGHTS
    if best.is_file():
        run.models.training.load_weights(best)
    return run


def _count_batches(dataset: tf.data.Dataset) -> int:
    return int(dataset.reduce(0, lambda count, _: count + 1))


def evaluate_run(run: Run, pairs: list[tuple[str, str]], batch_size: int = 64):
    """Translations of ``pairs``' sources (with the run's decoding settings) and their scores."""
    hypotheses = translate_in_batches(run.graph, [s for s, _ in pairs], batch_size)
    return hypotheses, score(hypotheses, [t for _, t in pairs])
