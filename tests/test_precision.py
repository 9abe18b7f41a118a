"""train.precision: auto picks mixed bfloat16 only where the hardware multiplies bfloat16 natively."""

from __future__ import annotations

import logging

import pytest
import tensorflow as tf

from translate import precision


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """A CPU whose /proc/cpuinfo says what the test writes, and no GPU."""
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    precision.cpu_flags.cache_clear()
    yield lambda flags: monkeypatch.setattr(precision, "CPUINFO", _cpuinfo(tmp_path, flags))
    precision.cpu_flags.cache_clear()


def _cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: A CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n", encoding="utf-8")
    return path


def test_explicit_settings_are_kept():
    assert precision.resolve("float32") == "float32"
    assert precision.resolve("mixed_bfloat16") == "mixed_bfloat16"


def test_auto_on_a_cpu_with_amx_trains_in_mixed_bfloat16(cpu, caplog):
    cpu("fpu sse avx512f avx512_bf16 amx_bf16 amx_tile")
    with caplog.at_level(logging.INFO, logger="translate.precision"):
        assert precision.resolve("auto") == "mixed_bfloat16"
    assert "this CPU has AMX" in caplog.text


def test_auto_without_amx_stays_in_float32(cpu):
    cpu("fpu sse avx2 avx512f avx512_bf16")  # bfloat16 dot products, but no AMX tiles
    assert precision.resolve("auto") == "float32"


def test_an_unreadable_cpuinfo_means_float32(cpu, monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "missing")
    assert precision.cpu_flags() == frozenset()
    assert precision.resolve("auto") == "float32"


@pytest.mark.parametrize(
    "capability,expected", [((7, 5), "float32"), ((8, 0), "mixed_bfloat16"), ((9, 0), "mixed_bfloat16")]
)
def test_with_a_gpu_its_compute_capability_decides(cpu, monkeypatch, capability, expected):
    cpu("amx_bf16")  # the CPU's flags no longer matter
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: {"compute_capability": capability})
    assert precision.resolve("auto") == expected
