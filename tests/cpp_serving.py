"""Run an exported SavedModel from C++, the way TensorFlow Serving loads it.

``tests/cpp/serve_savedmodel.cc`` is a small C++ program that loads custom op
libraries with ``TF_LoadLibrary``, loads a SavedModel with
``tensorflow::LoadSavedModel`` (tag ``serve``), looks up a SignatureDef and
runs it with ``Session::Run``: the same path TF Serving takes, with no Python
in the process. This module builds that program against the installed
TensorFlow wheel (its own ``libtensorflow_cc.so.2`` and headers) and runs it.

Not a test file: tests import it (``from cpp_serving import ...`` works
because pytest puts ``tests/`` on ``sys.path`` in its default rootdir-less
"prepend" import mode, and ``tests`` has no ``__init__.py``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "cpp" / "serve_savedmodel.cc"
BINARY_NAME = "serve_savedmodel"
CACHE_DIR = Path(tempfile.gettempdir()) / "translate-cpp-serving"
COMPILE_TIMEOUT_S = 600

# The tensorflow_text op libraries a translate export cannot do without:
# ``SentencepieceOp``/``SentencepieceTokenizeOp``/``SentencepieceDetokenizeOp``
# (tokenizer resource and kernels) and ``NormalizeUTF8`` (NFKC in
# ``clean_strings``). ``text_op_libraries()`` loads every tensorflow_text op
# library by default; this list is the proven minimum.
REQUIRED_TEXT_OP_LIBRARIES = ("_sentencepiece_tokenizer.so", "_normalize_ops.so")


def _tf_paths() -> tuple[str, Path, Path, list[str]]:
    """(TF version, wheel dir holding the .so files, include dir, compile flags)."""
    import tensorflow as tf

    lib_dir = Path(tf.sysconfig.get_lib())
    include_dir = Path(tf.sysconfig.get_include())
    flags = list(tf.sysconfig.get_compile_flags())
    return tf.__version__, lib_dir, include_dir, flags


def compile_command(output: Path) -> list[str]:
    """The g++ command line that builds ``SOURCE`` into ``output``."""
    _, lib_dir, include_dir, flags = _tf_paths()
    if f"-I{include_dir}" not in flags:
        flags.insert(0, f"-I{include_dir}")
    for lib in ("libtensorflow_cc.so.2", "libtensorflow_framework.so.2"):
        if not (lib_dir / lib).exists():
            raise FileNotFoundError(f"{lib} not found in the TensorFlow wheel at {lib_dir}")
    return [
        _compiler(),
        *flags,
        "-O1",
        # TF's headers are noisy under g++ 12 (deprecated tsl::mutex, Eigen's
        # hardware_destructive_interference_size); silence what is not ours.
        "-Wno-deprecated-declarations",
        "-Wno-interference-size",
        str(SOURCE),
        "-o",
        str(output),
        f"-L{lib_dir}",
        # Keep libtensorflow_cc.so.2 as a DT_NEEDED even if the linker thinks
        # no symbol of it is used: its static initializers register the CPU
        # kernels and the DirectSession factory.
        "-Wl,--no-as-needed",
        "-l:libtensorflow_cc.so.2",
        "-l:libtensorflow_framework.so.2",
        # Run without LD_LIBRARY_PATH.
        f"-Wl,-rpath,{lib_dir}",
    ]


def _compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++")
    if not cxx:
        raise FileNotFoundError("g++ not found (set CXX to use another C++17 compiler)")
    return cxx


def _cache_key() -> str:
    version, lib_dir, _, _ = _tf_paths()
    h = hashlib.sha256()
    h.update(SOURCE.read_bytes())
    h.update(f"\0tf={version}\0lib={lib_dir}\0".encode())
    # The flags and compiler are part of the binary too.
    h.update("\0".join(compile_command(Path("OUT"))).encode())
    return h.hexdigest()[:16]


def build_serving_binary(out_dir: Path | None = None) -> Path:
    """Compiles ``serve_savedmodel`` (once per source + TF version) and returns its path.

    The binary is ``out_dir / <hash> / serve_savedmodel``, the hash covering
    the C++ source, the TF version and wheel location, and the compile command,
    so a second call (or a second test run) reuses it. ``out_dir`` defaults to
    ``CACHE_DIR`` under the system temp dir, since compiling is slow and takes
    much memory. Concurrent builders are safe: each writes a private temp file and
    renames it into place.
    """
    out_dir = Path(out_dir) if out_dir is not None else CACHE_DIR
    target_dir = out_dir / _cache_key()
    binary = target_dir / BINARY_NAME
    if binary.exists() and os.access(binary, os.X_OK):
        log.info("reusing %s", binary)
        return binary
    target_dir.mkdir(parents=True, exist_ok=True)
    tmp = target_dir / f".{BINARY_NAME}.{os.getpid()}.tmp"
    cmd = compile_command(tmp)
    log.info("compiling: %s", " ".join(cmd))
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(
            f"compiling {SOURCE.name} failed (exit {proc.returncode}) after {elapsed:.1f}s\n"
            f"command: {' '.join(cmd)}\n{proc.stderr[-20000:]}"
        )
    os.replace(tmp, binary)
    log.info("compiled %s in %.1fs", binary, elapsed)
    return binary


def _text_ops_dir() -> Path:
    spec = importlib.util.find_spec("tensorflow_text")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("tensorflow_text is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "python" / "ops"


def text_op_libraries(minimal: bool = False) -> list[Path]:
    """The tensorflow_text op libraries to load before the SavedModel.

    By default every ``_*.so`` in ``tensorflow_text/python/ops``: that is the op
    registry the exporting Python process had (``import tensorflow_text``
    loads all of them), so the C++ side can run any tensorflow_text op an
    export may come to use; all of them load with ``TF_LoadLibrary`` and they
    cost well under a second. ``minimal=True`` gives only
    ``REQUIRED_TEXT_OP_LIBRARIES`` (SentencePiece + normalize_utf8).
    """
    ops_dir = _text_ops_dir()
    if minimal:
        libs = [ops_dir / name for name in REQUIRED_TEXT_OP_LIBRARIES]
    else:
        libs = sorted(ops_dir.glob("_*.so"))
    missing = [p for p in libs if not p.is_file()]
    required_missing = [n for n in REQUIRED_TEXT_OP_LIBRARIES if not (ops_dir / n).is_file()]
    if missing or required_missing:
        raise FileNotFoundError(f"tensorflow_text op libraries missing in {ops_dir}: {missing or required_missing}")
    return libs


def signature_output_dtypes(export_dir: Path, signature: str) -> list[tuple[str, int, int]]:
    """(output key, DataType enum, rank) of ``signature``, sorted by key as the binary prints them."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            if signature not in meta_graph.signature_def:
                raise KeyError(f"signature {signature!r} not in {sorted(meta_graph.signature_def)}")
            outputs = meta_graph.signature_def[signature].outputs
            return [(key, outputs[key].dtype, len(outputs[key].tensor_shape.dim)) for key in sorted(outputs)]
    raise KeyError(f"no 'serve' meta graph in {export_dir}")


