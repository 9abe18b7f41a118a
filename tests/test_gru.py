"""Our GRU is Keras's GRU with the input matmul out of the loop: same results, same gradients."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from translate.gru import GRU

BATCH, TIME, INPUT, UNITS = 4, 6, 5, 3


def twin_layers(**kwargs):
    """Keras's GRU and ours, with the same (non-trivial) weights."""
    theirs, ours = keras.layers.GRU(UNITS, **kwargs), GRU(UNITS, **kwargs)
    for layer in (theirs, ours):
        layer.build((None, None, INPUT))
    rng = np.random.default_rng(0)
    ours.set_weights([w + 0.3 * rng.normal(size=w.shape) for w in theirs.get_weights()])
    theirs.set_weights(ours.get_weights())
    return theirs, ours


def inputs_and_mask():
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(BATCH, TIME, INPUT)), tf.float32)
    lengths = np.array([6, 4, 1, 3])
    return x, tf.constant(np.arange(TIME)[None, :] < lengths[:, None])


def results_and_gradients(layer, x, **call_kwargs):
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = layer(x, **call_kwargs)
        loss = sum(tf.reduce_sum(tf.sin(o)) for o in tf.nest.flatten(outputs))
    return tf.nest.flatten(outputs), tape.gradient(loss, [x, *layer.trainable_weights])


def assert_all_close(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_same_outputs_states_and_gradients_as_keras(go_backwards, zero_output_for_mask, masked):
    theirs, ours = twin_layers(
        return_sequences=True, return_state=True, go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask
    )
    x, mask = inputs_and_mask()
    initial = tf.constant(np.random.default_rng(2).normal(size=(BATCH, UNITS)), tf.float32)
    kwargs = {"initial_state": initial, "mask": mask if masked else None}
    our_results, our_grads = results_and_gradients(ours, x, **kwargs)
    their_results, their_grads = results_and_gradients(theirs, x, **kwargs)
    assert_all_close(our_results, their_results)
    assert_all_close(our_grads, their_grads)


def test_bidirectional_encoder_with_padding_as_keras():
    theirs = keras.layers.Bidirectional(keras.layers.GRU(UNITS, return_sequences=True, return_state=True))
    ours = keras.layers.Bidirectional(GRU(UNITS, return_sequences=True, return_state=True))
    for layer in (theirs, ours):
        layer.build((None, None, INPUT))
    ours.set_weights(theirs.get_weights())
    x, mask = inputs_and_mask()
    our_results, our_grads = results_and_gradients(ours, x, mask=mask)
    their_results, their_grads = results_and_gradients(theirs, x, mask=mask)
    assert_all_close(our_results, their_results)
    assert_all_close(our_grads, their_grads)
    # Past a sentence's end, its outputs are zeros (Bidirectional asks for that).
    assert np.all(our_results[0].numpy()[~mask.numpy()] == 0.0)


def test_last_output_only_and_keras_fallback_agree_with_keras():
    x, _ = inputs_and_mask()
    for kwargs in ({}, {"reset_after": False}):  # reset_after=False runs Keras's own loop
        theirs, ours = twin_layers(**kwargs)
        np.testing.assert_allclose(ours(x).numpy(), theirs(x).numpy(), atol=1e-5)


def test_input_dropout_keeps_one_mask_per_sequence():
    # An input of ones through a zero kernel except for one input unit: each
    # sequence's dropout mask either keeps that unit at every step or drops it at every step.
    layer = GRU(UNITS, dropout=0.5, return_sequences=True, seed=3)
    layer.build((None, None, INPUT))
    kernel, recurrent, bias = layer.get_weights()
    kernel[:] = 0.0
    kernel[0, 2 * UNITS :] = 1.0  # only input unit 0 feeds h^
    layer.set_weights([kernel, np.zeros_like(recurrent), np.zeros_like(bias)])
    x = tf.ones((64, TIME, INPUT))
    dropped = layer(x, training=True).numpy()
    kept_first = dropped[:, 0, 0] != 0
    assert 0 < kept_first.sum() < 64
    for t in range(TIME):
        np.testing.assert_array_equal(dropped[:, t, 0] != 0, kept_first)
    np.testing.assert_allclose(layer(x, training=False).numpy(), twin_outputs(layer, x), atol=1e-6)


def twin_outputs(layer, x):
    theirs = keras.layers.GRU(UNITS, return_sequences=True)
    theirs.build((None, None, INPUT))
    theirs.set_weights(layer.get_weights())
    return theirs(x).numpy()


def test_config_round_trip_gives_our_class():
    layer = GRU(UNITS, return_sequences=True, go_backwards=True)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is GRU
    assert clone.go_backwards and clone.return_sequences
