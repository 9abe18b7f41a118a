"""Runs that build on other runs: shared vocabularies and splits, fine-tuning, the synthetic-data tag.

``data.reuse_from=RUN``
    The new run copies RUN's SentencePiece models and prepared splits byte
    for byte (:func:`translate.prepare.prepare`) and takes RUN's data
    settings (:func:`reused_data`), so two runs with different seeds share
    vocabularies and test set and can be ensembled.
``train.init_from=RUN`` (``train --init-from RUN``)
    Fine-tuning: the new run encodes its own corpus with RUN's SentencePiece
    models (:func:`init_sentencepiece`; no new vocabularies) and starts from
    RUN's ``best.weights.h5``. Its model settings must be RUN's
    (:func:`check_init_from`); the learning rate and budget are its own.
``data.synthetic=FILE.tsv``
    Back-translated pairs join the training split with :data:`SYNTHETIC_TAG`
    before each source ("tagged back-translation", Caswell et al. 2019).

Every check here raises ValueError with one line, before anything is
written; the source run is only ever read. Kept free of TensorFlow imports,
so that the command line refuses at once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

from translate.config import Config, DataConfig, ModelConfig, config_from_dict, load_config
from translate.messages import short_repr
from translate.run_folder import BEST_WEIGHTS, CONFIG, DATA_DIR, DATA_FILES, SENTENCEPIECE_MODELS, STATS

log = logging.getLogger(__name__)

# Prepended (with a space) to the source of every synthetic pair. Caswell et
# al. (2019, "Tagged Back-Translation") use a reserved token <BT>: it tells
# the model which sources are machine-made, which works better than noising
# them (Edunov et al. 2018). The source SentencePiece model of a run with
# data.synthetic holds it as a user-defined symbol, one piece that is never
# split; real sources never carry it, at training or at serving time.
SYNTHETIC_TAG = "<BT>"

# Model settings that fine-tuning may change: none of them changes a weight's shape or meaning.
MAY_DIFFER = frozenset({"dropout"})


def same_folder(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def same_source(recorded, given: str) -> bool:
    """Whether ``stats.json``'s ``reused_from`` names the run ``given`` (``runs/a``, ``./runs/a/`` alike)."""
    return isinstance(recorded, str) and os.path.normpath(recorded) == os.path.normpath(given)


def check_prepared_source(source: str, key: str = "data.reuse_from") -> Path:
    """RUN's folder when it holds a whole preparation (splits, both models, stats.json); else ValueError."""
    folder = Path(source)
    if not folder.is_dir():
        raise ValueError(f"{key}={short_repr(source)}: no such run folder")
    missing = [
        name
        for name in (STATS, *SENTENCEPIECE_MODELS, *(f"{DATA_DIR}/{f}" for f in DATA_FILES))
        if not (folder / name).is_file()
    ]
    if missing:
        raise ValueError(
            f"{key}={short_repr(source)} is not a prepared run folder (no {missing[0]}): "
            f"prepare it first, e.g. python -m translate prepare run_dir={source}"
        )
    return folder


def reused_data(config: Config) -> Config:
    """``config`` with the data settings of ``data.reuse_from``'s preparation; ``config`` itself without one.

    The copied splits and models are what those settings made, so they are
    the ones that hold for the new run (its ``config.yaml`` and
    ``stats.json`` say so); settings of ``config`` that differ are named in
    a warning. Idempotent.

    Raises:
        ValueError: the run named is missing, not prepared, or the run folder itself.
    """
    source = config.data.reuse_from
    if not source:
        return config
    own = _read_stats(Path(config.run_dir))
    if own is not None and same_source(own.get("reused_from"), source):
        # Copied already: the run's own copy of the settings, so the run outlives the one it copied.
        prepared_with = own.get("data_config", {})
    else:
        folder = check_prepared_source(source)
        if same_folder(folder, config.run_dir):
            raise ValueError(f"data.reuse_from={short_repr(source)} is this run's own folder: name another run")
        stats = _read_stats(folder)
        if stats is None:
            raise ValueError(f"data.reuse_from={short_repr(source)}: cannot read its {STATS}")
        prepared_with = stats.get("data_config", {})
    if not isinstance(prepared_with, dict):
        raise ValueError(f"data.reuse_from={short_repr(source)}: its {STATS} holds no data settings")
    known = {f.name for f in dataclasses.fields(DataConfig)}
    data = {**dataclasses.asdict(DataConfig()), **{k: v for k, v in prepared_with.items() if k in known}}
    data["reuse_from"] = source
    values = config.to_dict()
    differs = sorted(key for key in known if values["data"][key] != data[key])
    if differs:
        log.warning(
            "data.reuse_from=%s: its data settings apply to this run, not %s",
            source,
            ", ".join(f"data.{key}={short_repr(values['data'][key])}" for key in differs),
        )
    values["data"] = data
    return config_from_dict(values)


