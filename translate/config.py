"""Typed configuration: one dataclass per concern, loaded from YAML presets.

Every default lives here and nowhere else. A preset in ``configs/NAME.yaml``
only states what differs from these defaults; ``key=value`` overrides on the
command line come last. Unknown keys and values of the wrong type are refused
with the dotted name of the key, so a typo never silently trains the wrong
model.

Config files and overrides are plain YAML without anchors and aliases
(``&a``, ``*a``): an alias can make a few lines stand for an exponentially
large value ("billion laughs"), and a config never needs one. Every number
has a generous but finite upper bound (:data:`UPPER_BOUNDS`), so that a typo
such as ``1e11`` is refused at once, before any data is read.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from translate import atomic
from translate.messages import short_repr
from translate.versions import check_model_name

# The presets: configs/ at the top of a checkout (editable installs too); an installed package carries a copy as
# translate/configs/ (pyproject.toml maps the folder in as package data), which comes first.
_PACKAGE_DIR = Path(__file__).resolve().parent
CONFIGS_DIR = next(
    (d for d in (_PACKAGE_DIR / "configs", _PACKAGE_DIR.parent / "configs") if d.is_dir()),
    _PACKAGE_DIR.parent / "configs",
)

CELLS = ("gru", "lstm", "simple_rnn")
# See translate.attention: where each one sits and which paper it comes from.
ATTENTIONS = ("bahdanau", "additive", "luong_dot", "luong_general", "none")
OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULES = ("constant", "inverse_sqrt", "plateau", "budget_linear")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multi_worker")


@dataclass
class DataConfig:
    """Where the parallel text comes from and how it becomes subword ids."""

    # A corpus spec: bible:en-es, tsv:PATH?src=0&tgt=1, moses:PREFIX?src=en&tgt=es,
    # tmx:PATH?src=en&tgt=es, jsonl:PATH?src=source&tgt=target (.gz read as well).
    corpus: str = "bible:en-es"
    # Explicit held-out sets (same spec forms); then all of ``corpus`` is training data.
    dev_corpus: str | None = None
    test_corpus: str | None = None
    # A malformed line: "raise" stops with file and line, "skip" counts it in the report.
    on_error: str = "raise"
    strip_markup: bool = True
    # NFKC is what the model sees in the graph at serving time as well.
    unicode_form: str | None = "NFKC"
    lowercase: bool = False
    src_vocab_size: int = 4000
    tgt_vocab_size: int = 4000
    # unigram or bpe, as SentencePiece names them.
    subword_model: str = "unigram"
    # Pairs with more pieces than this on either side are left out of training
    # (not of evaluation): long Bible verses dominate the cost of a step.
    max_pieces: int = 80
    # Training pairs whose longer side has more than this many times the
    # pieces of the shorter side are misaligned more often than not.
    max_length_ratio: float = 3.0
    # SentencePiece is trained on at most this many sentences per language.
    sentencepiece_sample: int = 200_000
    # A corpus line longer than this many bytes (line break included) is no
    # sentence (a binary file, a missing line break, /dev/zero): reading
    # stops there with file and line (on_error=skip skips it), so memory
    # and time stay bounded.
    max_line_bytes: int = 1 << 20
    # Another run folder whose SentencePiece models and prepared splits this
    # run copies, byte for byte, instead of preparing its own; that run's data
    # settings then apply here. Two runs with different seeds then share their
    # vocabularies and can be ensembled. null: prepare from data.corpus.
    reuse_from: str | None = None
    # Synthetic (back-translated) pairs, source<TAB>target per line (.gz read
    # as well), added to the training split only, each source after the
    # reserved tag translate.reuse.SYNTHETIC_TAG, which the source
    # SentencePiece model keeps as one piece ("tagged back-translation",
    # Caswell et al. 2019). Dev and test never hold synthetic pairs.
    synthetic: str | None = None


@dataclass
class ModelConfig:
    """Encoder-decoder shape; see ``translate.model``."""

    cell: str = "gru"
    embedding_dim: int = 128
    # Units per direction of a bidirectional encoder layer.
    encoder_units: int = 128
    encoder_layers: int = 1
    # Which encoder layers read both ways: "first" (GNMT's choice) or "all".
    bidirectional: str = "first"
    decoder_units: int = 256
    decoder_layers: int = 1
    # x + f(x) between stacked layers of equal size (from the second layer on).
    residual: bool = False
    # bahdanau: additive score inside the recurrence, on s_{t-1}, context fed to
    # the cell (the default: the model this toolkit is built around, trained
    # by the hoisted loop of translate/bahdanau.py; docs/decisions/default-attention.md);
    # additive / luong_dot / luong_general: after a whole-sequence decoder
    # RNN, on s_t; none: a plain encoder-decoder. luong_dot needs
    # decoder_units == the encoder output width (2 x encoder_units here).
    attention: str = "bahdanau"
    # Only for attention after the RNN: feed the previous attentional vector
    # back into the RNN (Luong et al. 2015, sec. 3.3); the RNN then runs step
    # by step instead of as one fused kernel.
    input_feeding: bool = False
    attention_units: int = 256
    # Additive scores (bahdanau, additive) only: weight-normalize the score
    # vector v, as TensorFlow's BahdanauAttention(normalize=True).
    attention_normalize: bool = False
    # bahdanau: the score's query is [s_{t-1}; y_{t-1}] instead of s_{t-1}
    # alone, so the attention that picks c_t knows the word just emitted;
    # y_{t-1} W_y is computed for all steps outside the loop
    # (docs/decisions/default-attention.md). Off by default so that a run
    # saved before the key existed loads as it was trained; the presets turn
    # it on. Attention after the RNN already has it: its query s_t has read
    # y_{t-1}, so there the key changes nothing.
    attention_query_input: bool = False
    # Size of the layer before the softmax; null: decoder_units.
    output_dim: int | None = None
    # Share the target embedding matrix with the output layer (Press and Wolf
    # 2017); needs output_dim == embedding_dim.
    tie_embeddings: bool = False
    # On embeddings, between stacked layers and before the output layer.
    dropout: float = 0.1


@dataclass
class TrainConfig:
    """How ``fit`` runs."""

    batch_size: int = 64
    epochs: int = 10
    # None: one pass over the training split per epoch.
    steps_per_epoch: int | None = None
    learning_rate: float = 0.001
    optimizer: str = "adam"
    # Decoupled weight decay, adamw only (Loshchilov and Hutter 2019).
    weight_decay: float = 0.01
    # constant; inverse_sqrt: linear warm-up to learning_rate over warmup_steps,
    # then learning_rate * sqrt(warmup_steps / step) (Vaswani et al. 2017);
    # plateau: multiply by plateau_factor after plateau_patience epochs without
    # a lower dev loss; budget_linear: fall linearly with wall-clock time from
    # learning_rate to min_learning_rate at max_minutes (Li et al. 2020).
    lr_schedule: str = "constant"
    warmup_steps: int = 1000
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    min_learning_rate: float = 1e-5
    # Clip gradients by their global norm (Pascanu et al. 2013); 0 turns it off.
    clip_norm: float = 1.0
    # Spread this much probability mass over the vocabulary (Szegedy et al. 2016).
    label_smoothing: float = 0.0
    # mixed_bfloat16: bfloat16 compute, float32 weights; auto: mixed_bfloat16 where the
    # hardware multiplies bfloat16 natively (a CPU with AMX, a GPU of compute capability
    # 8.0+), float32 elsewhere (translate/precision.py).
    precision: str = "auto"
    # Compile the train step with XLA. Only the fused decoder (attention after
    # the RNN, no input feeding) compiles: XLA cannot take the gradient of the
    # stepwise tf.scan decoder (bahdanau, input feeding). Off by default: XLA
    # compiles each new batch shape, and on the 2-core CPU the quick model's
    # step took 869 ms with it against 210 without (benchmarks/results/knobs.json;
    # docs/decisions/precision-and-xla.md).
    jit_compile: bool = False
    # Stop after this many epochs without a better dev BLEU; null: never.
    early_stopping_patience: int | None = None
    # TensorBoard logs under run_dir/logs.
    tensorboard: bool = True
    # With tensorboard: attention heatmaps of this many dev sentences as
    # TensorBoard images each epoch (logs/attention); 0: none.
    attention_images: int = 3
    # default: one device; mirrored: all local GPUs (or CPUs); multi_worker:
    # machines listed in the TF_CONFIG environment variable.
    strategy: str = "default"
    # Training stops cleanly after this many minutes, keeping the best model.
    max_minutes: float = 60.0
    # Keep the weights of the last this many epochs as
    # checkpoints/epoch-NNN.weights.h5 (for curves and checkpoint averaging); 0: none.
    keep_checkpoints: int = 0
    # Ship the mean of the last this many epochs' weights (checkpoint averaging, translate/averaging.py) as the
    # run's best.weights.h5, the best-dev epoch's weights kept as checkpoints/best-dev.weights.h5; needs
    # keep_checkpoints at least as large. 0: ship the epoch with the best dev BLEU.
    average_last: int = 0
    # Dev BLEU is computed each epoch on this many dev sentences (greedy).
    dev_sentences: int = 200
    # A run folder that holds a trained model (best.weights.h5) is never
    # replaced by accident: train refuses a finished run and prepare a trained
    # one. true: start the run again from scratch, replacing the files the
    # project made there (weights, history.csv, config.yaml, checkpoints, the
    # backup, the SentencePiece models); other files are left alone.
    overwrite: bool = False
    # Fine-tuning: start from this finished run's best weights and encode the
    # corpus with its SentencePiece models (no new vocabularies). The model
    # settings must be that run's (model.dropout may differ); the learning
    # rate, schedule and budget are this config's. The run is only read.
    init_from: str | None = None
    # Training pairs the shuffle draws from. null: the whole train split, a uniform shuffle each epoch
    # (split files keep their corpus's order: the Bible's books in canonical order, synthetic pairs after
    # the real ones, a file sorted by length stays so; docs/decisions/whole-split-shuffle.md). A number bounds the
    # memory the shuffle holds beside the cached ids; 0 keeps the file's order.
    shuffle_buffer: int | None = None
    seed: int = 1234
    # Train this many models side by side, one process per CPU core, with seeds seed, seed + 1, ..., on one
    # preparation, and ship their ensemble (translate/members.py; docs/training.md, "Members trained side by side").
    # On an N-core machine N members take about the minutes of one model. 1: one model.
    members: int = 1


@dataclass
class DecodeConfig:
    """Search options; fixed at export and recorded in the config asset.

    The output length limit is ``min(cap, ratio * source_pieces + offset)``.
    Sources longer than ``max_source_pieces`` are cut there before encoding,
    so that the cost of any request stays bounded; the translation then
    covers only that prefix.
    """

    max_source_pieces: int = 250
    # Beam width K (1 = greedy) and GNMT length penalty alpha (0 = none). The
    # best test BLEU of `python -m benchmarks beam` among settings that decode
    # at least a third as fast as greedy (docs/decisions/beam-width-and-alpha.md).
    beam_size: int = 5
    alpha: float = 0.6
    max_length_ratio: float = 1.5
    max_length_offset: int = 10
    max_length_cap: int = 200
    # A batch is split into this many parts, each searched by its own loop.
    # A search step is a chain of ops too small to gain from being split over
    # cores; with one intra-op thread per op, TensorFlow runs the independent
    # loops side by side, one per core (docs/decisions/decoding-threads.md).
    shards: int = 2


@dataclass
class ExportConfig:
    """Where the SavedModel goes: ``models_dir/name/<version>``."""

    models_dir: str = "saved_models"
    name: str = "translator"


# Upper bounds, checked before anything is read or built. Each is far above
# what a recurrent translator on one machine uses (GNMT: 8 layers of 1,024
# units, 32k pieces, beam 10) but finite, so a typo such as 1e11 fails at
# once with the key's name instead of after reading a corpus or allocating a
# tensor that cannot fit.
UPPER_BOUNDS: dict[str, int | float] = {
    # The largest common MT vocabularies have about 250k pieces.
    "data.src_vocab_size": 1_000_000,
    "data.tgt_vocab_size": 1_000_000,
    # Pieces per sentence and length ratios: a sentence of 100k pieces is a book.
    "data.max_pieces": 100_000,
    "data.max_length_ratio": 1_000.0,
    # Sentences held in memory to train SentencePiece.
    "data.sentencepiece_sample": 100_000_000,
    "data.max_line_bytes": 1 << 30,
    # Widths: one GRU of 16,384 units already holds 3 GB of weights.
    "model.embedding_dim": 16_384,
    "model.encoder_units": 16_384,
    "model.decoder_units": 16_384,
    "model.attention_units": 16_384,
    "model.output_dim": 16_384,
    "model.encoder_layers": 64,
    "model.decoder_layers": 64,
    "train.batch_size": 65_536,
    "train.epochs": 1_000_000,
    "train.steps_per_epoch": 1_000_000_000,
    "train.warmup_steps": 1_000_000_000,
    "train.plateau_patience": 1_000_000,
    "train.early_stopping_patience": 1_000_000,
    # Rates beyond these only diverge; they are bounds against typos, not advice.
    "train.learning_rate": 100.0,
    "train.min_learning_rate": 100.0,
    "train.weight_decay": 100.0,
    "train.clip_norm": 1_000_000.0,
    # One leap year.
    "train.max_minutes": 527_040.0,
    "train.keep_checkpoints": 100_000,
    "train.average_last": 100_000,
    "train.attention_images": 1_000,
    "train.dev_sentences": 10_000_000,
    # Pairs held in memory by the shuffle.
    "train.shuffle_buffer": 10_000_000,
    # NumPy seeds are 32-bit (keras.utils.set_random_seed).
    "train.seed": 2**32 - 1,
    "train.members": 64,
    "decode.max_source_pieces": 100_000,
    "decode.beam_size": 1_000,
    "decode.alpha": 100.0,
    "decode.max_length_ratio": 1_000.0,
    "decode.max_length_offset": 100_000,
    "decode.max_length_cap": 100_000,
    "decode.shards": 1_024,
}


@dataclass
class Config:
    """A whole run."""

    run_dir: str = "runs/default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def validate(self) -> Config:
        """Checks values that a type alone cannot; returns self."""
        for ok, message in self._number_checks():
            if not ok:
                raise ValueError(message)
        checks = [
            (
                self.model.cell in CELLS,
                f"model.cell must be one of {', '.join(CELLS)}, got {short_repr(self.model.cell)}",
            ),
            (
                self.data.subword_model in ("unigram", "bpe"),
                f"data.subword_model must be unigram or bpe, got {short_repr(self.data.subword_model)}",
            ),
            # byte_fallback needs 256 byte pieces plus the 4 specials and some words.
            (self.data.src_vocab_size >= 300, "data.src_vocab_size must be at least 300"),
            (self.data.tgt_vocab_size >= 300, "data.tgt_vocab_size must be at least 300"),
            (self.data.max_pieces >= 1, "data.max_pieces must be at least 1"),
            (self.data.max_length_ratio >= 1, "data.max_length_ratio must be at least 1"),
            (
                self.data.on_error in ("raise", "skip"),
                f"data.on_error must be raise or skip, got {short_repr(self.data.on_error)}",
            ),
            (
                self.data.unicode_form in (None, "NFC", "NFKC", "NFD", "NFKD"),
                f"data.unicode_form must be NFC, NFKC, NFD, NFKD or null, got {short_repr(self.data.unicode_form)}",
            ),
            (self.data.sentencepiece_sample >= 1, "data.sentencepiece_sample must be at least 1"),
            (self.data.max_line_bytes >= 1, "data.max_line_bytes must be at least 1"),
            (0.0 <= self.model.dropout < 1.0, "model.dropout must be in [0, 1)"),
            (self.train.batch_size >= 1, "train.batch_size must be at least 1"),
            (self.train.epochs >= 1, "train.epochs must be at least 1"),
            (
                self.train.steps_per_epoch is None or self.train.steps_per_epoch >= 1,
                "train.steps_per_epoch must be at least 1 or null",
            ),
            (
                self.train.shuffle_buffer is None or self.train.shuffle_buffer >= 0,
                "train.shuffle_buffer must be >= 0 (0 keeps the file's order) or null (the whole split)",
            ),
            (self.train.learning_rate > 0, "train.learning_rate must be positive"),
            (self.train.clip_norm >= 0, "train.clip_norm must be >= 0 (0 turns clipping off)"),
            (self.train.max_minutes > 0, "train.max_minutes must be positive"),
            (self.decode.max_length_ratio > 0, "decode.max_length_ratio must be positive"),
            (self.decode.max_length_cap >= 1, "decode.max_length_cap must be at least 1"),
            (self.decode.max_source_pieces >= 1, "decode.max_source_pieces must be at least 1"),
            (self.decode.beam_size >= 1, f"decode.beam_size must be at least 1, got {self.decode.beam_size}"),
            (self.decode.shards >= 1, f"decode.shards must be at least 1, got {self.decode.shards}"),
            (self.decode.alpha >= 0, f"decode.alpha must be >= 0, got {self.decode.alpha}"),
            (self.train.seed >= 0, f"train.seed must be >= 0, got {self.train.seed}"),
        ]
        for key, value in (
            ("data.reuse_from", self.data.reuse_from),
            ("data.synthetic", self.data.synthetic),
            ("train.init_from", self.train.init_from),
        ):
            checks.append((value is None or bool(value.strip()), f"{key} is empty: name a folder or file, or null"))
        for units in (
            "embedding_dim",
            "encoder_units",
            "encoder_layers",
            "decoder_units",
            "decoder_layers",
            "attention_units",
        ):
            checks.append((getattr(self.model, units) >= 1, f"model.{units} must be at least 1"))
        for ok, message in checks + self._model_checks() + self._train_checks():
            if not ok:
                raise ValueError(message)
        check_model_name(self.export.name, "export.name")
        return self

    def _number_checks(self) -> list[tuple[bool, str]]:
        """Every float is finite and every bounded number at most its :data:`UPPER_BOUNDS` entry."""
        checks = []
        for section in (self.data, self.model, self.train, self.decode):
            prefix = _SECTIONS[type(section)]
            for f in dataclasses.fields(section):
                value = getattr(section, f.name)
                if isinstance(value, float):
                    checks.append((math.isfinite(value), f"{prefix}.{f.name} must be a finite number, got {value}"))
        for name, bound in UPPER_BOUNDS.items():
            section, _, key = name.partition(".")
            value = getattr(getattr(self, section), key)
            if value is not None:
                checks.append((value <= bound, f"{name} must be at most {bound:,}, got {short_repr(value)}"))
        return checks

    def _model_checks(self) -> list[tuple[bool, str]]:
        """Combinations of model options that cannot be built."""
        m = self.model
        memory_dim = memory_size(m)
        return [
            (
                m.attention in ATTENTIONS,
                f"model.attention must be one of {', '.join(ATTENTIONS)}, got {short_repr(m.attention)}",
            ),
            (
                m.bidirectional in ("first", "all"),
                f"model.bidirectional must be first or all, got {short_repr(m.bidirectional)}",
            ),
            (m.output_dim is None or m.output_dim >= 1, "model.output_dim must be at least 1 or null"),
            (
                not (m.input_feeding and m.attention == "none"),
                "model.input_feeding needs attention, but model.attention is none",
            ),
            (
                not (m.input_feeding and m.attention == "bahdanau"),
                "model.input_feeding is for attention after the decoder RNN (additive, luong_dot, luong_general); "
                "bahdanau attention feeds its context into the recurrence already",
            ),
            (
                m.attention != "luong_dot" or m.decoder_units == memory_dim,
                f"model.attention=luong_dot needs model.decoder_units == the encoder output size "
                f"({memory_dim} = {'2 * ' if memory_dim != m.encoder_units else ''}model.encoder_units), "
                f"got {m.decoder_units}; use luong_general for different sizes",
            ),
            (
                not m.tie_embeddings or output_size(m) == m.embedding_dim,
                f"model.tie_embeddings needs model.output_dim == model.embedding_dim, got {output_size(m)} "
                f"(output_dim{' = decoder_units' if m.output_dim is None else ''}) and {m.embedding_dim}",
            ),
        ]

    def _train_checks(self) -> list[tuple[bool, str]]:
        t = self.train
        return [
            (
                t.optimizer in OPTIMIZERS,
                f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, got {short_repr(t.optimizer)}",
            ),
            (t.weight_decay >= 0, "train.weight_decay must be >= 0"),
            (
                t.lr_schedule in LR_SCHEDULES,
                f"train.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {short_repr(t.lr_schedule)}",
            ),
            (t.warmup_steps >= 1, "train.warmup_steps must be at least 1"),
            (0 < t.plateau_factor < 1, "train.plateau_factor must be in (0, 1)"),
            (t.plateau_patience >= 0, "train.plateau_patience must be >= 0"),
            (t.min_learning_rate >= 0, "train.min_learning_rate must be >= 0"),
            (
                t.lr_schedule != "budget_linear" or t.min_learning_rate <= t.learning_rate,
                "train.min_learning_rate must not exceed train.learning_rate with train.lr_schedule=budget_linear",
            ),
            (0 <= t.label_smoothing < 1, "train.label_smoothing must be in [0, 1)"),
            (
                t.precision in PRECISIONS,
                f"train.precision must be one of {', '.join(PRECISIONS)}, got {short_repr(t.precision)}",
            ),
            (
                t.early_stopping_patience is None or t.early_stopping_patience >= 1,
                "train.early_stopping_patience must be at least 1 or null",
            ),
            (t.attention_images >= 0, "train.attention_images must be >= 0 (0: none)"),
            (t.members >= 1, f"train.members must be at least 1 (1: one model), got {t.members}"),
            (
                t.members == 1 or t.strategy == "default",
                "train.members trains each member in a process of its own on one core: it needs "
                f"train.strategy=default, got {short_repr(t.strategy)}",
            ),
            (
                t.seed + t.members - 1 <= 2**32 - 1,
                f"train.seed + train.members - 1 must be at most {2**32 - 1:,}: member k trains with seed + k - 1",
            ),
            (t.keep_checkpoints >= 0, "train.keep_checkpoints must be >= 0 (0: none)"),
            (
                t.average_last == 0 or 2 <= t.average_last <= t.keep_checkpoints,
                f"train.average_last must be 0 (off) or from 2 to train.keep_checkpoints "
                f"(={t.keep_checkpoints}): the epochs it averages must be kept, got {t.average_last}",
            ),
            (
                t.strategy in STRATEGIES,
                f"train.strategy must be one of {', '.join(STRATEGIES)}, got {short_repr(t.strategy)}",
            ),
            (
                not (t.jit_compile and (self.model.attention == "bahdanau" or self.model.input_feeding)),
                "train.jit_compile needs the fused decoder: XLA cannot differentiate the step-by-step decoder that "
                "model.attention=bahdanau and model.input_feeding use",
            ),
        ]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {DataConfig: "data", ModelConfig: "model", TrainConfig: "train", DecodeConfig: "decode"}


def memory_size(model: ModelConfig) -> int:
    """Size of an encoder output h_j: the top encoder layer's, both directions if it reads both ways."""
    top_is_bidirectional = model.bidirectional == "all" or model.encoder_layers == 1
    return model.encoder_units * (2 if top_is_bidirectional else 1)


