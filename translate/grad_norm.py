"""The training model's ``train_step``: Keras's own, plus the global gradient norm.

Clipping by global norm (Pascanu et al. 2013, "On the difficulty of training
recurrent neural networks") hides how large the gradients were; the norm
before clipping is what shows exploding gradients, so it is logged as
``grad_norm`` (the mean over the epoch's steps) next to the loss.
"""

from __future__ import annotations

import warnings

import keras
import tensorflow as tf


class GradNormModel(keras.Model):
    """A functional ``keras.Model`` whose training step also tracks ``grad_norm``.

    Build it with ``build_models(..., training_class=GradNormModel)``. The step
    is the TensorFlow backend's ``train_step`` of Keras 3.15
    (``keras/src/backend/tensorflow/trainer.py``): loss with the loss tracker,
    loss scaling, gradients, ``optimizer.apply_gradients`` (which clips by
    ``global_clipnorm``), compiled metrics; the one addition is the global
    norm of the gradients before that call. Evaluation does not report it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A Metric attribute is tracked by the model, reset each epoch and shown in the logs.
        self.grad_norm_tracker = keras.metrics.Mean(name="grad_norm")

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            # Keras divides the loss by the number of replicas for the gradient sum
            # across replicas; the tracker wants the per-replica mean back.
            self._loss_tracker.update_state(
                loss * tf.cast(replicas, loss.dtype),
                sample_weight=tf.shape(tf.nest.flatten(x)[0])[0],
            )
            if self.optimizer is not None:
                loss = self.optimizer.scale_loss(loss)

        if self.trainable_weights:
            trainable_weights = self.trainable_weights
            gradients = tape.gradient(loss, trainable_weights)
            self.grad_norm_tracker.update_state(self._global_norm(gradients))
            self.optimizer.apply_gradients(zip(gradients, trainable_weights))
        else:
            warnings.warn("The model does not have any trainable weights.", stacklevel=2)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _global_norm(self, gradients):
        """``sqrt(sum_i ||g_i||^2)`` of the gradient of the (unscaled) mean loss, a float32 scalar."""
        gradients = [g for g in gradients if g is not None]
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # Each replica holds its part of the gradient (the loss was divided by the
            # number of replicas); the norm is that of their sum, which costs one more
            # all-reduce of the gradients per step.
            gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        norm = tf.linalg.global_norm([tf.cast(g, "float32") for g in gradients])
        if self.optimizer is not None:
            # A loss-scaling optimizer multiplies the loss, and so the gradients, by its
            # scale; scale_loss(1) is that factor (1 for a plain optimizer).
            norm = norm / tf.cast(self.optimizer.scale_loss(tf.constant(1.0)), "float32")
        return norm

    def test_step(self, data):
        logs = super().test_step(data)
        # The tracker holds no value during evaluation; leave val_grad_norm out of the logs.
        return {name: value for name, value in logs.items() if name != "grad_norm"}
