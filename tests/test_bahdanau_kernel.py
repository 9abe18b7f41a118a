"""The compiled Bahdanau loop (translate/bahdanau_kernel.py): how it is built, cached, refused and switched off.

Its results against the tf.while_loop and autodiff of tf.scan are in tests/test_bahdanau.py (the ``kernel`` cases).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tensorflow as tf

from translate import bahdanau_kernel as module


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """load() as in a new process, with its cache in a temporary folder."""
    monkeypatch.setattr(module, "_loaded", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "translate" / "kernels"


def test_the_switch_turns_it_off_without_building(fresh, monkeypatch):
    monkeypatch.setenv(module.ENV_SWITCH, "0")
    assert module.load() is None
    assert not fresh.exists()


def test_a_visible_gpu_keeps_the_loop_in_tensorflow(fresh, monkeypatch):
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert module.load() is None
    assert not fresh.exists()


def test_a_failing_compiler_leaves_the_while_loop_and_no_file(fresh, monkeypatch, caplog):
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    with caplog.at_level(logging.WARNING, logger="translate.bahdanau_kernel"):
        assert module.load() is None
    assert "compiled kernel is unavailable" in caplog.text and "the compiler failed" in caplog.text
    assert list(fresh.iterdir()) == []  # the temporary library was removed, nothing half-written stays


def test_no_compiler_at_all_is_one_warning(fresh, monkeypatch, caplog):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with caplog.at_level(logging.WARNING, logger="translate.bahdanau_kernel"):
        assert module.load() is None
    assert "no C++ compiler" in caplog.text


def test_the_cache_key_follows_the_source_and_the_compiler_not_the_checkout(monkeypatch, tmp_path):
    first = module.library_path()
    assert first.name.startswith("bahdanau_kernel-") and first.suffix == ".so"
    monkeypatch.setenv("CXX", "ccache g++")
    assert module.library_path() != first
    assert module.build_command(tmp_path / "k.so")[:3] == ["ccache", "g++", str(module.SOURCE)]
    monkeypatch.delenv("CXX")
    # The same source in another clone: the same library.
    copy = tmp_path / "clone" / "bahdanau_kernel.cc"
    copy.parent.mkdir()
    copy.write_bytes(module.SOURCE.read_bytes())
    monkeypatch.setattr(module, "SOURCE", copy)
    assert module.library_path() == first


def test_shapes_that_do_not_fit_are_refused_with_a_message(bahdanau_kernel):
    T, B, U, A, S, M = 2, 3, 4, 5, 6, 7
    zeros = tf.zeros
    with pytest.raises(tf.errors.InvalidArgumentError, match="gates must be 3 times the units"):
        bahdanau_kernel.translate_bahdanau_forward(
            zeros([T, B, 4 * U]), zeros([B, U]), zeros([B, U]), zeros([U, 4 * U + A]), zeros([M, 4 * U]),
            zeros([U]), zeros([A]), zeros([B, S, M]), zeros([B, S, A]), tf.ones([B, S], tf.bool), zeros([]),
            gru=True, has_offsets=False,
        )  # fmt: skip


def test_a_sentence_without_source_positions_attends_uniformly(bahdanau_kernel):
    """As the while loop's softmax of tf.where(mask, scores, lowest): all-padding rows get 1 / src_len."""
    T, B, U, A, S, M = 2, 2, 3, 4, 5, 6
    rng = np.random.default_rng(0)

    def normal(*shape):
        return tf.constant(rng.normal(size=shape), tf.float32)

    mask = tf.constant([[True, True, False, False, False], [False] * S])
    outputs = bahdanau_kernel.translate_bahdanau_forward(
        normal(T, B, 3 * U), normal(B, U), normal(B, U), normal(U, 3 * U + A), normal(M, 3 * U), normal(U),
        normal(A), normal(B, S, M), normal(B, S, A), mask, tf.zeros([]), gru=True, has_offsets=False,
    )  # fmt: skip
    weights = outputs[3].numpy()
    assert weights.shape == (T, B, S)
    np.testing.assert_allclose(weights[:, 1], 1 / S, rtol=1e-6)
    assert np.all(weights[:, 0, 2:] == 0) and np.allclose(weights[:, 0].sum(-1), 1, atol=1e-6)


@pytest.mark.parametrize("gru", [True, False], ids=["gru", "lstm"])
def test_bf16_matmuls_run_on_amx_where_the_cpu_has_it(bahdanau_kernel, gru):
    """bf16_matmuls (what mixed precision asks for): on a CPU with AMX the four weight matmuls multiply
    bfloat16 roundings, so forward and backward move by bfloat16 rounding and no more; elsewhere nothing changes.
    Sizes past one tile: 19 sentences (a block of 16 and 3), 40 units (whole tiles of 16 columns and a rest)."""
    from translate.precision import cpu_flags

    T, B, U, A, S, M = 3, 19, 40, 20, 7, 40
    G = (3 if gru else 4) * U
    rng = np.random.default_rng(0)

    def normal(*shape, scale=1.0):
        return tf.constant(scale * rng.normal(size=shape), tf.float32)

    mask = tf.constant(np.arange(S)[None, :] < rng.integers(1, S + 1, size=B)[:, None])
    inputs = [
        normal(T, B, G), normal(B, U), normal(B, U), normal(U, G + A, scale=0.3), normal(M, G, scale=0.3),
        normal(U), normal(A), normal(B, S, M), normal(B, S, A), mask, tf.zeros([]),
    ]  # fmt: skip
    gradients = [normal(T, B, U), normal(T, B, M), normal(T, B, S), normal(B, U), normal(B, U)]

    def run(tiles):
        forward = bahdanau_kernel.translate_bahdanau_forward(*inputs, gru=gru, has_offsets=False, bf16_matmuls=tiles)
        states, cells, contexts, weights, saved, queries = forward
        backward = bahdanau_kernel.translate_bahdanau_backward(
            *gradients, saved, queries, weights, inputs[7], inputs[8], inputs[6], inputs[3], inputs[4], mask,
            states, cells, inputs[1], inputs[2], gru=gru, bf16_matmuls=tiles,
        )  # fmt: skip
        return [x.numpy() for x in (*forward, *backward)]

    exact, tiled = run(False), run(True)
    if "amx_bf16" not in cpu_flags():
        for a, b in zip(exact, tiled):
            np.testing.assert_array_equal(a, b)
        return
    assert any(not np.array_equal(a, b) for a, b in zip(exact, tiled))  # the tiles ran
    for a, b in zip(exact, tiled):
        np.testing.assert_allclose(b, a, atol=0.03 * max(1.0, float(np.abs(a).max())))
