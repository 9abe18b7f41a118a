"""The hoisted Bahdanau loop (translate/bahdanau.py) against autodiff of the plain step-by-step loop."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from translate import bahdanau
from translate.config import ModelConfig
from translate.model import Decoder

BATCH, SRC, TGT, EMBED, MEMORY = 3, 5, 4, 6, 8


def decoder_pair(
    cell: str,
    units: int = 7,
    attention_units: int = 5,
    normalize: bool = False,
    query_input: bool = False,
    kernel: bool = False,
    memory: int = MEMORY,
):
    """A Bahdanau decoder that takes the hoisted loop (its ``tf.while_loop``, or with ``kernel`` the compiled
    kernel of translate/bahdanau_kernel.cc) and one that takes ``tf.scan``, same weights."""
    config = ModelConfig(
        cell=cell,
        attention="bahdanau",
        embedding_dim=EMBED,
        decoder_units=units,
        attention_units=attention_units,
        dropout=0.0,
        attention_normalize=normalize,
        attention_query_input=query_input,
    )
    hoisted, scanned = Decoder(config, memory), Decoder(config, memory)
    scanned.use_hoisted_loop = False
    hoisted.use_kernel = kernel
    for decoder in (hoisted, scanned):
        decoder.build()
    rng = np.random.default_rng(0)
    # Non-trivial weights: biases and the score vector away from their zero-ish starts.
    hoisted.set_weights([w + 0.3 * rng.normal(size=w.shape) for w in scanned.get_weights()])
    scanned.set_weights(hoisted.get_weights())
    return hoisted, scanned


def decoder_inputs(cell: str, units: int = 7, memory_dim: int = MEMORY, batch: int = BATCH):
    rng = np.random.default_rng(1)

    def normal(*shape):
        return tf.constant(rng.normal(size=shape), tf.float32)

    memory = normal(batch, SRC, memory_dim)
    lengths = np.resize([5, 2, 3], batch)  # padding in two of every three sources
    mask = tf.constant(np.arange(SRC)[None, :] < lengths[:, None])
    states = [normal(batch, units) for _ in range(2 if cell == "lstm" else 1)]
    return normal(batch, TGT, EMBED), memory, mask, states


def results_and_gradients(decoder, inputs, memory, mask, states):
    """Every output and the gradients of a loss that reads all of them, w.r.t. inputs and weights."""
    keys_layer = decoder.attention.key_layer
    with tf.GradientTape() as tape:
        tape.watch([inputs, memory, *states])
        keys = keys_layer(memory)
        attentional, weights, final = decoder(inputs, memory, keys, mask, states)
        loss = (
            tf.reduce_sum(tf.sin(attentional))
            + tf.reduce_sum(tf.cos(3 * weights))
            + sum(tf.reduce_sum(tf.sin(2 * s)) for s in final)
        )
    watched = [inputs, memory, *states, *decoder.trainable_weights]
    return [attentional, weights, *final], tape.gradient(loss, watched)


@pytest.mark.parametrize("kernel", [False, True], ids=["while_loop", "kernel"])
@pytest.mark.parametrize(
    "cell,normalize,query_input",
    [("gru", False, False), ("lstm", False, False), ("gru", True, False), ("gru", False, True), ("lstm", False, True)],
)
def test_hoisted_loop_has_the_outputs_and_gradients_of_the_scan(cell, normalize, query_input, kernel, request):
    if kernel:
        request.getfixturevalue("bahdanau_kernel")
    hoisted, scanned = decoder_pair(cell, normalize=normalize, query_input=query_input, kernel=kernel)
    assert hoisted._hoisted_bahdanau() and not scanned._hoisted_bahdanau()
    args = decoder_inputs(cell)
    ours, our_grads = results_and_gradients(hoisted, *args)
    theirs, their_grads = results_and_gradients(scanned, *args)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    assert len(our_grads) == len(their_grads)
    for a, b in zip(our_grads, their_grads):
        assert a is not None and b is not None
        np.testing.assert_allclose(tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(), atol=1e-4)
    # Attention never lands on padding.
    weights = ours[1].numpy()
    assert np.all(weights[1, :, 2:] == 0) and np.allclose(weights.sum(-1), 1, atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_kernel_at_sizes_that_fill_its_panels_and_shards(cell, bahdanau_kernel):
    """Sizes past the kernel's blocks (translate/bahdanau_kernel.cc): 19 sentences are two shards of 8 and one
    of 3, and 40 units make gate widths of 120 or 160 columns, whole panels of 32 and a remainder."""
    units, memory = 40, 40
    hoisted, scanned = decoder_pair(cell, units=units, attention_units=20, kernel=True, memory=memory, query_input=True)
    args = decoder_inputs(cell, units=units, memory_dim=memory, batch=19)
    ours, our_grads = results_and_gradients(hoisted, *args)
    theirs, their_grads = results_and_gradients(scanned, *args)
    for a, b in zip([*ours, *our_grads], [*theirs, *their_grads]):
        np.testing.assert_allclose(tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(), atol=2e-4)


@pytest.mark.parametrize("kernel", [False, True], ids=["while_loop", "kernel"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_batch_of_no_sentences_has_zero_gradients(cell, kernel, request):
    """Under tf.distribute the last batch of an epoch may leave a replica with no sentences; every weight's
    gradient is then exactly 0 (a kernel that left its [attention_units] output unwritten at batch 0 gave
    garbage there, and the mirrored strategy's NaN: docs/decisions/bahdanau-decoder.md)."""
    if kernel:
        request.getfixturevalue("bahdanau_kernel")
    hoisted, _ = decoder_pair(cell, kernel=kernel)
    for _ in range(5):
        # A freed buffer of huge numbers, which an unwritten output would likely reuse.
        tf.fill([64], 1e30).numpy()
        outputs, grads = results_and_gradients(hoisted, *decoder_inputs(cell, batch=0))
        assert all(o.shape[0] == 0 for o in outputs)
        for g in grads:
            np.testing.assert_array_equal(tf.convert_to_tensor(g).numpy(), 0)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_under_mixed_precision_the_kernel_runs_in_float32(cell, bahdanau_kernel, monkeypatch):
    """train.precision=mixed_bfloat16: the loop's inputs are bfloat16, the kernel computes in float32 and its
    outputs go back as bfloat16; the results are the float32 scan's up to bfloat16 rounding."""
    calls = []

    class Spy:
        def translate_bahdanau_forward(self, *args, **kwargs):
            calls.append([a.dtype for a in args[:2]])
            return bahdanau_kernel.translate_bahdanau_forward(*args, **kwargs)

        def translate_bahdanau_backward(self, *args, **kwargs):
            return bahdanau_kernel.translate_bahdanau_backward(*args, **kwargs)

    monkeypatch.setattr("translate.bahdanau_kernel.load", lambda: Spy())
    products = []
    sum_over_steps = bahdanau._sum_over_steps

    def spy_sum(equation, a, b, compute_dtype):
        products.append((a.dtype, compute_dtype))
        return sum_over_steps(equation, a, b, compute_dtype)

    monkeypatch.setattr(bahdanau, "_sum_over_steps", spy_sum)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed, _ = decoder_pair(cell, kernel=True, query_input=True)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    _, scanned = decoder_pair(cell, query_input=True)
    scanned.set_weights(mixed.get_weights())
    args = decoder_inputs(cell)
    ours, our_grads = results_and_gradients(mixed, *args)
    theirs, their_grads = results_and_gradients(scanned, *args)
    assert calls == [[tf.float32, tf.float32]]
    # dR and dW, dW_c and the memory's gradient: float32 operands, multiplied in bfloat16.
    assert products == [(tf.float32, tf.bfloat16)] * 3
    assert ours[0].dtype == tf.bfloat16
    for a, b in zip([*ours, *our_grads], [*theirs, *their_grads]):
        a, b = (tf.cast(tf.convert_to_tensor(x), tf.float32).numpy() for x in (a, b))
        np.testing.assert_allclose(a, b, atol=0.05 * max(1.0, np.abs(b).max()))


def test_a_weight_gradient_over_all_steps_multiplies_in_the_compute_dtype():
    """Under mixed precision the kernel's loop is float32, and its weight gradients' products run in bfloat16:
    the einsum of the operands' bfloat16 roundings, handed back in float32."""
    rng = np.random.default_rng(2)
    previous, d_gates = (tf.constant(rng.normal(size=shape), tf.float32) for shape in ([4, 3, 16], [4, 3, 24]))
    product = bahdanau._sum_over_steps("tbu,tbg->ug", previous, d_gates, tf.bfloat16)
    assert product.dtype == tf.float32
    rounded = [tf.cast(tf.cast(x, tf.bfloat16), tf.float32) for x in (previous, d_gates)]
    np.testing.assert_allclose(product.numpy(), tf.einsum("tbu,tbg->ug", *rounded).numpy(), rtol=1e-2, atol=1e-2)
    exact = tf.einsum("tbu,tbg->ug", previous, d_gates).numpy()
    assert not np.array_equal(product.numpy(), exact)  # it did round
    np.testing.assert_array_equal(bahdanau._sum_over_steps("tbu,tbg->ug", previous, d_gates, tf.float32), exact)


@pytest.mark.parametrize("kernel", [False, True], ids=["while_loop", "kernel"])
def test_the_loop_is_used_inside_a_compiled_graph(kernel, request):
    """In a tf.function (as Keras's train step runs it) the hoisted loop gives the scan's gradients too."""
    if kernel:
        request.getfixturevalue("bahdanau_kernel")
    hoisted, scanned = decoder_pair("gru", kernel=kernel)
    args = decoder_inputs("gru")
    results = [tf.function(results_and_gradients)(decoder, *args)[1] for decoder in (hoisted, scanned)]
    for a, b in zip(*results):
        np.testing.assert_allclose(tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(), atol=1e-4)


def test_other_decoders_keep_the_scan():
    for overrides in ({"decoder_layers": 2}, {"cell": "simple_rnn"}, {"input_feeding": True}):
        config = ModelConfig(**{"attention": "bahdanau", "decoder_units": 8, **overrides})
        assert not Decoder(config, MEMORY)._hoisted_bahdanau(), overrides
    assert not Decoder(ModelConfig(attention="luong_dot", decoder_units=8), 8)._hoisted_bahdanau()
    assert keras.backend.backend() == "tensorflow"


def test_the_normalized_score_vector_has_the_learned_length():
    hoisted, _ = decoder_pair("gru", attention_units=5, normalize=True)
    attention = hoisted.attention
    v = attention.score_vector().numpy()
    assert np.isclose(np.linalg.norm(v), abs(float(attention.scale.numpy())), rtol=1e-5)
    # Before training (no noise added): g starts at 1 / sqrt(units), so the first scores are small.
    fresh = Decoder(ModelConfig(attention="bahdanau", attention_units=16, attention_normalize=True), MEMORY)
    fresh.build()
    assert np.isclose(np.linalg.norm(fresh.attention.score_vector().numpy()), 0.25, rtol=1e-5)


def test_a_query_that_sees_the_input_word_changes_the_attention():
    """With ``attention_query_input`` the score reads ``[s_{t-1}; y_{t-1}]``: the same state with
    different input words attends differently; without it, the input word cannot move step 1's weights."""
    args = decoder_inputs("gru")
    inputs, memory, mask, states = args
    other = tf.concat([inputs[:, :1] + 1.0, inputs[:, 1:]], axis=1)  # another y_0, same s_0
    for query_input, moves in ((True, True), (False, False)):
        decoder, _ = decoder_pair("gru", query_input=query_input)
        keys = decoder.attention.key_layer(memory)
        first = [decoder(x, memory, keys, mask, states)[1][:, 0].numpy() for x in (inputs, other)]
        assert (not np.allclose(*first, atol=1e-6)) == moves