def run_signature(
    binary: Path,
    export_dir: Path,
    signature: str,
    sentences: list[bytes],
    op_libraries: list[Path] | None = None,
    timeout: float = 300.0,
) -> list[list[str | float]]:
    """Runs ``signature`` of the SavedModel at ``export_dir`` in C++ on ``sentences``.

    Returns one row per sentence with the outputs in sorted output-key order:
    float outputs as ``float`` (6 decimals, as printed), string outputs as
    ``str`` decoded with UTF-8 and ``surrogateescape`` (so invalid bytes
    survive: ``s.encode("utf-8", "surrogateescape")`` gives the raw bytes);
    an output of rank > 1 as the flat list of the sentence's values.
    Raises ``RuntimeError`` with the program's stderr if it fails.

    Args:
        op_libraries: loaded first; defaults to ``text_op_libraries()``.
    """
    for s in sentences:
        if not isinstance(s, bytes):
            raise TypeError(f"sentences must be bytes, got {type(s).__name__}")
        if b"\n" in s:
            raise ValueError(f"a sentence cannot contain a newline (one sentence per line): {s!r}")
    if op_libraries is None:
        op_libraries = text_op_libraries()
    dtypes = signature_output_dtypes(export_dir, signature)
    cmd = [str(binary), str(export_dir), signature, *map(str, op_libraries)]
    stdin = b"".join(s + b"\n" for s in sentences)
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit {proc.returncode}:\n{stderr[-20000:]}")
    lines = proc.stdout.split(b"\n")
    if lines[-1] != b"":
        raise RuntimeError(f"output does not end with a newline: {proc.stdout[-200:]!r}\n{stderr[-5000:]}")
    lines = lines[:-1]
    if len(lines) != len(sentences):
        raise RuntimeError(
            f"expected {len(sentences)} rows, got {len(lines)} (an output containing a newline?)\n"
            f"stdout: {proc.stdout[:2000]!r}\nstderr: {stderr[-5000:]}"
        )
    return [_parse_row(line, dtypes) for line in lines]


