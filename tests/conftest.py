"""Shared fixtures: one tiny model, trained for a few steps on tests/data/tiny.tsv and exported once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

# A model small enough to train in seconds; large enough to exercise every part.
TINY_OVERRIDES = [
    f"data.corpus=tsv:{DATA / 'tiny.tsv'}",
    "data.src_vocab_size=400",
    "data.tgt_vocab_size=400",
    "data.max_pieces=40",
    "model.embedding_dim=16",
    "model.encoder_units=16",
    "model.decoder_units=32",
    "model.attention_units=16",
    "model.dropout=0.0",
    "train.batch_size=8",
    "train.epochs=2",
    "train.steps_per_epoch=15",
    "train.learning_rate=0.01",
    # Tracing the align search costs seconds per run; tests/test_plotting.py runs the callback itself.
    "train.attention_images=0",
    "decode.max_length_cap=40",
    "decode.max_source_pieces=60",
]


def tiny_config(tmp: Path, *extra: str):
    from translate.config import load_config

    return load_config(overrides=[*TINY_OVERRIDES, f"run_dir={tmp / 'run'}",
                                  f"export.models_dir={tmp / 'saved_models'}", *extra])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A trained tiny run (in-process graph included)."""
    from translate.training import train

    tmp = tmp_path_factory.mktemp("tiny")
    return train(tiny_config(tmp), verbose=0)


@pytest.fixture(scope="session")
def tiny_export(tiny_run):
    """The tiny run exported as version 1 of ``<tmp>/saved_models/translator``."""
    from translate.export import export

    return export(tiny_run.graph, tiny_run.config, tiny_run.src_model, tiny_run.tgt_model)


# Inputs a user can type that must never crash the model.
HOSTILE_SENTENCES = [
    "",
    "   ",
    "Good morning. " * 700,  # ~10,000 characters
    "I love you 😀🎉👍🏽",
    "mixed Ελληνικά русский 中文 text",
    "control \x00\x07\x1b characters",
]
INVALID_UTF8 = b"caf\xc3 \xff\xfe broken"


@pytest.fixture(scope="session")
def foreign_savedmodel(tmp_path_factory):
    """A SavedModel of another project: a ``serving_default`` that upper-cases strings, no config asset."""
    import tensorflow as tf

    class Upper(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
        def serve(self, sentences):
            return {"out": tf.strings.upper(sentences)}

    module = Upper()
    path = tmp_path_factory.mktemp("foreign") / "model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path
