"""The model family: every cell, depth and attention placement builds, and the
one-step model used by search computes exactly what teacher forcing computes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from translate.config import ModelConfig
from translate.model import build_models, decoder_state_sizes

SOURCE = tf.constant([[5, 6, 7, 8, 3], [9, 3, 0, 0, 0]], tf.int32)
TARGET_IN = tf.constant([[2, 5, 6, 7], [2, 8, 0, 0]], tf.int32)
SMALL = dict(embedding_dim=8, encoder_units=6, decoder_units=12, attention_units=6)

VARIANTS = [
    *(
        {"attention": attention, "cell": cell}
        for attention in ("bahdanau", "additive", "luong_dot", "luong_general", "none")
        for cell in ("gru", "lstm", "simple_rnn")
    ),
    {"attention": "bahdanau", "attention_query_input": True, "cell": "gru"},
    {"attention": "bahdanau", "attention_query_input": True, "cell": "lstm"},
    {"attention": "luong_general", "input_feeding": True, "cell": "lstm"},
    {"attention": "additive", "input_feeding": True, "decoder_layers": 2},
    {"encoder_layers": 3, "decoder_layers": 2, "residual": True, "bidirectional": "all", "cell": "lstm"},
    {"attention": "additive", "encoder_layers": 2, "decoder_layers": 3, "residual": True},
    {"tie_embeddings": True, "output_dim": 8},
]


def _encode(models):
    """The encoder's outputs as plain tensors (the Keras masks they carry mean nothing to the step model)."""
    return [tf.identity(x) for x in models.encoder(SOURCE)]


def _ids(variant):
    return ",".join(f"{k}={v}" for k, v in variant.items())


@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
def test_step_by_step_decoding_equals_teacher_forcing(variant):
    models = build_models(ModelConfig(**SMALL, **variant), 30, 31)
    logits = models.training([SOURCE, TARGET_IN]).numpy()
    assert logits.shape == (2, 4, 31) and logits.dtype == np.float32
    memory, keys, mask, *states = _encode(models)
    assert [s.shape[-1] for s in states] == decoder_state_sizes(models.config)
    for t in range(TARGET_IN.shape[1]):
        step_logits, _, *states = models.step([TARGET_IN[:, t : t + 1], memory, keys, mask, *states])
        np.testing.assert_allclose(step_logits.numpy(), logits[:, t], rtol=1e-4, atol=1e-5)


def test_only_bahdanau_attention_reads_the_input_word_in_its_query():
    """``attention_query_input`` adds ``W_y [embedding_dim, attention_units]`` to Bahdanau's score, and nothing
    to attention after the RNN, whose query ``s_t`` has read ``y_{t-1}`` already."""

    def count(**variant):
        return build_models(ModelConfig(**SMALL, **variant), 30, 31).training.count_params()

    assert count(attention="bahdanau", attention_query_input=True) - count(attention="bahdanau") == 8 * 6
    assert count(attention="luong_dot", attention_query_input=True) == count(attention="luong_dot")


def test_every_model_shares_the_training_models_variables():
    models = build_models(ModelConfig(**SMALL, encoder_layers=2, decoder_layers=2, bidirectional="all"), 30, 30)
    training_vars = {id(v) for v in models.training.weights}
    assert {id(v) for v in models.step.weights} <= training_vars
    assert {id(v) for v in models.encoder.weights} <= training_vars


def test_tied_output_uses_the_target_embedding_matrix():
    models = build_models(ModelConfig(**SMALL, tie_embeddings=True, output_dim=8), 30, 31)
    untied = build_models(ModelConfig(**SMALL, output_dim=8), 30, 31)
    # The output layer adds only a bias: vocab x output_dim fewer parameters.
    assert untied.training.count_params() - models.training.count_params() == 31 * 8
    embedding = models.training.get_layer("tgt_embedding").embeddings
    before = models.training([SOURCE, TARGET_IN]).numpy()
    embedding.assign(embedding + 1.0)
    assert not np.allclose(models.training([SOURCE, TARGET_IN]).numpy(), before)


def test_without_attention_the_source_reaches_the_decoder_only_through_its_initial_state():
    models = build_models(ModelConfig(**SMALL, attention="none"), 30, 30)
    assert np.all(models.attention([SOURCE, TARGET_IN]).numpy() == 0.0)
    memory, keys, mask, *states = _encode(models)
    # Any memory gives the same step output: only the states carry the source.
    logits, *_ = models.step([TARGET_IN[:, :1], memory, keys, mask, *states])
    noise = tf.random.normal(tf.shape(memory))
    logits_noise, *_ = models.step([TARGET_IN[:, :1], noise, noise, mask, *states])
    np.testing.assert_allclose(logits.numpy(), logits_noise.numpy())


def test_more_layers_and_residuals_are_real_layers():
    one = build_models(ModelConfig(**SMALL), 30, 30).training.count_params()
    deep = build_models(ModelConfig(**SMALL, encoder_layers=3, decoder_layers=2, bidirectional="all"), 30, 30).training
    assert deep.count_params() > one
    assert [layer.name for layer in deep.layers if layer.name.startswith("encoder_residual")] == []
    residual = build_models(
        ModelConfig(**SMALL, encoder_layers=3, decoder_layers=2, residual=True, bidirectional="all"), 30, 30
    )
    # Layers 1 and 2 read 2 * 6 and write 2 * 6: both get a residual connection.
    names = [layer.name for layer in residual.encoder.layers if layer.name.startswith("encoder_residual")]
    assert names == ["encoder_residual_1", "encoder_residual_2"]


def test_dropout_between_decoder_layers_is_active_only_in_training():
    models = build_models(ModelConfig(**SMALL, decoder_layers=2, dropout=0.5), 30, 30)
    inference = [models.training([SOURCE, TARGET_IN], training=False).numpy() for _ in range(2)]
    np.testing.assert_allclose(inference[0], inference[1])
    training = [models.training([SOURCE, TARGET_IN], training=True).numpy() for _ in range(2)]
    assert not np.allclose(training[0], training[1])


def test_every_preset_builds():
    from translate.config import CONFIGS_DIR, load_config

    for path in CONFIGS_DIR.glob("*.yaml"):
        config = load_config(path.stem)
        models = build_models(config.model, config.data.src_vocab_size, config.data.tgt_vocab_size)
        assert models.training.count_params() > 0, path.stem
