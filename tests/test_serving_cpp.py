"""Served like TF Serving, without Python: C++ LoadSavedModel + Session::Run on our export."""

from __future__ import annotations

import shutil

import pytest

from conftest import HOSTILE_SENTENCES, INVALID_UTF8
from cpp_serving import build_serving_binary, run_signature

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


def test_cpp_serving_default_matches_python(tiny_export, tiny_translator):
    sentences = ["Good morning.", "Where is the house?", "Thank you.", *HOSTILE_SENTENCES[1:2], HOSTILE_SENTENCES[3]]
    binary = build_serving_binary()
    rows = run_signature(binary, tiny_export, "serving_default", [s.encode("utf-8") for s in sentences])
    translations, scores = tiny_translator.translate_with_scores(sentences)
    assert [row[1] for row in rows] == translations
    for (cpp_score, _), py_score in zip(rows, scores):
        assert cpp_score == pytest.approx(py_score, abs=1e-4)


def test_cpp_serving_survives_invalid_utf8_and_an_empty_batch(tiny_export):
    binary = build_serving_binary()
    rows = run_signature(binary, tiny_export, "serving_default", [INVALID_UTF8])
    assert len(rows) == 1 and isinstance(rows[0][1], str)
    assert run_signature(binary, tiny_export, "serving_default", []) == []


def test_cpp_runs_the_nbest_and_align_signatures_like_python(tiny_export, tiny_translator):
    import numpy as np

    translator = tiny_translator
    binary = build_serving_binary()
    sentences = ["Good morning.", "Thank you."]
    nbest_rows = run_signature(binary, tiny_export, "nbest", [s.encode() for s in sentences])
    for (scores, translations), expected in zip(nbest_rows, translator.nbest_with_scores(sentences)):
        assert translations == [t for t, _ in expected]
        np.testing.assert_allclose(scores, [s for _, s in expected], atol=1e-4)
    (row,) = run_signature(binary, tiny_export, "align", [b"Good morning."])
    attention, source_pieces, target_pieces = row
    alignment = translator.align("Good morning.")
    assert [p for p in source_pieces if p] == alignment["source_pieces"]
    assert [p for p in target_pieces if p] == alignment["target_pieces"]
    assert len(attention) == len(target_pieces) * len(source_pieces)


def test_cpp_replays_every_warmup_record_like_tf_serving(tiny_export, tiny_translator):
    """TF Serving runs each warm-up record through Session::Run before a version is AVAILABLE."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from cpp_serving import run_warmup

    path = tiny_export / "assets.extra" / "tf_serving_warmup_requests"
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    records = run_warmup(build_serving_binary(), tiny_export)
    assert [(r["index"], r["signature"]) for r in records] == [
        (i, log.predict_log.request.model_spec.signature_name) for i, log in enumerate(logs)
    ]
    assert {r["signature"] for r in records} == {"serving_default", "nbest", "align", "sample"}
    translator = tiny_translator
    for record, log in zip(records, logs):
        sentences = [s.decode("utf-8") for s in log.predict_log.request.inputs["sentences"].string_val]
        assert record["batch"] == len(sentences)
        if record["signature"] == "serving_default":
            translations, scores = translator.translate_with_scores(sentences)
            assert [row[1] for row in record["rows"]] == translations
            np.testing.assert_allclose([row[0] for row in record["rows"]], scores, atol=1e-4)
        elif record["signature"] == "nbest":
            expected = translator.nbest_with_scores(sentences)
            assert [row[1] for row in record["rows"]] == [[t for t, _ in row] for row in expected]


def test_cpp_warmup_refuses_a_corrupted_record(tiny_export, tmp_path):
    import shutil as sh

    from cpp_serving import run_warmup

    copy = tmp_path / "1"
    sh.copytree(tiny_export, copy)
    warmup = copy / "assets.extra" / "tf_serving_warmup_requests"
    data = bytearray(warmup.read_bytes())
    data[20] ^= 0xFF  # inside the first record's data: its CRC no longer matches
    warmup.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="CRC mismatch"):
        run_warmup(build_serving_binary(), copy)
