"""Served like TF Serving, without Python: C++ LoadSavedModel + Session::Run on our export."""

from __future__ import annotations

import shutil

import pytest

from conftest import HOSTILE_SENTENCES, INVALID_UTF8
from cpp_serving import build_serving_binary, run_signature

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


def test_cpp_serving_default_matches_python(tiny_export):
    import translate

    sentences = ["Good morning.", "Where is the house?", "Thank you.", *HOSTILE_SENTENCES[1:2], HOSTILE_SENTENCES[3]]
    binary = build_serving_binary()
    rows = run_signature(binary, tiny_export, "serving_default", [s.encode("utf-8") for s in sentences])
    translations, scores = translate.load(tiny_export).translate_with_scores(sentences)
    assert [row[1] for row in rows] == translations
    for (cpp_score, _), py_score in zip(rows, scores):
        assert cpp_score == pytest.approx(py_score, abs=1e-4)


def test_cpp_serving_survives_invalid_utf8_and_an_empty_batch(tiny_export):
    binary = build_serving_binary()
    rows = run_signature(binary, tiny_export, "serving_default", [INVALID_UTF8])
    assert len(rows) == 1 and isinstance(rows[0][1], str)
    assert run_signature(binary, tiny_export, "serving_default", []) == []
