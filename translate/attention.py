"""Attention over the encoder's memory: additive (Bahdanau) and multiplicative (Luong) scores.

Every variant computes, for a decoder query ``q`` and the encoder outputs
``h_j`` of the real (unpadded) source positions:

    alpha_j = exp(e_j) / sum_k exp(e_k)        c = sum_j alpha_j h_j

and differs only in the score ``e_j``:

* :class:`AdditiveAttention`: ``e_j = v^T tanh(W q + U h_j)``
  (Bahdanau, Cho and Bengio 2015, "Neural Machine Translation by Jointly
  Learning to Align and Translate", eq. 6 and appendix A.1.2);
* :class:`DotAttention`: ``e_j = q^T h_j`` (Luong, Pham and Manning 2015,
  "Effective Approaches to Attention-based Neural Machine Translation", eq. 8, *dot*);
* :class:`GeneralAttention`: ``e_j = q^T W_a h_j`` (Luong et al. 2015, eq. 8, *general*).

The part of each score that depends only on the source (``U h_j``,
``W_a h_j``, or ``h_j`` itself) is computed once per sentence by
``precompute_keys`` and passed to every decoder step as an argument.

Where the query comes from is the decoder's business (:mod:`translate.model`):
Bahdanau's ``s_{t-1}`` inside the recurrence, or Luong's ``s_t`` after it.
A query is ``[batch, query_dim]`` for one step or ``[batch, tgt_len, query_dim]``
for all steps at once.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# model.attention values and the score each one uses.
SCORES = {"bahdanau": "additive", "additive": "additive", "luong_dot": "dot", "luong_general": "general"}


def masked_softmax(scores, source_mask):
    """Softmax over source positions with padding excluded.

    Args:
        scores: ``[batch, src_len]`` or ``[batch, tgt_len, src_len]``.
        source_mask: ``bool [batch, src_len]``, True at real source positions.
    Returns:
        weights of the shape of ``scores``: exactly 0 at padding, each row summing to 1.
    """
    if scores.shape.rank == 3:
        source_mask = source_mask[:, tf.newaxis, :]
    # The most negative finite value underflows to exactly 0 after softmax,
    # in float16/bfloat16 as well as in float32.
    scores = tf.where(source_mask, scores, scores.dtype.min)
    return tf.nn.softmax(scores, axis=-1)


def _context(weights, memory):
    """``sum_j alpha_j h_j``: ``[batch, (tgt_len,) src_len]`` x ``[batch, src_len, memory_dim]``."""
    if weights.shape.rank == 3:
        return tf.einsum("bts,bsd->btd", weights, memory)
    return tf.einsum("bs,bsd->bd", weights, memory)


class _Attention(keras.layers.Layer):
    """What every score shares: keys once per sentence, masked softmax, context."""

    #: size of a precomputed key, the last dimension of ``precompute_keys``' output.
    key_dim: int

    def precompute_keys(self, memory):
        """The source-side part of the score.

        Args:
            memory: ``[batch, src_len, memory_dim]`` encoder outputs.
        Returns:
            ``[batch, src_len, key_dim]``.
        """
        raise NotImplementedError

    def score(self, query, keys):
        """``[batch, (tgt_len,) query_dim]`` x ``[batch, src_len, key_dim]`` -> ``[batch, (tgt_len,) src_len]``."""
        raise NotImplementedError

    def call(self, query, memory, keys, source_mask):
        """Attention for one step (``query [rows, query_dim]``) or all steps (``[batch, tgt_len, query_dim]``).

        One step may hold several hypotheses per sentence (beam search):
        ``rows = batch * K``, rows ``b * K .. b * K + K - 1`` belonging to
        sentence ``b``, which share its one copy of ``memory`` and ``keys``.
        They are scored as K queries of that sentence, one matmul per
        sentence, instead of K copies of its keys each scored by one query.

        Args:
            memory: ``[batch, src_len, memory_dim]``, the encoder outputs ``h_j``.
            keys: ``[batch, src_len, key_dim]`` from :meth:`precompute_keys`.
            source_mask: ``bool [batch, src_len]``, True at real source positions.
        Returns:
            context ``[rows | batch, (tgt_len,) memory_dim]`` and weights ``[rows | batch, (tgt_len,) src_len]``;
            weights are exactly 0 at padded positions and sum to 1 per row.
        """
        if query.shape.rank == 3:
            weights = masked_softmax(self.score(query, keys), source_mask)
            return _context(weights, memory), weights
        sentences = tf.shape(memory)[0]
        per_sentence = tf.shape(query)[0] // tf.maximum(sentences, 1)
        grouped = tf.reshape(query, [sentences, per_sentence, query.shape[-1]])
        weights = masked_softmax(self.score(grouped, keys), source_mask)
        context = _context(weights, memory)
        return (tf.reshape(context, [-1, memory.shape[-1]]), tf.reshape(weights, [-1, tf.shape(memory)[1]]))


class AdditiveAttention(_Attention):
    """Bahdanau's additive score ``v^T tanh(W q + U h_j + b)``.

    With ``normalize``, ``v`` is weight-normalized (Salimans and Kingma 2016),
    as in TensorFlow's ``BahdanauAttention(normalize=True)``: the score uses
    ``g v / ||v||`` with a learned scalar ``g`` that starts at ``1 / sqrt(units)``,
    so the first scores are small and the attention starts out nearly uniform.

    Args:
        units: size of the hidden layer of the score (``W``, ``U`` outputs).
        query_dim: size of the decoder state used as the query.
        memory_dim: size of an encoder output ``h_j``.
        normalize: use the weight-normalized ``v``.
    """

    def __init__(self, units: int, query_dim: int, memory_dim: int, normalize: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.units = self.key_dim = units
        self.query_dim = query_dim
        self.memory_dim = memory_dim
        self.normalize = normalize
        self.query_layer = keras.layers.Dense(units, use_bias=False, name="W")
        self.key_layer = keras.layers.Dense(units, use_bias=True, name="U")
        self.score_layer = keras.layers.Dense(1, use_bias=False, name="v")

    def build(self, *args, **kwargs):
        # Built from the known sizes, not from the first call: the first call
        # may happen inside a loop, where no variable may be created.
        for layer, shape in (
            (self.query_layer, (None, self.query_dim)),
            (self.key_layer, (None, None, self.memory_dim)),
            (self.score_layer, (None, None, self.units)),
        ):
            if not layer.built:
                layer.build(shape)
        if self.normalize and not hasattr(self, "scale"):
            self.scale = self.add_weight(shape=(), name="g", initializer=keras.initializers.Constant(self.units**-0.5))
        self.built = True

    def precompute_keys(self, memory):
        return self.key_layer(memory)

    def score_vector(self, dtype=None):
        """``v`` as the score uses it, ``[units]``: the kernel of ``v``, or ``g v / ||v||`` with ``normalize``."""
        v = self.score_layer.kernel[:, 0]
        if self.normalize:
            v = self.scale * v * tf.math.rsqrt(tf.reduce_sum(tf.square(v)))
        return tf.cast(v, dtype or self.compute_dtype)

    def score(self, query, keys):
        projected = self.query_layer(query)
        if query.shape.rank == 3:
            # [b, t, 1, u] + [b, 1, s, u]: every target step against every source position.
            hidden = tf.tanh(projected[:, :, tf.newaxis, :] + keys[:, tf.newaxis, :, :])
        else:
            hidden = tf.tanh(projected[:, tf.newaxis, :] + keys)
        # A 2-D matmul, as Dense(1) did: a broadcasting batched matvec over [b, K, s, u]
        # corrupted the heap under oneDNN on this CPU (an abort in training's dev decoding).
        v = self.score_vector(hidden.dtype)
        scores = tf.matmul(tf.reshape(hidden, [-1, self.units]), v[:, tf.newaxis])
        return tf.reshape(scores, tf.shape(hidden)[:-1])


class DotAttention(_Attention):
    """Luong's *dot* score ``q^T h_j``; the query and ``h_j`` must have one size. No weights."""

    def __init__(self, query_dim: int, memory_dim: int, **kwargs):
        super().__init__(**kwargs)
        if query_dim != memory_dim:
            raise ValueError(
                f"dot attention needs the query size ({query_dim}) to equal the memory size "
                f"({memory_dim}); use general attention for different sizes"
            )
        self.key_dim = memory_dim
        # A layer, not tf.identity: the encoder model applies this to symbolic Keras tensors.
        self.key_layer = keras.layers.Identity(name="h")

    def build(self, *args, **kwargs):
        self.built = True

    def precompute_keys(self, memory):
        return self.key_layer(memory)

    def score(self, query, keys):
        return _dot_scores(query, keys)