def output_size(model: ModelConfig) -> int:
    """Size of the layer before the softmax."""
    return model.output_dim if model.output_dim is not None else model.decoder_units


# No number in a config comes near this; YAML reads 0b and 0x integers of any length.
MAX_INTEGER = 2**63 - 1


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    """Returns ``value`` as ``annotation`` or raises ValueError naming ``key``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(annotation):
            return None
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _check_type(value, inner[0], key)
    if annotation in (int, float) and type(value) is int and abs(value) > MAX_INTEGER:
        # Before float(value) too, which fails on an integer beyond a float's range (OverflowError).
        raise ValueError(f"config key {short_repr(key)} is out of range: {short_repr(value)}")
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        # YAML 1.1 reads 1e-4 (no dot) as a string; Python reads it as the number it means.
        try:
            return float(value)
        except ValueError:
            pass
    if annotation in (int, float) and isinstance(value, bool):
        raise ValueError(f"config key {short_repr(key)} must be {annotation.__name__}, got {short_repr(value)}")
    if not isinstance(value, annotation):
        raise ValueError(f"config key {short_repr(key)} must be {annotation.__name__}, got {short_repr(value)}")
    return value


def _merge(target: Any, values: dict[str, Any], prefix: str = "") -> None:
    if not isinstance(values, dict):
        raise ValueError(f"config section {short_repr(prefix.rstrip('.') or '<top>')} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(target)}
    hints = typing.get_type_hints(type(target))
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ValueError(f"unknown config key {short_repr(name)} (known here: {known})")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, prefix=f"{name}.")
        else:
            setattr(target, key, _check_type(value, hints[key], name))


def preset_path(name: str) -> Path:
    path = CONFIGS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml")))
        raise ValueError(f"unknown preset {short_repr(name)} (available: {known})")
    return path


# A config file is a few kB; one over this is not a config (nor is /dev/zero).
MAX_CONFIG_BYTES = 1 << 20


class AnchorError(yaml.YAMLError):
    """A YAML anchor or alias, which config files and overrides may not use."""

    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__(
            f"YAML anchors and aliases (&name, *name) are not allowed in a config "
            f"(line {mark.line + 1}, column {mark.column + 1})"
        )


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors and aliases before any node is built.

    An alias is a reference: ``*a`` stands for the whole value anchored as
    ``&a``, so nine lines can make a value of 10^9 strings ("billion
    laughs") that blows up whatever prints or copies it. A config never
    needs one.
    """

    def compose_node(self, parent, index):  # noqa: ANN001 -- PyYAML's signature
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise AnchorError(event.start_mark)
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """``text`` as YAML with :class:`ConfigLoader`; raises ValueError with one line on anything else."""
    try:
        return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 -- a SafeLoader subclass
    except AnchorError as err:
        raise ValueError(str(err)) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"not valid YAML: {' '.join(str(err.problem or err.context).split())}{where}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"not valid YAML: {' '.join(str(err).split())[:200]}") from None
    except RecursionError:
        raise ValueError("not valid YAML: nested too deeply") from None
    except ValueError as err:  # an integer of more than 4,300 digits
        raise ValueError(f"not valid YAML: {' '.join(str(err).split())[:200]}") from None
    except (AttributeError, KeyError, TypeError, IndexError) as err:
        # PyYAML's constructors fail so on some tagged values: "!!timestamp x", "!!bool maybe".
        raise ValueError(
            f"not valid YAML: a tagged value PyYAML cannot read ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:100]})"
        ) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"config file is a folder, not a file: {path}") from None
    except OSError as err:
        raise ValueError(f"cannot read config file {path}: {err.strerror or err}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"config file {path} is larger than {MAX_CONFIG_BYTES:,} bytes: not a config file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"config file {path} is not UTF-8: {err}") from None
    try:
        values = load_yaml(text)
    except ValueError as err:
        raise ValueError(f"config file {path}: {err}") from None
    return values or {}


