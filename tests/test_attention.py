"""Every attention score: no weight on padding, a distribution over real source positions."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from translate.attention import AdditiveAttention, make_attention
from translate.config import ModelConfig
from translate.model import build_models


@pytest.mark.parametrize("kind", ["bahdanau", "additive", "luong_dot", "luong_general"])
def test_attention_layer_masks_padding_and_normalizes(kind):
    query_dim = 4 if kind == "luong_dot" else 6
    layer = make_attention(kind, units=8, query_dim=query_dim, memory_dim=4)
    layer.build()
    rng = np.random.default_rng(0)
    memory = tf.constant(rng.normal(size=(3, 5, 4)), tf.float32)
    query = tf.constant(rng.normal(size=(3, query_dim)), tf.float32)
    mask = tf.constant([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]]) > 0
    context, weights = layer(query, memory, layer.precompute_keys(memory), mask)
    weights = weights.numpy()
    assert context.shape == (3, 4)
    assert np.all(weights[~mask.numpy()] == 0.0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-6)
    # With one real position, all weight is on it and the context is that memory row.
    np.testing.assert_allclose(context[2].numpy(), memory[2, 0].numpy(), rtol=1e-6)


def test_all_steps_at_once_equal_one_step_at_a_time():
    layer = AdditiveAttention(units=8, query_dim=6, memory_dim=4)
    layer.build()
    rng = np.random.default_rng(1)
    memory = tf.constant(rng.normal(size=(2, 5, 4)), tf.float32)
    queries = tf.constant(rng.normal(size=(2, 3, 6)), tf.float32)
    mask = tf.constant([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]) > 0
    keys = layer.precompute_keys(memory)
    contexts, weights = layer(queries, memory, keys, mask)
    for t in range(3):
        context, weight = layer(queries[:, t], memory, keys, mask)
        np.testing.assert_allclose(contexts[:, t].numpy(), context.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(weights[:, t].numpy(), weight.numpy(), rtol=1e-5, atol=1e-6)


def test_dot_score_is_the_inner_product_and_needs_equal_sizes():
    layer = make_attention("luong_dot", units=0, query_dim=2, memory_dim=2)
    memory = tf.constant([[[1.0, 0.0], [0.0, 1.0]]])
    query = tf.constant([[3.0, 1.0]])
    _, weights = layer(query, memory, layer.precompute_keys(memory), tf.constant([[True, True]]))
    # softmax([3, 1])
    np.testing.assert_allclose(
        weights.numpy(), [[np.exp(3) / (np.exp(3) + np.exp(1)), np.exp(1) / (np.exp(3) + np.exp(1))]], rtol=1e-6
    )
    with pytest.raises(ValueError, match="query size .3. to equal the memory size .2."):
        make_attention("luong_dot", units=0, query_dim=3, memory_dim=2)


@pytest.mark.parametrize("attention", ["bahdanau", "additive", "luong_dot", "luong_general"])
def test_decoder_attention_over_a_padded_batch(attention):
    for cell in ("gru", "lstm", "simple_rnn"):
        models = build_models(
            ModelConfig(
                cell=cell, embedding_dim=8, encoder_units=8, decoder_units=16, attention=attention, attention_units=6
            ),
            30,
            30,
        )
        source = tf.constant([[5, 6, 7, 8, 3], [9, 3, 0, 0, 0]], tf.int32)
        target_in = tf.constant([[2, 5, 6, 7], [2, 8, 0, 0]], tf.int32)
        weights = models.attention([source, target_in]).numpy()
        assert weights.shape == (2, 4, 5)
        assert np.all(weights[1, :, 2:] == 0.0), (attention, cell)
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-6)
