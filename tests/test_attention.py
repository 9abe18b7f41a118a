"""Bahdanau attention: no weight on padding, a distribution over real source positions."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from translate.attention import BahdanauAttention
from translate.config import ModelConfig
from translate.model import build_models


def test_attention_layer_masks_padding_and_normalizes():
    layer = BahdanauAttention(units=8, query_dim=6, memory_dim=4)
    layer.build()
    rng = np.random.default_rng(0)
    memory = tf.constant(rng.normal(size=(3, 5, 4)), tf.float32)
    query = tf.constant(rng.normal(size=(3, 6)), tf.float32)
    mask = tf.constant([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]]) > 0
    context, weights = layer(query, memory, layer.precompute_keys(memory), mask)
    weights = weights.numpy()
    assert context.shape == (3, 4)
    assert np.all(weights[~mask.numpy()] == 0.0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-6)
    # With one real position, all weight is on it and the context is that memory row.
    np.testing.assert_allclose(context[2].numpy(), memory[2, 0].numpy(), rtol=1e-6)


def test_decoder_attention_over_a_padded_batch():
    for cell in ("gru", "lstm", "simple_rnn"):
        models = build_models(ModelConfig(cell=cell, embedding_dim=8, encoder_units=8, decoder_units=12,
                                          attention_units=6), 30, 30)
        source = tf.constant([[5, 6, 7, 8, 3], [9, 3, 0, 0, 0]], tf.int32)
        target_in = tf.constant([[2, 5, 6, 7], [2, 8, 0, 0]], tf.int32)
        weights = models.attention([source, target_in]).numpy()
        assert weights.shape == (2, 4, 5)
        assert np.all(weights[1, :, 2:] == 0.0), cell
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-6)


def test_step_model_shares_the_training_layers_and_matches_it():
    models = build_models(ModelConfig(embedding_dim=8, encoder_units=8, decoder_units=12, attention_units=6), 30, 30)
    training_vars = {id(v) for v in models.training.weights}
    assert {id(v) for v in models.step.weights} <= training_vars
    assert {id(v) for v in models.encoder.weights} <= training_vars
    source = tf.constant([[5, 6, 7, 3]], tf.int32)
    target_in = tf.constant([[2, 9, 4]], tf.int32)
    logits = models.training([source, target_in]).numpy()
    memory, keys, mask, *states = models.encoder(source)
    for t in range(3):
        step_logits, _, *states = models.step([target_in[:, t:t + 1], memory, keys, mask, *states])
        np.testing.assert_allclose(step_logits.numpy(), logits[:, t], rtol=1e-4, atol=1e-5)
