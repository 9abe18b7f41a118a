"""Which dtype policy training runs in: ``train.precision`` (``auto``, ``float32``, ``mixed_bfloat16``).

``mixed_bfloat16`` computes in bfloat16 and keeps float32 weights, logits
and loss (Keras's mixed precision policy; Micikevicius et al. 2018 describe
the float32 master weights). It pays only where the hardware multiplies
bfloat16 matrices natively: an x86 CPU with AMX (Intel Sapphire Rapids and
later; the flag ``amx_bf16``) or a GPU of compute capability 8.0 or newer.
Elsewhere bfloat16 is emulated and slower than float32, so ``auto``, the
default, chooses ``mixed_bfloat16`` on such hardware and ``float32``
otherwise. On the project's AMX machine the quick preset's Bahdanau step
took 47.3 ms in mixed bfloat16 against 60.8 in float32, one core
(benchmarks/results/attention_speed_gru_bf16.json), and learned as much in
15 minutes (benchmarks/results/quality_precision.json;
docs/decisions/precision-and-xla.md). Only training is affected:
evaluation and exports rebuild the model in float32 and load the trained
weights.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import tensorflow as tf

log = logging.getLogger(__name__)

AUTO = "auto"
CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (``/proc/cpuinfo``); empty where it cannot be read."""
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def native_bfloat16() -> str | None:
    """Why this machine multiplies bfloat16 natively (a phrase for the log), or None where it does not.

    With a GPU visible the model trains there, so the GPU decides; otherwise the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability") or (0, 0)
        if tuple(capability) >= (8, 0):
            return f"the GPU has compute capability {capability[0]}.{capability[1]}"
        return None
    if "amx_bf16" in cpu_flags():
        return "this CPU has AMX"
    return None


def resolve(setting: str) -> str:
    """The Keras dtype policy for ``train.precision``: ``auto`` becomes ``mixed_bfloat16`` where
    :func:`native_bfloat16` finds hardware for it, else ``float32``; the others stay as they are."""
    if setting != AUTO:
        return setting
    why = native_bfloat16()
    policy = "mixed_bfloat16" if why else "float32"
    log.info("train.precision auto: %s (%s)", policy, why or "no native bfloat16 matmuls here")
    return policy