def parse_override(text: str) -> dict[str, Any]:
    """``"train.epochs=3"`` -> ``{"train": {"epochs": 3}}`` (value parsed as YAML, without anchors)."""
    if "=" not in text:
        raise ValueError(f"override {short_repr(text)} must look like key=value, e.g. train.epochs=3")
    key, raw = text.split("=", 1)
    try:
        value = yaml.load(raw, Loader=ConfigLoader) if raw.strip() else ""  # noqa: S506
    except AnchorError as err:
        raise ValueError(f"override {short_repr(text)}: {err}") from None
    except (yaml.YAMLError, RecursionError, ValueError, AttributeError, KeyError, TypeError, IndexError):
        value = raw  # not YAML (see load_yaml): the text itself, which the key's type check judges
    nested: dict[str, Any] = {}
    node = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def load_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> Config:
    """Defaults, then the preset, then ``config_file``, then ``key=value`` overrides."""
    config = Config()
    if preset:
        _merge(config, _read_yaml(preset_path(preset)))
    if config_file:
        _merge(config, _read_yaml(Path(config_file)))
    for override in overrides:
        _merge(config, parse_override(override))
    return config.validate()


def config_from_dict(values: dict[str, Any]) -> Config:
    """The inverse of ``Config.to_dict`` (used to read a run's or an export's config)."""
    config = Config()
    _merge(config, values)
    return config.validate()


def save_config(config: Config, path: str | Path) -> None:
    """Writes ``config`` as YAML, atomically: a run's config.yaml is what loads its weights again.

    ``train.overwrite`` is saved as false: it is an instruction to one
    command, not a property of the run, and a config file reused later must
    never replace a run by itself.
    """
    values = config.to_dict()
    values["train"]["overwrite"] = False
    atomic.write_text(path, yaml.safe_dump(values, sort_keys=False))
