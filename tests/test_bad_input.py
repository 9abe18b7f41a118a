"""Nothing a user can type crashes the translator; every output is bounded by the max length rule."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from conftest import HOSTILE_SENTENCES, INVALID_UTF8
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


def test_hostile_inputs_through_the_exported_signature(tiny_export):
    import translate

    translator = translate.load(tiny_export)
    translations, scores = translator.translate_with_scores(HOSTILE_SENTENCES)
    assert len(translations) == len(HOSTILE_SENTENCES)
    assert all(np.isfinite(scores))
    serve = translator._serve
    out = serve(sentences=tf.constant([INVALID_UTF8, b""]))
    assert out["translations"].shape == (2,) and out["scores"].shape == (2,)
    empty = serve(sentences=tf.constant([], dtype=tf.string))
    assert empty["translations"].shape == (0,) and empty["scores"].shape == (0,)


def test_translator_refuses_what_is_not_text(tiny_export):
    import translate

    translator = translate.load(tiny_export)
    with pytest.raises(ValueError, match="list of strings"):
        translator([1, 2])
    with pytest.raises(ValueError, match="does not exist"):
        translate.load(tiny_export.parent / "nope")
