"""Attention over the encoder's memory.

Bahdanau, Cho and Bengio (2015), "Neural Machine Translation by Jointly
Learning to Align and Translate", eq. (6) and appendix A.1.2:

    e_tj     = v^T tanh(W s_{t-1} + U h_j)
    alpha_tj = exp(e_tj) / sum_k exp(e_tk)      (over real source positions)
    c_t      = sum_j alpha_tj h_j

``U h_j`` does not depend on the decoder step, so it is computed once per
sentence (:meth:`BahdanauAttention.precompute_keys`) and passed to every step
as an argument.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class BahdanauAttention(keras.layers.Layer):
    """Additive attention.

    Args:
        units: size of the hidden layer of the score (``W``, ``U`` outputs).
        query_dim: size of the decoder state ``s_{t-1}``.
        memory_dim: size of an encoder output ``h_j``.
    """

    def __init__(self, units: int, query_dim: int, memory_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.query_dim = query_dim
        self.memory_dim = memory_dim
        self.query_layer = keras.layers.Dense(units, use_bias=False, name="W")
        self.key_layer = keras.layers.Dense(units, use_bias=True, name="U")
        self.score_layer = keras.layers.Dense(1, use_bias=False, name="v")

    def build(self, *args, **kwargs):
        # Built from the known sizes, not from the first call: the first call
        # happens inside a loop, where no variable may be created.
        for layer, shape in (
            (self.query_layer, (None, self.query_dim)),
            (self.key_layer, (None, None, self.memory_dim)),
            (self.score_layer, (None, None, self.units)),
        ):
            if not layer.built:
                layer.build(shape)
        self.built = True

    def precompute_keys(self, memory):
        """``U h_j`` for all source positions.

        Args:
            memory: ``[batch, src_len, memory_dim]`` encoder outputs.
        Returns:
            ``[batch, src_len, units]``.
        """
        return self.key_layer(memory)

    def call(self, query, memory, keys, source_mask):
        """One decoder step's attention.

        Args:
            query: ``[batch, query_dim]``, the previous decoder state ``s_{t-1}``.
            memory: ``[batch, src_len, memory_dim]``, the encoder outputs ``h_j``.
            keys: ``[batch, src_len, units]`` from :meth:`precompute_keys`.
            source_mask: ``bool [batch, src_len]``, True at real source positions.
        Returns:
            context ``[batch, memory_dim]`` and weights ``[batch, src_len]``;
            weights are exactly 0 at padded positions and sum to 1 per row.
        """
        projected = self.query_layer(query)[:, tf.newaxis, :]
        scores = tf.squeeze(self.score_layer(tf.tanh(projected + keys)), axis=-1)
        # The most negative finite value underflows to exactly 0 after softmax,
        # in float16/bfloat16 as well as in float32.
        scores = tf.where(source_mask, scores, scores.dtype.min)
        weights = tf.nn.softmax(scores, axis=-1)
        context = tf.einsum("bs,bsd->bd", weights, memory)
        return context, weights
