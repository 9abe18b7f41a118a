"""The export uses only core TensorFlow ops and TensorFlow Text ops (what TF Serving links)."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

from conftest import export_nodes

# Ops of tensorflow-text that TF Serving links since 2.20 and that we use.
TEXT_OPS = {
    "SentencepieceOp",
    "SentencepieceTokenizeOp",
    "SentencepieceDetokenizeOp",
    "SentencepieceIdToStringOp",
    "NormalizeUTF8",
}
# In the core registry, but they call back into Python: unservable.
FORBIDDEN = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def export_ops(export_dir: Path) -> set[str]:
    """Every op type in the SavedModel: the main graphs and every function in their libraries."""
    return {node.op for node in export_nodes(export_dir)}


@functools.cache  # a subprocess that imports TensorFlow: seconds each time
def core_tensorflow_ops() -> frozenset[str]:
    """Op names registered by TensorFlow alone, read in a process that never imports tensorflow_text."""
    code = "import json, tensorflow as tf; print(json.dumps([n for n in dir(tf.raw_ops) if not n.startswith('_')]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return frozenset(json.loads(out.stdout.strip().splitlines()[-1]))


def test_export_uses_only_core_and_text_ops(tiny_export):
    ops = export_ops(tiny_export)
    core = core_tensorflow_ops()
    assert "SentencepieceOp" not in core  # the subprocess really had no tensorflow_text
    unknown = sorted(op for op in ops if op not in core and op not in TEXT_OPS)
    assert unknown == [], f"ops outside core TensorFlow and TensorFlow Text: {unknown}"
    assert not ops & FORBIDDEN
    # The graph really does tokenize in-graph and loop in-graph.
    assert {"SentencepieceTokenizeOp", "SentencepieceDetokenizeOp"} <= ops
    assert "While" in ops or "StatelessWhile" in ops


def test_op_audit_catches_a_py_function(tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.f = tf.function(
        lambda x: tf.py_function(lambda v: v * 2, [x], tf.float32), input_signature=[tf.TensorSpec([None], tf.float32)]
    )
    tf.saved_model.save(module, str(tmp_path), signatures=module.f)
    assert export_ops(tmp_path) & FORBIDDEN
