"""A Keras GRU whose loop on CPU does only the recurrent part of each step.

The GRU with the reset gate after the recurrent matmul (Keras's default
``reset_after=True``, the cuDNN formula; Cho et al. 2014, "Learning Phrase
Representations using RNN Encoder-Decoder", eq. 5-8, with ``r`` moved):

    z_t  = sigmoid(W_z x_t + b_z + R_z h_{t-1} + b'_z)
    r_t  = sigmoid(W_r x_t + b_r + R_r h_{t-1} + b'_r)
    h^_t = tanh(W_h x_t + b_h + r_t * (R_h h_{t-1} + b'_h))
    h_t  = z_t * h_{t-1} + (1 - z_t) * h^_t

Keras's own loop (``keras.layers.GRU`` off the GPU) calls the cell at every
step: the input matmul ``W x_t`` runs once per step, and autodiff of the loop
computes both kernels' gradients at every step and sums them one by one.
Here (:func:`recurrence`):

* nothing in ``W x_t + b`` depends on ``h``, so it is one matmul
  ``[time * batch, input_dim] x [input_dim, 3 * units]`` before the loop,
  with ``b'_z, b'_r`` folded in; the loop keeps only ``R h_{t-1}`` and the gates;
* the backward pass is written out: only the gradient reaching ``h_{t-1}``
  goes step by step, and ``dR`` is one matmul after the loop.

The same weights, the same outputs and gradients (to float rounding; tests
compare them with Keras's); the training step is 1.09x as fast on the
2-core CPU at the equal-size model's batch 64 and 1.22x at the quick
preset's 16 (benchmarks/results/gru_step.json; docs/decisions/our-gru.md).

On a GPU the layer is Keras's own, so that Keras can pick the cuDNN kernel.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="translate")
class GRU(keras.layers.GRU):
    """``keras.layers.GRU`` (same arguments, weights and results) with the input
    projection hoisted out of the time loop; see the module docstring.

    Falls back to Keras's loop where the hoisting does not apply: on a GPU,
    with ``reset_after=False``, without a bias, with recurrent dropout, or
    unrolled. Input dropout keeps one mask per sequence, as Keras's does.
    """

    def _hoists(self) -> bool:
        cell = self.cell
        return (
            cell.reset_after
            and cell.use_bias
            and not cell.recurrent_dropout
            and not self.unroll
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
            and not tf.config.list_logical_devices("GPU")
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        """The loop of ``keras.layers.RNN``: same arguments and results.

        Args:
            sequences: ``[batch, time, input_dim]``.
            initial_state: ``[batch, units]`` (or a one-item list).
            mask: ``bool [batch, time]`` or None; a masked step keeps the state,
                and outputs zeros (``zero_output_for_mask``) or the last output.
        Returns:
            last output ``[batch, units]``, outputs ``[batch, time, units]``
            (in the loop's order: reversed with ``go_backwards``, as Keras's),
            and the final state as a one-item list.
        """
        if not self._hoists():
            return super().inner_loop(sequences, initial_state, mask, training=training)
        h0 = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
        mask = mask[0] if isinstance(mask, (list, tuple)) else mask
        cell, units, dtype = self.cell, self.cell.units, sequences.dtype
        if training and cell.dropout:
            sequences = sequences * cell.get_dropout_mask(sequences[:, 0, :])[:, None, :]
        kernel = tf.cast(cell.kernel, dtype)
        input_bias, recurrent_bias = tf.unstack(tf.cast(cell.bias, dtype))
        # b'_z and b'_r add to the input projection; b'_h sits inside r_t * (...).
        folded_bias = input_bias + tf.concat([recurrent_bias[: 2 * units], tf.zeros([units], dtype)], axis=0)

        # Time-major, so that step t reads one contiguous [batch, 3 * units] slice.
        time_major = tf.transpose(sequences, [1, 0, 2])
        steps, batch = tf.shape(time_major)[0], tf.shape(time_major)[1]
        projected = tf.matmul(tf.reshape(time_major, [-1, sequences.shape[-1]]), kernel) + folded_bias
        projected = tf.reshape(projected, [steps, batch, 3 * units])
        if mask is not None:
            mask = tf.transpose(mask, [1, 0])
        if self.go_backwards:
            projected = tf.reverse(projected, [0])
            mask = None if mask is None else tf.reverse(mask, [0])
        states = recurrence(projected, h0, tf.cast(cell.recurrent_kernel, dtype), recurrent_bias[2 * units :], mask)
        if mask is None:
            outputs = states
        else:
            # A masked step repeats the state; its output is zeros, or the last
            # real output (zeros before the first real step).
            shown = mask if self.zero_output_for_mask else tf.cumsum(tf.cast(mask, tf.int32), axis=0) > 0
            outputs = tf.where(shown[:, :, None], states, tf.zeros_like(states))
        return outputs[-1], tf.transpose(outputs, [1, 0, 2]), [states[-1]]


def recurrence(projected, h0, recurrent_kernel, candidate_bias, mask=None):
    """The GRU's time loop over precomputed input projections, with its own gradient.

    Args:
        projected: ``[time, batch, 3 * units]``, ``W x_t + b`` with ``b'_z, b'_r``
            folded in (gate order z, r, h as Keras's kernel).
        h0: ``[batch, units]``; recurrent_kernel: ``R [units, 3 * units]``;
        candidate_bias: ``b'_h [units]``.
        mask: ``bool [time, batch]`` or None; at a masked step the state stays.
    Returns:
        the states ``h_1 .. h_T``, ``[time, batch, units]``.

    The backward pass (backpropagation through time, written out): only the
    gradient reaching ``h_{t-1}`` must go step by step; what the gates'
    derivatives need from the forward pass is computed for all steps at once,
    and ``dR = sum_t h_{t-1}^T d(R h_{t-1})`` is one matmul after the loop.
    Autodiff of the loop instead did that matmul at every step and summed
    the ``[units, 3 * units]`` results one by one.
    """
    units = h0.shape[-1]
    steps = tf.shape(projected)[0]
    dtype = projected.dtype

    def loop(body, init):
        # maximum_iterations gives XLA (train.jit_compile) a fixed-size TensorArray.
        return tf.while_loop(lambda t, *_: t < steps, body, init, maximum_iterations=steps)

    # Steps read their slice of a whole tensor (x[t]): a TensorArray's unstack
    # copied every input into a list first, an extra copy of the whole input
    # that every training step paid.
    @tf.custom_gradient
    def run(projected, h0, recurrent_kernel, candidate_bias):
        def forward(t, h, states, gates, candidates, hiddens):
            x_gates, x_candidate = tf.split(projected[t], [2 * units, units], axis=1)
            h_gates, h_candidate = tf.split(tf.matmul(h, recurrent_kernel), [2 * units, units], axis=1)
            zr = tf.sigmoid(x_gates + h_gates)
            z, r = tf.split(zr, 2, axis=1)
            hidden = h_candidate + candidate_bias
            candidate = tf.tanh(x_candidate + r * hidden)
            new = candidate + z * (h - candidate)
            if mask is not None:
                new = tf.where(mask[t][:, None], new, h)
            return (
                t + 1,
                new,
                states.write(t, new),
                gates.write(t, zr),
                candidates.write(t, candidate),
                hiddens.write(t, hidden),
            )

        arrays = [tf.TensorArray(dtype, size=steps) for _ in range(4)]
        _, _, *arrays = loop(forward, (0, h0, *arrays))
        states, gates, candidates, hiddens = (a.stack() for a in arrays)

        def gradient(d_states):
            previous = tf.concat([h0[None], states[:-1]], axis=0)
            z, r = tf.split(gates, 2, axis=-1)
            # d new / d (pre-activations), per unit of d new: for all steps at once.
            to_candidate = (1 - z) * (1 - candidates * candidates)
            to_z = (previous - candidates) * z * (1 - z)
            to_r = hiddens * r * (1 - r)
            transposed = tf.transpose(recurrent_kernel)

            def backward(i, d_h, d_inners, d_candidates):
                t = steps - 1 - i
                d_out, z_t, r_t, to_candidate_t, to_z_t, to_r_t = (
                    x[t] for x in (d_states, z, r, to_candidate, to_z, to_r)
                )
                d_new = d_out + d_h
                d_kept = None
                if mask is not None:
                    real = mask[t][:, None]
                    zeros = tf.zeros_like(d_new)
                    d_new, d_kept = tf.where(real, d_new, zeros), tf.where(real, zeros, d_new)
                d_candidate = d_new * to_candidate_t
                d_inner = tf.concat([d_new * to_z_t, d_candidate * to_r_t, d_candidate * r_t], axis=1)
                d_h = tf.matmul(d_inner, transposed) + d_new * z_t
                if d_kept is not None:
                    d_h += d_kept
                return i + 1, d_h, d_inners.write(t, d_inner), d_candidates.write(t, d_candidate)

            _, d_h0, d_inners, d_candidates = loop(
                backward, (0, tf.zeros_like(h0), tf.TensorArray(dtype, size=steps), tf.TensorArray(dtype, size=steps))
            )
            d_inners = d_inners.stack()
            d_projected = tf.concat([d_inners[:, :, : 2 * units], d_candidates.stack()], axis=-1)
            d_recurrent = tf.matmul(
                tf.reshape(previous, [-1, units]), tf.reshape(d_inners, [-1, 3 * units]), transpose_a=True
            )
            d_candidate_bias = tf.reduce_sum(d_inners[:, :, 2 * units :], axis=[0, 1])
            return d_projected, d_h0, d_recurrent, d_candidate_bias

        return states, gradient

    return run(projected, h0, recurrent_kernel, candidate_bias)
