"""Decoding in the graph: a ``tf.while_loop`` over core ops only, batched.

The loop is written with ``tf.while_loop`` (not a Python ``while``) because
``keras.export.ExportArchive`` traces endpoints with autograph off.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from translate.config import DecodeConfig
from translate.model import Seq2Seq
from translate.text import BOS_ID, EOS_ID, PAD_ID


@dataclass
class SearchResult:
    """Output of a search.

    ids: ``int32 [batch, time]``, EOS and what follows it set to pad.
    lengths: ``int32 [batch]``, pieces before EOS.
    scores: ``float32 [batch]``, log P(output | source), EOS included.
    attention: ``float32 [batch, time, src_len]``.
    """

    ids: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor
    attention: tf.Tensor


def max_output_lengths(source_lengths: tf.Tensor, decode: DecodeConfig) -> tf.Tensor:
    """``min(cap, ratio * source_pieces + offset)`` per sentence, ``int32 [batch]``."""
    grown = tf.cast(tf.math.ceil(tf.cast(source_lengths, tf.float32) * decode.max_length_ratio), tf.int32)
    return tf.minimum(grown + decode.max_length_offset, decode.max_length_cap)


def greedy_search(models: Seq2Seq, source_ids: tf.Tensor, decode: DecodeConfig) -> SearchResult:
    """Greedy decoding: the most likely next piece at every step.

    Each sentence stops at its EOS or at its own maximum length
    (:func:`max_output_lengths`); the loop ends when all have stopped.

    Args:
        source_ids: ``int32 [batch, src_len]``, 0-padded, each row ending in EOS.
    """
    batch = tf.shape(source_ids)[0]
    src_len = tf.shape(source_ids)[1]
    source_lengths = tf.reduce_sum(tf.cast(source_ids != PAD_ID, tf.int32), axis=1)
    limits = max_output_lengths(source_lengths, decode)
    max_steps = tf.reduce_max(tf.concat([limits, [0]], axis=0))

    memory, keys, source_mask, *states = models.encoder(source_ids, training=False)
    # Fresh tensors drop the Keras masks that ``memory`` and ``keys`` carry;
    # the step model takes the mask explicitly as ``source_mask``.
    memory, keys = tf.identity(memory), tf.identity(keys)

    def body(t, prev, states, finished, lengths, scores, ids_ta, attention_ta):
        logits, weights, *new_states = models.step([prev[:, None], memory, keys, source_mask, *states], training=False)
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        token = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        token_log_prob = tf.gather(log_probs, token, axis=1, batch_dims=1)
        # Finished rows keep their length and score and emit padding.
        token = tf.where(finished, PAD_ID, token)
        scores = scores + tf.where(finished, 0.0, token_log_prob)
        is_eos = tf.equal(token, EOS_ID)
        lengths = lengths + tf.cast(~finished & ~is_eos, tf.int32)
        finished = finished | is_eos | (t + 1 >= limits)
        ids_ta = ids_ta.write(t, tf.where(is_eos, PAD_ID, token))
        attention_ta = attention_ta.write(t, weights)
        return t + 1, token, new_states, finished, lengths, scores, ids_ta, attention_ta

    def cond(t, prev, states, finished, *_):
        # At least one step, so that the stacked arrays have a known shape
        # even for an empty batch.
        return tf.equal(t, 0) | ((t < max_steps) & ~tf.reduce_all(finished))

    loop_vars = (
        tf.constant(0),
        tf.fill([batch], BOS_ID),
        states,
        tf.zeros([batch], tf.bool),
        tf.zeros([batch], tf.int32),
        tf.zeros([batch], tf.float32),
        tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
        tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[None, None]),
    )
    _, _, _, _, lengths, scores, ids_ta, attention_ta = tf.while_loop(
        cond, body, loop_vars, maximum_iterations=decode.max_length_cap
    )
    ids = tf.reshape(tf.transpose(ids_ta.stack()), [batch, -1])
    attention = tf.reshape(tf.transpose(attention_ta.stack(), [1, 0, 2]), [batch, -1, src_len])
    return SearchResult(ids=ids, lengths=lengths, scores=scores, attention=attention)
