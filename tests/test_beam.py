"""Beam search against exhaustive search on a toy model with fixed logits."""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from translate.config import DecodeConfig, ModelConfig
from translate.model import build_models
from translate.search import beam_search, best_extensions, greedy_search
from translate.text import EOS_ID

VOCAB = 8  # ids 0-2 (pad, unk, BOS) are never produced: 5 real choices, EOS included
REAL = [3, 4, 5, 6, 7]
MAX_LEN = 4
DECODE = DecodeConfig(max_length_ratio=0.01, max_length_offset=MAX_LEN, max_length_cap=MAX_LEN)
TABLE = np.random.default_rng(7).normal(scale=2.0, size=(MAX_LEN + 1, VOCAB, VOCAB)).astype("float32")
TABLE[:, :, :3] = -1e4


class ToyModels:
    """Logits depend only on (step, previous token): ``TABLE[t, prev]``. The state counts steps."""

    tgt_vocab_size = VOCAB

    def encoder(self, source_ids, training=False):
        batch, src_len = tf.shape(source_ids)[0], tf.shape(source_ids)[1]
        return [tf.zeros([batch, src_len, 1]), tf.zeros([batch, src_len, 1]), source_ids != 0, tf.zeros([batch, 1])]

    def step(self, inputs, training=False):
        # As the real step model: memory and mask hold one row per sentence,
        # prev and the state one per hypothesis (K per sentence in beam search).
        prev, memory, _, mask, t = inputs
        logits = tf.gather_nd(TABLE, tf.stack([tf.cast(t[:, 0], tf.int32), prev[:, 0]], axis=1))
        weights = tf.cast(mask, tf.float32) / tf.reduce_sum(tf.cast(mask, tf.float32), axis=1, keepdims=True)
        per_sentence = tf.shape(prev)[0] // tf.maximum(tf.shape(mask)[0], 1)
        return [logits, tf.repeat(weights, per_sentence, axis=0), t + 1.0]


def log_softmax(row):
    row = row - row.max()
    return row - math.log(np.exp(row).sum())


def exhaustive(alpha):
    """Every hypothesis with its length-penalized score, best first."""
    results = []
    for n in range(1, MAX_LEN + 1):
        for seq in itertools.product(REAL, repeat=n):
            if EOS_ID in seq[:-1] or (n < MAX_LEN and seq[-1] != EOS_ID):
                continue
            prev, logp = 2, 0.0
            for t, token in enumerate(seq):
                logp += log_softmax(TABLE[t, prev])[token]
                prev = token
            output = list(seq[:-1]) if seq[-1] == EOS_ID else list(seq)
            results.append((logp / ((5 + n) / 6) ** alpha, output))
    return sorted(results, key=lambda r: -r[0])


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_a_beam_as_wide_as_all_hypotheses_finds_the_exact_best(alpha):
    every = exhaustive(alpha)
    result = beam_search(ToyModels(), tf.constant([[5, 3]]), DECODE, beam_size=len(every), alpha=alpha)
    scores = result.scores.numpy()[0]
    np.testing.assert_allclose(scores[:20], [s for s, _ in every[:20]], rtol=1e-4, atol=1e-4)
    best_length = int(result.lengths[0, 0])
    assert result.ids.numpy()[0, 0, :best_length].tolist() == every[0][1]


def test_nbest_lists_are_sorted_and_distinct():
    result = beam_search(ToyModels(), tf.constant([[5, 3], [6, 3]]), DECODE, beam_size=5, alpha=0.6)
    scores = result.scores.numpy()
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    for row, lengths in zip(result.ids.numpy(), result.lengths.numpy()):
        hypotheses = {tuple(ids[:n]) for ids, n in zip(row, lengths)}
        assert len(hypotheses) == 5