def _read_stats(folder: Path) -> dict | None:
    """A run folder's stats.json, or None when it has none that reads as a JSON object."""
    try:
        stats = json.loads((folder / STATS).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return stats if isinstance(stats, dict) else None


def _models_of(folder: Path) -> tuple[bytes, bytes]:
    return tuple((folder / name).read_bytes() for name in SENTENCEPIECE_MODELS)


def init_sentencepiece(config: Config) -> tuple[bytes, bytes] | None:
    """``train.init_from``'s (source, target) SentencePiece models, which prepare uses instead of training
    its own; None without ``train.init_from``."""
    if not config.train.init_from:
        return None
    return _models_of(_trained_source(config.train.init_from))


def _trained_source(source: str) -> Path:
    folder = Path(source)
    if not folder.is_dir():
        raise ValueError(f"train.init_from={short_repr(source)}: no such run folder")
    for name in (CONFIG, BEST_WEIGHTS, *SENTENCEPIECE_MODELS):
        if not (folder / name).is_file():
            raise ValueError(
                f"train.init_from={short_repr(source)} holds no trained model (no {name}): "
                "name a run folder that train has finished"
            )
    return folder


def check_init_from(config: Config) -> None:
    """Refuses a fine-tuning run that cannot start from ``train.init_from``: raises ValueError, writes nothing.

    Refused: a missing or untrained run, this run's own folder, any model
    setting other than the run's (but :data:`MAY_DIFFER`), a run folder
    already prepared (or a ``data.reuse_from``) with other SentencePiece
    models, and ``data.synthetic`` when the run's source model lacks
    :data:`SYNTHETIC_TAG` as a piece.
    """
    source = config.train.init_from
    if not source:
        return
    folder = _trained_source(source)
    if same_folder(folder, config.run_dir):
        raise ValueError(
            f"train.init_from={short_repr(source)} is this run's own folder: fine-tuning writes a new run "
            "and never changes the one it starts from; name another run_dir"
        )
    try:
        theirs = load_config(config_file=folder / CONFIG).model
    except ValueError as err:
        raise ValueError(f"train.init_from={short_repr(source)}: {err}") from None
    for field in dataclasses.fields(ModelConfig):
        mine, other = getattr(config.model, field.name), getattr(theirs, field.name)
        if field.name not in MAY_DIFFER and mine != other:
            raise ValueError(
                f"train.init_from={short_repr(source)}: model.{field.name} is {short_repr(mine)} here but "
                f"{short_repr(other)} there; fine-tuning needs the model it starts from "
                f"(set model.{field.name}={other}; only {', '.join('model.' + k for k in sorted(MAY_DIFFER))} "
                "may differ)"
            )
    models = _models_of(folder)
    for where, key in ((Path(config.run_dir), "run folder"), (config.data.reuse_from, "data.reuse_from")):
        if where and (Path(where) / STATS).is_file() and _models_of(Path(where)) != models:
            raise ValueError(
                f"{key} {where} was prepared with other SentencePiece models than train.init_from={source}, "
                "whose weights fit only its own: use a new run_dir"
                + (" or drop data.reuse_from" if key == "data.reuse_from" else "")
            )
    if config.data.synthetic and not has_synthetic_tag(models[0]):
        raise ValueError(
            f"data.synthetic needs {SYNTHETIC_TAG} as one piece of the source SentencePiece model, and "
            f"train.init_from={short_repr(source)}'s has none (it was trained without data.synthetic)"
        )


def has_synthetic_tag(src_model: bytes) -> bool:
    """Whether a SentencePiece model keeps :data:`SYNTHETIC_TAG` whole, as one piece, before a sentence."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=src_model)
    return SYNTHETIC_TAG in processor.encode(tag_source("a"), out_type=str)


def tag_source(source: str) -> str:
    """A synthetic pair's source as training sees it: :data:`SYNTHETIC_TAG`, a space, the source."""
    return f"{SYNTHETIC_TAG} {source}"


def synthetic_spec(path: str) -> str:
    """The corpus spec that reads ``data.synthetic``: source<TAB>target per line (the trailing ``?`` lets the
    path hold a ``?`` of its own)."""
    return f"tsv:{path}?"
