"""Nothing a user can type crashes the translator; every output is bounded by the max length rule."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import HOSTILE_SENTENCES, INVALID_UTF8, REPO
from translate.search import max_output_lengths


def test_hostile_inputs_give_bounded_translations_in_process(tiny_run):
    graph = tiny_run.graph
    batch = tf.constant([s.encode("utf-8") for s in HOSTILE_SENTENCES] + [INVALID_UTF8])
    source_ids = graph.source_ids(batch)
    limits = max_output_lengths(tf.reduce_sum(tf.cast(source_ids != 0, tf.int32), axis=1), graph.decode_config)
    for config in (graph.decode_config, graph.greedy_config):  # beam search and greedy
        result = graph._search(batch, config)
        assert np.all(result.lengths.numpy() <= limits.numpy()[:, None])
        assert result.ids.shape[-1] <= graph.decode_config.max_length_cap
    assert np.all(limits.numpy() <= graph.decode_config.max_length_cap)
    # The 10,000-character sentence is cut to max_source_pieces before encoding.
    assert source_ids.shape[1] <= graph.decode_config.max_source_pieces + 1


def test_hostile_inputs_through_the_exported_signature(tiny_translator):
    translator = tiny_translator
    translations, scores = translator.translate_with_scores(HOSTILE_SENTENCES)
    assert len(translations) == len(HOSTILE_SENTENCES)
    assert all(np.isfinite(scores))
    serve = translator._serve
    out = serve(sentences=tf.constant([INVALID_UTF8, b""]))
    assert out["translations"].shape == (2,) and out["scores"].shape == (2,)
    empty = serve(sentences=tf.constant([], dtype=tf.string))
    assert empty["translations"].shape == (0,) and empty["scores"].shape == (0,)


def test_translator_refuses_what_is_not_text(tiny_export, tiny_translator):
    import translate

    with pytest.raises(ValueError, match="list of strings"):
        tiny_translator([1, 2])
    with pytest.raises(ValueError, match="does not exist"):
        translate.load(tiny_export.parent / "nope")


def run_cli(*args: str, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "translate", *args], capture_output=True, text=True, cwd=REPO, stdin=stdin, timeout=100
    )


@pytest.mark.timeout(120)
def test_standard_input_without_line_breaks_is_refused_at_the_cap():
    with open("/dev/zero", "rb") as zero:
        result = run_cli("translate", "--server", "localhost:1", stdin=zero)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: standard input: line 1 is longer than 1,048,576 bytes: not a file of lines"
    ]


@pytest.mark.timeout(120)
def test_evaluating_a_file_without_line_breaks_is_refused_at_the_cap(tmp_path):
    result = run_cli("evaluate", "--hyp", "/dev/zero", "--ref", "/dev/zero")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: hypothesis file /dev/zero: line 1 is longer than 1,048,576 bytes: not a file of lines"
    ]