class GeneralAttention(_Attention):
    """Luong's *general* score ``q^T W_a h_j``; ``W_a h_j`` is the precomputed key.

    Args:
        query_dim: size of the decoder state used as the query.
        memory_dim: size of an encoder output ``h_j``.
    """

    def __init__(self, query_dim: int, memory_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.key_dim = query_dim
        self.memory_dim = memory_dim
        self.key_layer = keras.layers.Dense(query_dim, use_bias=False, name="W_a")

    def build(self, *args, **kwargs):
        if not self.key_layer.built:
            self.key_layer.build((None, None, self.memory_dim))
        self.built = True

    def precompute_keys(self, memory):
        return self.key_layer(memory)

    def score(self, query, keys):
        return _dot_scores(query, keys)


def _dot_scores(query, keys):
    """``q . k_j`` for a query ``[batch, (tgt_len,) d]`` and keys ``[batch, src_len, d]``."""
    if query.shape.rank == 3:
        return tf.einsum("btd,bsd->bts", query, keys)
    return tf.einsum("bd,bsd->bs", query, keys)


def make_attention(
    kind: str, units: int, query_dim: int, memory_dim: int, name: str = "attention", normalize: bool = False
):
    """The attention layer for ``model.attention`` (None for ``none``); ``normalize``: additive scores only."""
    if kind == "none":
        return None
    if kind not in SCORES:
        raise ValueError(f"unknown attention {kind!r} (known: {', '.join(SCORES)}, none)")
    score = SCORES[kind]
    if score == "additive":
        return AdditiveAttention(units, query_dim, memory_dim, normalize=normalize, name=name)
    if score == "dot":
        return DotAttention(query_dim, memory_dim, name=name)
    return GeneralAttention(query_dim, memory_dim, name=name)
