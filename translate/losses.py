"""The per-token training loss and a masked accuracy; padding (id 0) never counts.

Keras 3's ``SparseCategoricalCrossentropy`` has ``ignore_class`` but no
``label_smoothing``, so the smoothed loss is written here. With smoothing 0 it
equals ``SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)``.
"""

from __future__ import annotations

import keras
from keras import ops

PAD_ID = 0


class SmoothedCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits against label-smoothed targets, over real tokens only.

    The target distribution is ``q_k = (1 - eps) * [k = y] + eps / V`` (uniform
    label smoothing, Szegedy et al. 2016, "Rethinking the Inception
    Architecture for Computer Vision", sec. 7), so the loss of one token is

        (1 - eps) * (-log p_y) + eps * mean_k(-log p_k).

    Positions whose label is the pad id 0 add nothing, and the result is the
    mean over the real tokens of the batch, as Keras computes it for a masked
    loss: each token's loss is weighted by ``1 / (number of real tokens)`` and
    the weighted values are summed (reduction ``"sum"``). Nothing is averaged
    per sentence first. Under a distribution strategy (``train.strategy``)
    each replica's mean is divided by the number of replicas, as Keras's own
    losses do (Keras applies no such division for reduction ``"sum"``, so it
    happens here): the summed gradients are those of the mean of the replicas'
    means, which is the one-device mean when the replicas hold equally many
    real tokens, and close to it otherwise (a global batch is split evenly by
    sentences, and its sentences have similar lengths).

    Shapes: ``y_true`` int ``[batch, tgt_len]``, ``y_pred`` logits
    ``[batch, tgt_len, vocab]``; ``call`` returns ``[batch, tgt_len]``.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_cross_entropy", **kwargs):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        reduction = kwargs.pop("reduction", "sum")
        if reduction != "sum":
            # The per-token weights below already hold the 1 / (real tokens) of the mean.
            raise ValueError(
                f"SmoothedCrossEntropy sums pre-weighted token losses; reduction must be 'sum', got {reduction!r}"
            )
        super().__init__(name=name, reduction="sum", **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        logits = ops.cast(y_pred, self.dtype)
        nll, log_normalizer = sparse_cross_entropy(y_true, logits)
        if self.label_smoothing > 0:
            # mean_k(-log p_k) = logsumexp(z) - mean_k(z_k)
            uniform = log_normalizer - ops.mean(logits, axis=-1)
            token_loss = (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform
        else:
            token_loss = nll
        real = ops.cast(ops.not_equal(y_true, PAD_ID), self.dtype)
        # divide_no_nan: a batch of padding only (never produced by the pipeline) gives 0, not NaN.
        return ops.divide_no_nan(token_loss * real, ops.sum(real)) / _replicas()

    def get_config(self):
        config = super().get_config()
        config.update(label_smoothing=self.label_smoothing)
        return config


def sparse_cross_entropy(labels, logits):
    """``-log softmax(z)_y`` and ``logsumexp(z)`` of each row, with a written-out gradient.

    Args:
        labels: int ``[...]``, each in ``[0, vocab)``.
        logits: float ``[..., vocab]``.
    Returns:
        ``(nll, log_normalizer)``, both ``[...]``: ``logsumexp(z) - z_y`` and ``logsumexp(z)``.

    The gradient is ``softmax(z) * (d_nll + d_log_normalizer) - one_hot(y) * d_nll``,
    from the exponentials the forward pass keeps. TensorFlow's fused
    ``SparseSoftmaxCrossEntropyWithLogits`` gives the same values, but on CPU
    its forward and backward took several times as long as this, and they
    were a visible share of a training step's op time
    (docs/decisions/loss-gradient.md has the measurement and its commit).
    """
    import tensorflow as tf

    vocab = tf.shape(logits)[-1]

    @tf.custom_gradient
    def forward(logits):
        # Shifting by the row's maximum keeps exp() finite; the maximum's own gradient cancels.
        peak = tf.stop_gradient(tf.reduce_max(logits, axis=-1, keepdims=True))
        exps = tf.exp(logits - peak)
        total = tf.reduce_sum(exps, axis=-1, keepdims=True)
        log_normalizer = (peak + tf.math.log(total))[..., 0]
        picked = tf.gather(logits, labels[..., None], batch_dims=labels.shape.rank)[..., 0]

        def gradient(d_nll, d_log_normalizer):
            d_nll = tf.zeros_like(log_normalizer) if d_nll is None else d_nll
            d_both = d_nll if d_log_normalizer is None else d_nll + d_log_normalizer
            return exps * (d_both[..., None] / total) - tf.one_hot(labels, vocab, dtype=logits.dtype) * d_nll[..., None]

        return (log_normalizer - picked, log_normalizer), gradient

    return forward(logits)


def _replicas() -> int:
    """How many replicas a step's loss is split over (1 on one device)."""
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


class MaskedAccuracy(keras.metrics.Metric):
    """Share of real (non-pad) target tokens whose argmax prediction is right.

    Shapes: ``y_true`` int ``[batch, tgt_len]``, ``y_pred`` logits ``[batch, tgt_len, vocab]``.
    """

    def __init__(self, name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        real = ops.not_equal(y_true, PAD_ID)
        hits = ops.logical_and(real, ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true))
        self.correct.assign_add(ops.sum(ops.cast(hits, self.dtype)))
        self.count.assign_add(ops.sum(ops.cast(real, self.dtype)))

    def result(self):
        return ops.divide_no_nan(self.correct, self.count)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)