def _parse_row(line: bytes, dtypes: list[tuple[str, int, int]]) -> list:
    """One output line of the binary -> its values (see :func:`run_signature`)."""
    from tensorflow.core.framework import types_pb2

    float_types = {types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE}
    fields = line.split(b"\t")
    if len(fields) != len(dtypes):
        raise RuntimeError(
            f"expected {len(dtypes)} fields {[k for k, _, _ in dtypes]}, got {len(fields)} "
            f"(an output containing a TAB?): {line!r}"
        )

    def value(raw: bytes, dtype: int):
        return float(raw) if dtype in float_types else raw.decode("utf-8", "surrogateescape")

    # Outputs of rank > 1 come as all of a sentence's values, 0x1F-separated, flattened.
    return [
        value(field, dtype) if rank <= 1 else [value(v, dtype) for v in field.split(b"\x1f")]
        for field, (_, dtype, rank) in zip(fields, dtypes)
    ]


def run_warmup(
    binary: Path, export_dir: Path, op_libraries: list[Path] | None = None, timeout: float = 300.0
) -> list[dict]:
    """Replays ``assets.extra/tf_serving_warmup_requests`` of the export in C++ (``--warmup``).

    Returns one dict per record: ``index``, ``signature``, ``batch`` and
    ``rows`` (as :func:`run_signature` gives them). Raises ``RuntimeError``
    with the program's stderr if a record fails to parse or to run.
    """
    if op_libraries is None:
        op_libraries = text_op_libraries()
    cmd = [str(binary), str(export_dir), "--warmup", *map(str, op_libraries)]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit {proc.returncode}:\n{stderr[-20000:]}")
    records: list[dict] = []
    for line in proc.stdout.split(b"\n")[:-1]:
        if line.startswith(b"#record\t"):
            _, index, signature, batch = line.decode().split("\t")
            records.append(
                {
                    "index": int(index),
                    "signature": signature,
                    "batch": int(batch),
                    "rows": [],
                    "dtypes": signature_output_dtypes(export_dir, signature),
                }
            )
        elif records:
            records[-1]["rows"].append(_parse_row(line, records[-1]["dtypes"]))
        else:
            raise RuntimeError(f"output before the first record header: {line[:200]!r}")
    for record in records:
        if len(record["rows"]) != record["batch"]:
            raise RuntimeError(f"record {record['index']}: {len(record['rows'])} rows for a batch of {record['batch']}")
        del record["dtypes"]
    return records


if __name__ == "__main__":  # Manual use: python tests/cpp_serving.py EXPORT_DIR [SIGNATURE] < sentences
    logging.basicConfig(level=logging.INFO)
    exe = build_serving_binary()
    sig = sys.argv[2] if len(sys.argv) > 2 else "serving_default"
    for row in run_signature(exe, Path(sys.argv[1]), sig, sys.stdin.buffer.read().splitlines()):
        fields = [f"{v:.6f}" if isinstance(v, float) else v for v in row]
        sys.stdout.buffer.write("\t".join(fields).encode("utf-8", "surrogateescape") + b"\n")
