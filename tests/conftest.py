"""Shared fixtures: one tiny model, trained for a few steps on the tiny corpus and exported once.

The tiny setting itself lives in :mod:`translate.testing.tiny`; tests import it from here as before.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from translate.testing.tiny import TINY_CORPUS, TINY_OVERRIDES, tiny_config  # noqa: F401  (tests import them from here)

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parent.parent


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
