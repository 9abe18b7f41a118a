"""The Bahdanau decoder's training loop as a compiled CPU kernel: built on first use, cached, optional.

``translate/bahdanau_kernel.cc`` holds two TensorFlow ops, the forward and
the backward loop of :func:`translate.bahdanau.attentive_recurrence`, each
step in one pass instead of some forty small ops. :func:`load` compiles it
with the flags TensorFlow reports (``tf.sysconfig``) and the C++ compiler
(``$CXX``, else ``c++``), caches the library under
``$XDG_CACHE_HOME/translate/kernels`` (else ``~/.cache/translate/kernels``)
keyed by the source, TensorFlow's version and the flags, and loads it with
``tf.load_op_library``. The cache file is written atomically, so two
processes building at once both end with a whole library.

It is a CPU accelerator, never a requirement: with a GPU visible, without a
compiler, or when the build fails, :func:`load` logs why once and returns None, and the decoder
runs the same loop as a ``tf.while_loop`` (the results agree to float
rounding: ``tests/test_bahdanau_kernel.py``). ``TRANSLATE_KERNELS=0`` in the
environment turns it off. Only training uses it: the exported SavedModel
decodes step by step with Keras layers and stock ops, so TF Serving never
needs this library. Why it exists, with the measurements:
docs/decisions/bahdanau-decoder.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import subprocess
import sysconfig
from pathlib import Path

import tensorflow as tf

from translate import atomic

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("bahdanau_kernel.cc")
ENV_SWITCH = "TRANSLATE_KERNELS"
# -O3 for the elementwise loops; -march=native because the library is built on the machine that runs it,
# but without AVX512-FP16, whose half-precision code in TensorFlow's copy of Eigen GCC 12 does not compile.
OPTIMIZATION = ["-O3", "-march=native", "-mno-avx512fp16", "-fPIC", "-shared"]

_loaded: dict[str, object] = {}


def cache_dir() -> Path:
    """Where built libraries are kept."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "translate" / "kernels"


def compiler_and_flags() -> tuple[list[str], list[str]]:
    """The compiler command (``$CXX``, else ``c++``; it may hold several words) and the build's flags."""
    flags = [*OPTIMIZATION, *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]
    return shlex.split(os.environ.get("CXX", "c++")), flags


def build_command(output: Path) -> list[str]:
    """The compiler command that builds :data:`SOURCE` into ``output``."""
    compiler, flags = compiler_and_flags()
    return [*compiler, str(SOURCE), "-o", str(output), *flags]


def library_path() -> Path:
    """The cached library's path: one per source text, TensorFlow version, compiler, flags and platform
    (not per checkout: two clones of one commit share it)."""
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    compiler, flags = compiler_and_flags()
    for part in (tf.version.VERSION, sysconfig.get_platform(), *compiler, *flags):
        key.update(part.encode())
    return cache_dir() / f"bahdanau_kernel-{key.hexdigest()[:16]}.so"


def build(path: Path) -> None:
    """Compiles the kernel to ``path`` atomically; ``RuntimeError`` with the compiler's message on failure."""
    atomic.make_folders(path.parent)
    with atomic.atomic_path(path) as tmp:
        try:
            result = subprocess.run(build_command(tmp), capture_output=True, text=True, check=False)
        except OSError as error:
            raise RuntimeError(f"no C++ compiler ({error})") from None
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            errors = [line for line in lines if ": error" in line] or lines or [f"exit status {result.returncode}"]
            raise RuntimeError(f"the compiler failed: {errors[0].strip()}")


def load():
    """The loaded op library (``translate_bahdanau_forward`` and ``..._backward``), or None.

    None when ``TRANSLATE_KERNELS=0``, when a GPU is visible (the kernel is CPU code: on a GPU the loop runs
    as TensorFlow ops there), or when building or loading failed (logged once, as a warning)."""
    if os.environ.get(ENV_SWITCH, "1") == "0" or tf.config.list_logical_devices("GPU"):
        return None
    if "library" in _loaded:
        return _loaded["library"]
    library = None
    try:
        path = library_path()
        if not path.exists():
            log.info("building the Bahdanau loop's kernel into %s (once per machine and version)", path)
            build(path)
        library = tf.load_op_library(str(path))
    except (RuntimeError, OSError, tf.errors.NotFoundError) as error:
        log.warning("the Bahdanau loop's compiled kernel is unavailable, using the tf.while_loop: %s", error)
    _loaded["library"] = library
    return library