def test_beam_of_one_is_greedy():
    keras.utils.set_random_seed(0)  # fixed weights: no near-tie can flip between runs
    models = build_models(ModelConfig(embedding_dim=8, encoder_units=4, decoder_units=8, attention_units=8), 20, 20)
    source = tf.constant([[5, 6, 7, 3], [9, 3, 0, 0]])
    greedy = greedy_search(models, source, DecodeConfig(max_length_cap=10))
    beam = beam_search(models, source, DecodeConfig(max_length_cap=10), beam_size=1)
    assert beam.ids.numpy()[:, 0].tolist() == greedy.ids.numpy().tolist()


def test_a_batch_gives_what_each_sentence_gives_alone():
    keras.utils.set_random_seed(0)  # fixed weights: no near-tie can flip between runs
    models = build_models(ModelConfig(embedding_dim=8, encoder_units=4, decoder_units=8, attention_units=8), 20, 20)
    source = tf.constant([[5, 6, 7, 8, 9, 10, 3], [5, 3, 0, 0, 0, 0, 0], [11, 12, 3, 0, 0, 0, 0]])
    decode = DecodeConfig(max_length_cap=12)
    batched = beam_search(models, source, decode, beam_size=4, alpha=0.6, with_attention=True)
    for i, length in enumerate([7, 2, 3]):
        alone = beam_search(models, source[i : i + 1, :length], decode, beam_size=4, alpha=0.6, with_attention=True)
        # The batch may run more steps than one sentence alone: those rows are zero.
        steps = alone.attention.shape[2]
        np.testing.assert_allclose(
            batched.attention.numpy()[i, :, :steps, :length], alone.attention.numpy()[0], rtol=1e-4, atol=1e-5
        )
        assert np.all(batched.attention.numpy()[i, :, steps:] == 0.0)
        assert np.all(batched.attention.numpy()[i, :, :, length:] == 0.0)
        np.testing.assert_allclose(batched.scores.numpy()[i], alone.scores.numpy()[0], rtol=1e-4, atol=1e-4)
        for j in range(4):
            n = int(alone.lengths[0, j])
            assert int(batched.lengths[i, j]) == n
            assert batched.ids.numpy()[i, j, :n].tolist() == alone.ids.numpy()[0, j, :n].tolist()


def test_bad_beam_settings_are_refused():
    with pytest.raises(ValueError, match="beam size must be at least 1"):
        beam_search(ToyModels(), tf.constant([[3]]), DECODE, beam_size=0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        beam_search(ToyModels(), tf.constant([[3]]), DECODE, beam_size=2, alpha=-0.5)


def test_attention_is_kept_only_when_asked():
    source = tf.constant([[5, 6, 3]])
    without = beam_search(ToyModels(), source, DECODE, beam_size=3)
    with_it = beam_search(ToyModels(), source, DECODE, beam_size=3, with_attention=True)
    assert without.attention.shape[2] == 0
    assert with_it.attention.shape[:3] == with_it.ids.shape
    np.testing.assert_array_equal(without.ids.numpy(), with_it.ids.numpy())


@pytest.mark.parametrize("vocab, k, count", [(2000, 5, 10), (997, 3, 6), (7, 2, 4), (5, 5, 10), (10, 4, 40)])
def test_best_extensions_equal_a_top_k_over_every_extension(vocab, k, count):
    rng = np.random.default_rng(vocab)
    logits = tf.constant(rng.normal(size=(3 * k, vocab)) * 3, tf.float32)
    beam_logp = rng.normal(size=(3, k)).astype("float32")
    beam_logp[:, 1:] = -np.inf if k > 1 else beam_logp[:, 1:]  # as at the first step: one live beam
    every = tf.reshape(beam_logp[:, :, None] + tf.reshape(tf.nn.log_softmax(logits), [3, k, vocab]), [3, -1])
    expected_logp, expected_index = tf.math.top_k(every, k=count)
    logp, beam, piece = best_extensions(logits, tf.constant(beam_logp), count)
    np.testing.assert_allclose(logp.numpy(), expected_logp.numpy(), atol=1e-4)
    finite = np.isfinite(expected_logp.numpy())
    np.testing.assert_array_equal((beam * vocab + piece).numpy()[finite], expected_index.numpy()[finite])
