"""The Bahdanau decoder's time loop for training: attention inside the recurrence, with its own gradient.

Bahdanau attention (Bahdanau, Cho and Bengio 2015, eq. 4-6 and appendix A.1.2)
puts the attention inside the recurrence: step ``t`` scores the previous
state ``s_{t-1}`` against every encoder output, and the context ``c_t``
joins the input of the cell that makes ``s_t``:

    e_tj = v^T tanh(W s_{t-1} + U h_j)          alpha_t = softmax_j(e_tj) (padding excluded)
    c_t  = sum_j alpha_tj h_j
    s_t  = cell([y_{t-1}; c_t], s_{t-1})        (GRU or LSTM, Keras's gate layout)

Run naively (a ``tf.scan`` of Keras cells, as the model's step-by-step path
does), every step repeats work that does not depend on the loop, and
autodiff of the loop computes each weight's gradient at every step and sums
the results one by one. Here (:func:`attentive_recurrence`):

* out of the loop, before it: the ``y_{t-1}`` half of the cell's input
  matmul and its bias, for all steps in one ``[time * batch, embedding]``
  matmul; ``U h_j`` was already computed once per sentence (the keys);
* out of the loop, after it: the attentional layer ``h~_t = tanh(W_o [s_t;
  c_t; y_{t-1}])`` and the logits, over all steps at once (the caller);
* in the loop: one matmul ``s_{t-1} [R | W]`` for both the recurrent part of
  the gates and the attention query, the score, the softmax, the context,
  ``c_t W_c`` (the context half of the input matmul) and the gates;
* the backward pass is written out: only the gradients reaching ``s_{t-1}``
  (and an LSTM's memory cell) go step by step, together with the sums for
  the keys ``dU h_j`` and ``dv``; the cell's derivative factors that do not
  depend on the incoming gradient are computed for all steps before the
  backward loop; ``dR``, ``dW``, ``dW_c`` and the gradient of the memory are
  each one matmul over all steps after the loop. The
  ``tanh`` of the score is recomputed in the backward pass rather than kept,
  so memory stays ``O(time * batch * (units + src_len))``.

On a CPU both loops run as the compiled kernel of
``translate/bahdanau_kernel.cc`` when it builds (:mod:`translate.bahdanau_kernel`):
the same formulas, each step in one pass instead of some forty small ops. The
``tf.while_loop`` below stays as the fallback and as its reference.

The results are those of the step-by-step path (same weights, same outputs
and gradients to float rounding; ``tests/test_bahdanau.py`` compares them
with autodiff of the ``tf.scan`` loop). Why this is worth a hand-written
loop: docs/decisions/bahdanau-decoder.md, with the measurements.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf


class CellWeights(NamedTuple):
    """The recurrent cell's weights, as the loop uses them.

    Attributes:
        recurrent: ``R [units, gates]`` (GRU: ``gates = 3 * units``, order z, r, h;
            LSTM: ``4 * units``, order i, f, c, o: Keras's layouts).
        context_kernel: ``W_c [memory_dim, gates]``, the rows of the cell's input
            kernel that multiply ``c_t``.
        candidate_bias: GRU only: ``b'_h [units]``, the recurrent bias inside
            ``r * (R_h h + b'_h)``; None for an LSTM.
    """

    recurrent: tf.Tensor
    context_kernel: tf.Tensor
    candidate_bias: tf.Tensor | None


class AttentionWeights(NamedTuple):
    """The additive score's weights: ``query [units, attention_units]`` (``W``) and ``v [attention_units]``."""

    query: tf.Tensor
    v: tf.Tensor


class Memory(NamedTuple):
    """What the decoder attends to, per sentence.

    Attributes:
        values: ``[batch, src_len, memory_dim]``, the encoder outputs ``h_j``.
        keys: ``[batch, src_len, attention_units]``, ``U h_j + b``.
        mask: ``bool [batch, src_len]``, True at real source positions.
    """

    values: tf.Tensor
    keys: tf.Tensor
    mask: tf.Tensor


class Outputs(NamedTuple):
    """What the loop returns, time-major.

    Attributes:
        states: ``[time, batch, units]``, ``s_1 .. s_T`` (an LSTM's ``h``).
        contexts: ``[time, batch, memory_dim]``, ``c_1 .. c_T``.
        weights: ``[time, batch, src_len]``, ``alpha_1 .. alpha_T``.
        final_cell: ``[batch, units]``, an LSTM's last memory cell ``c_T``
            (for a GRU, the last state again).
    """

    states: tf.Tensor
    contexts: tf.Tensor
    weights: tf.Tensor
    final_cell: tf.Tensor


def _softmax(scores, mask):
    """Softmax over source positions, exactly 0 at padding (as ``attention.masked_softmax``)."""
    return tf.nn.softmax(tf.where(mask, scores, scores.dtype.min), axis=-1)


def _score(hidden, v):
    """``hidden [batch, src_len, att] . v [att]`` -> ``[batch, src_len]``, as one 2-D matmul.

    Not ``tf.linalg.matvec``: its broadcasting batched matmul corrupted the
    heap under oneDNN on the 2-core CPU (training aborted after an epoch)."""
    return tf.reshape(tf.matmul(tf.reshape(hidden, [-1, v.shape[0]]), v[:, None]), tf.shape(hidden)[:2])


def _sum_over_steps(equation, a, b, compute_dtype):
    """``tf.einsum(equation, a, b)`` for a product summed over every step (a weight's gradient, or the
    memory's), computed in ``compute_dtype``, returned in ``a``'s dtype.

    Under mixed precision the kernel's loop runs in float32, but these are
    the backward pass's largest matmuls (``[time * batch, units]`` by
    ``[time * batch, gates]``): in bfloat16 they run on the CPU's matrix
    units, as Keras's own layers' weight gradients do, with the sums kept in
    float32 inside the matmul (docs/decisions/bahdanau-decoder.md)."""
    if a.dtype == compute_dtype:
        return tf.einsum(equation, a, b)
    product = tf.einsum(equation, tf.cast(a, compute_dtype), tf.cast(b, compute_dtype))
    return tf.cast(product, a.dtype)


def _attend(query, memory: Memory, v):
    """Weights ``[batch, src_len]`` and context ``[batch, memory_dim]`` for a projected query ``[batch, att]``."""
    hidden = tf.tanh(query[:, None, :] + memory.keys)
    weights = _softmax(_score(hidden, v), memory.mask)
    return weights, tf.einsum("bs,bsm->bm", weights, memory.values)


# The cells. ``*_forward`` takes the pre-activations from the input ``x``
# (input projection plus context term, biases folded in) and from the state
# ``h`` (``h R``) and returns the new (h, cell) and what the backward pass
# needs. ``*_partials`` turns that, for all steps at once before the backward
# loop, into the factors that do not depend on the incoming gradient, so that
# ``*_backward`` does a handful of ops per step (as translate/gru.py does).


def _gru_forward(x_pre, h_pre, h, _cell, candidate_bias):
    units = h.shape[-1]
    x_gates, x_candidate = tf.split(x_pre, [2 * units, units], axis=1)
    h_gates, h_candidate = tf.split(h_pre, [2 * units, units], axis=1)
    zr = tf.sigmoid(x_gates + h_gates)
    z, r = tf.split(zr, 2, axis=1)
    hidden = h_candidate + candidate_bias
    candidate = tf.tanh(x_candidate + r * hidden)
    new = candidate + z * (h - candidate)
    return new, new, (zr, candidate, hidden)


def _gru_partials(saved, previous, _previous_cells):
    """``[time, batch, units]`` factors: d new -> d candidate pre-activation, -> d z pre-activation;
    d candidate pre-activation -> d r pre-activation; ``r``; ``z``."""
    zr, candidate, hidden = saved
    z, r = tf.split(zr, 2, axis=-1)
    return ((1 - z) * (1 - candidate * candidate), (previous - candidate) * z * (1 - z), hidden * r * (1 - r), r, z)


def _gru_backward(d_h, d_cell, partials):
    """-> d(x pre-activations), d(h R), d h_{t-1} (the direct part), d cell_{t-1}."""
    to_candidate, to_z, to_r, r, z = partials
    d_candidate = d_h * to_candidate
    d_z = d_h * to_z
    d_r = d_candidate * to_r
    return (tf.concat([d_z, d_r, d_candidate], axis=1), tf.concat([d_z, d_r, d_candidate * r], axis=1), d_h * z, d_cell)


def _lstm_forward(x_pre, h_pre, _h, cell, _candidate_bias):
    i, f, g, o = tf.split(x_pre + h_pre, 4, axis=1)
    i, f, o, g = tf.sigmoid(i), tf.sigmoid(f), tf.sigmoid(o), tf.tanh(g)
    new_cell = f * cell + i * g
    squashed = tf.tanh(new_cell)
    return o * squashed, new_cell, (tf.concat([i, f, g, o], axis=1), squashed)


def _lstm_partials(saved, _previous, previous_cells):
    """Factors: d h -> d cell; d cell -> d (i, f, g) pre-activations (``[time, batch, 3 * units]``);
    d h -> d o pre-activation; ``f`` (d cell_t -> d cell_{t-1})."""
    gates, squashed = saved
    i, f, g, o = tf.split(gates, 4, axis=-1)
    from_cell = tf.concat([g * i * (1 - i), previous_cells * f * (1 - f), i * (1 - g * g)], axis=-1)
    return o * (1 - squashed * squashed), from_cell, squashed * o * (1 - o), f


def _lstm_backward(d_h, d_cell, partials):
    to_cell, from_cell, to_o, f = partials
    d_cell = d_cell + d_h * to_cell
    d_gates = tf.concat([tf.tile(d_cell, [1, 3]) * from_cell, d_h * to_o], axis=1)
    return d_gates, d_gates, tf.zeros_like(d_h), d_cell * f


_CELLS = {"gru": (_gru_forward, _gru_partials, _gru_backward), "lstm": (_lstm_forward, _lstm_partials, _lstm_backward)}


def attentive_recurrence(
    kind: str,
    projected,
    h0,
    cell0,
    cell: CellWeights,
    attention: AttentionWeights,
    memory: Memory,
    query_offsets=None,
    kernel=None,
) -> Outputs:
    """The recurrence of a one-layer Bahdanau decoder over a whole target, with its own gradient.

    Args:
        kind: ``"gru"`` (Keras's ``reset_after=True`` GRU) or ``"lstm"``.
        projected: ``[time, batch, gates]``, ``y_{t-1} W_y + b`` for every step
            (GRU: ``b'_z, b'_r`` folded into ``b``, as in :mod:`translate.gru`).
        h0: ``[batch, units]``, ``s_0``; cell0: an LSTM's ``c_0 [batch, units]``
            (for a GRU, any tensor of that shape; it is not used).
        cell, attention, memory: see :class:`CellWeights`, :class:`AttentionWeights`, :class:`Memory`.
        query_offsets: ``[time, batch, attention_units]`` added to step ``t``'s
            projected query ``s_{t-1} W`` (the ``y_{t-1} W_y`` of a query
            ``[s_{t-1}; y_{t-1}]``), or None.
        kernel: the op library of :mod:`translate.bahdanau_kernel` to run both
            loops with, or None for the ``tf.while_loop``s. The kernel computes
            in float32; under mixed precision (bfloat16 inputs) its weight
            matmuls take bfloat16 operands on AMX where the CPU has it.
    Returns:
        :class:`Outputs`. Gradients flow to every tensor argument except the mask.
    """
    forward_cell, cell_partials, backward_cell = _CELLS[kind]
    units = h0.shape[-1]
    gates = cell.recurrent.shape[-1]
    steps = tf.shape(projected)[0]
    dtype = projected.dtype
    gru = kind == "gru"
    offset = query_offsets is not None
    native = kernel is not None and dtype in (tf.float32, tf.bfloat16)
    if not offset:
        query_offsets = tf.zeros([], dtype)  # a placeholder argument; never read

    def loop(body, init):
        return tf.while_loop(lambda t, *_: t < steps, body, init, maximum_iterations=steps)

    def arrays(n):
        return [tf.TensorArray(dtype, size=steps) for _ in range(n)]

    @tf.custom_gradient
    def run(projected, h0, cell0, recurrent, context_kernel, candidate_bias, query_kernel, v, values, keys, offsets):
        mem = Memory(values, keys, memory.mask)
        # One matmul per step for the gates' recurrent part and the attention query.
        fused = tf.concat([recurrent, query_kernel], axis=1)
        n_saved = 3 if gru else 2

        def forward(t, h, c, states, cells, contexts, weights, *saved):
            h_pre, query = tf.split(tf.matmul(h, fused), [gates, -1], axis=1)
            if offset:
                query += offsets[t]
            alpha, context = _attend(query, mem, v)
            x_pre = projected[t] + tf.matmul(context, context_kernel)
            new_h, new_c, keep = forward_cell(x_pre, h_pre, h, c, candidate_bias)
            written = [a.write(t, x) for a, x in zip(saved, keep)]
            return (
                t + 1,
                new_h,
                new_c,
                states.write(t, new_h),
                cells.write(t, new_c),
                contexts.write(t, context),
                weights.write(t, alpha),
                *written,
            )

        if native:
            states, cells, contexts, weights, packed, kept_queries = kernel.translate_bahdanau_forward(
                projected,
                h0,
                cell0,
                fused,
                context_kernel,
                candidate_bias,
                v,
                values,
                keys,
                memory.mask,
                offsets,
                gru=gru,
                has_offsets=offset,
                bf16_matmuls=dtype != tf.float32,
            )
            last_cell = cells[-1]
        else:
            _, _, last_cell, *stacks = loop(forward, (0, h0, cell0, *arrays(4 + n_saved)))
            states, cells, contexts, weights, *saved = (a.stack() for a in stacks)

        def gradient(d_states, d_contexts, d_weights, d_final_cell):
            previous = tf.concat([h0[None], states[:-1]], axis=0)
            # The projected queries W s_{t-1} of every step (the kernel kept them; here, one matmul); the
            # tanh of the score is recomputed from them step by step.
            if native:
                queries = kept_queries
            else:
                queries = tf.einsum("tbu,ua->tba", previous, query_kernel)
                if offset:
                    queries += offsets

            def backward(i, d_h, d_cell, d_keys, d_v, d_xs, d_fused, d_context_all):
                t = steps - 1 - i
                d_new = d_states[t] + d_h
                d_x, d_recurrent, d_h_direct, d_cell_prev = backward_cell(d_new, d_cell, [p[t] for p in partials])
                d_context = d_contexts[t] + tf.matmul(d_x, context_kernel_t)
                alpha = weights[t]
                d_alpha = d_weights[t] + tf.einsum("bsm,bm->bs", values, d_context)
                d_score = alpha * (d_alpha - tf.reduce_sum(alpha * d_alpha, axis=1, keepdims=True))
                hidden = tf.tanh(queries[t][:, None, :] + keys)
                # TanhGrad: dy * (1 - y^2) in one pass over [batch, src_len, attention_units].
                # The outer product d_score v^T as a matmul of [batch * src_len, 1] by [1, att]: faster than the
                # broadcasting multiply over two axes it replaces (docs/decisions/bahdanau-decoder.md).
                outer = tf.reshape(tf.matmul(tf.reshape(d_score, [-1, 1]), v[None, :]), tf.shape(hidden))
                d_pre = tf.raw_ops.TanhGrad(y=hidden, dy=outer)
                d_query = tf.reduce_sum(d_pre, axis=1)
                d_both = tf.concat([d_recurrent, d_query], axis=1)
                d_prev = tf.matmul(d_both, fused_t) + d_h_direct
                return (
                    i + 1,
                    d_prev,
                    d_cell_prev,
                    d_keys + d_pre,
                    d_v
                    + tf.linalg.matvec(
                        tf.reshape(hidden, [-1, hidden.shape[-1]]), tf.reshape(d_score, [-1]), transpose_a=True
                    ),
                    d_xs.write(t, d_x),
                    d_fused.write(t, d_both),
                    d_context_all.write(t, d_context),
                )

            d_states, d_contexts, d_weights, d_final_cell = (
                tf.zeros_like(x) if d is None else d
                for d, x in zip((d_states, d_contexts, d_weights, d_final_cell), (states, contexts, weights, cells[-1]))
            )
            # A GRU's last "cell" is its last state: that gradient starts the state's chain.
            init_h, init_cell = (d_final_cell, tf.zeros_like(cell0)) if gru else (tf.zeros_like(h0), d_final_cell)
            if native:
                d_h0, d_cell0, d_keys, d_v, d_xs, d_fused, d_context_all = kernel.translate_bahdanau_backward(
                    d_states,
                    d_contexts,
                    d_weights,
                    init_h,
                    init_cell,
                    packed,
                    queries,
                    weights,
                    values,
                    keys,
                    v,
                    fused,
                    context_kernel,
                    memory.mask,
                    states,
                    cells,
                    h0,
                    cell0,
                    gru=gru,
                    bf16_matmuls=dtype != tf.float32,
                )
            else:
                # Transposed once here, not per step: in a trace of this loop the matmul with transpose_b took
                # more than twice as long as the plain one (docs/decisions/bahdanau-decoder.md).
                fused_t, context_kernel_t = tf.transpose(fused), tf.transpose(context_kernel)
                previous_cells = tf.concat([cell0[None], cells[:-1]], axis=0)
                partials = cell_partials(saved, previous, previous_cells)
                _, d_h0, d_cell0, d_keys, d_v, d_xs, d_fused, d_context_all = loop(
                    backward, (0, init_h, init_cell, tf.zeros_like(keys), tf.zeros_like(v), *arrays(3))
                )
                d_xs, d_fused, d_context_all = d_xs.stack(), d_fused.stack(), d_context_all.stack()
            # The query's gradient is the last columns of d_fused: the offsets' gradient too.
            d_offsets = d_fused[:, :, gates:] if offset else tf.zeros_like(offsets)
            d_fused_kernel = _sum_over_steps("tbu,tbg->ug", previous, d_fused, dtype)
            d_recurrent_kernel, d_query_kernel = tf.split(d_fused_kernel, [gates, -1], axis=1)
            d_context_kernel = _sum_over_steps("tbm,tbg->mg", contexts, d_xs, dtype)
            d_values = _sum_over_steps("tbs,tbm->bsm", weights, d_context_all, dtype)
            d_candidate_bias = (
                tf.reduce_sum(d_fused[:, :, 2 * units : gates], axis=[0, 1]) if gru else tf.zeros_like(candidate_bias)
            )
            return (
                d_xs,
                d_h0,
                d_cell0,
                d_recurrent_kernel,
                d_context_kernel,
                d_candidate_bias,
                d_query_kernel,
                d_v,
                d_values,
                d_keys,
                d_offsets,
            )

        return (states, contexts, weights, last_cell), gradient

    candidate_bias = cell.candidate_bias if gru else tf.zeros([units], dtype)
    arguments = (
        projected,
        h0,
        cell0,
        cell.recurrent,
        cell.context_kernel,
        candidate_bias,
        attention.query,
        attention.v,
        memory.values,
        memory.keys,
        query_offsets,
    )
    if native and dtype != tf.float32:
        # The kernel takes float32: under mixed precision the loop's inputs are cast up and its outputs back
        # (docs/decisions/precision-and-xla.md).
        outputs = run(*(tf.cast(a, tf.float32) for a in arguments))
        return Outputs(*(tf.cast(o, dtype) for o in outputs))
    return Outputs(*run(*arguments))
