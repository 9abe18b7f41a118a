"""Greedy search stops at EOS or at the max length rule, per sentence, in one batch."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from translate.config import DecodeConfig, ModelConfig
from translate.model import build_models
from translate.search import beam_search, greedy_search, max_output_lengths
from translate.text import EOS_ID

SOURCE = tf.constant([[5, 6, 7, 8, 9, 10, 3], [5, 3, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0, 0]], tf.int32)


def models_that_always_say(token: int):
    """A model whose output layer prefers ``token`` whatever the input."""
    keras.utils.set_random_seed(0)  # fixed weights: no near-tie can flip between runs
    models = build_models(ModelConfig(embedding_dim=8, encoder_units=4, decoder_units=8, attention_units=8), 20, 20)
    layer = models.training.get_layer("logits")
    kernel, bias = layer.get_weights()
    bias[token] = 100.0
    layer.set_weights([np.zeros_like(kernel), bias])
    return models


def test_max_length_grows_with_the_source_and_has_a_cap():
    decode = DecodeConfig(max_length_ratio=2.0, max_length_offset=3, max_length_cap=10)
    lengths = max_output_lengths(tf.constant([0, 1, 3, 50]), decode).numpy()
    assert lengths.tolist() == [3, 5, 9, 10]


def test_a_model_that_never_ends_stops_at_each_sentences_own_limit():
    decode = DecodeConfig(max_length_ratio=1.5, max_length_offset=2, max_length_cap=8)
    result = greedy_search(models_that_always_say(7), SOURCE, decode)
    expected = max_output_lengths(tf.constant([7, 2, 1]), decode).numpy()
    assert result.lengths.numpy().tolist() == expected.tolist() == [8, 5, 4]
    ids = result.ids.numpy()
    for row, length in zip(ids, expected):
        assert np.all(row[:length] == 7) and np.all(row[length:] == 0)
    assert result.attention.shape[:2] == ids.shape
    assert result.attention.shape[2] == SOURCE.shape[1]


def test_a_model_that_ends_at_once_gives_empty_outputs_with_a_score():
    result = greedy_search(models_that_always_say(EOS_ID), SOURCE, DecodeConfig())
    assert result.lengths.numpy().tolist() == [0, 0, 0]
    # log P(EOS) is about 0 when its logit is 100 above the rest.
    np.testing.assert_allclose(result.scores.numpy(), 0.0, atol=1e-3)


def test_batched_search_equals_one_sentence_at_a_time():
    keras.utils.set_random_seed(0)  # fixed weights: no near-tie can flip between runs
    models = build_models(ModelConfig(embedding_dim=8, encoder_units=4, decoder_units=8, attention_units=8), 20, 20)
    decode = DecodeConfig(max_length_cap=12)
    batched = greedy_search(models, SOURCE, decode)
    for i in range(SOURCE.shape[0]):
        length = int(tf.reduce_sum(tf.cast(SOURCE[i] != 0, tf.int32)))
        single = greedy_search(models, SOURCE[i : i + 1, :length], decode)
        n = int(single.lengths[0])
        assert int(batched.lengths[i]) == n
        assert batched.ids.numpy()[i, :n].tolist() == single.ids.numpy()[0, :n].tolist()
        np.testing.assert_allclose(batched.scores.numpy()[i], single.scores.numpy()[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("shards", [2, 3, 5])
def test_a_batch_in_shards_gives_what_one_loop_gives(beam_size, shards):
    # 3 sentences in 2, 3 or 5 parts: uneven parts, one sentence a part, and empty parts.
    keras.utils.set_random_seed(0)  # fixed weights: no near-tie can flip between runs
    models = build_models(ModelConfig(embedding_dim=8, encoder_units=4, decoder_units=8, attention_units=8), 20, 20)
    one_loop = beam_search(models, SOURCE, DecodeConfig(max_length_cap=12, shards=1), beam_size, 0.6, True)
    sharded = beam_search(models, SOURCE, DecodeConfig(max_length_cap=12, shards=shards), beam_size, 0.6, True)
    for field in ("ids", "lengths", "scores", "attention"):
        ours, theirs = getattr(sharded, field), getattr(one_loop, field)
        assert ours.shape == theirs.shape, field
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5, err_msg=field)


def test_shards_keep_an_empty_batch_empty():
    empty = tf.zeros([0, 1], tf.int32)
    result = beam_search(models_that_always_say(7), empty, DecodeConfig(shards=2), 1)
    assert result.ids.shape[0] == 0 and result.lengths.shape == (0, 1)
