"""The SavedModel contract: versions, atomic writes, the serving signature, assets."""

from __future__ import annotations

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from translate.export import export
from translate.layout import versions


def test_signature_contract(tiny_export):
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((tiny_export / "saved_model.pb").read_bytes())
    (meta_graph,) = saved_model.meta_graphs
    assert list(meta_graph.meta_info_def.tags) == ["serve"]
    signature = meta_graph.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert set(signature.inputs) == {"sentences"}
    assert signature.inputs["sentences"].dtype == tf.string.as_datatype_enum
    assert [d.size for d in signature.inputs["sentences"].tensor_shape.dim] == [-1]
    assert set(signature.outputs) == {"translations", "scores"}
    assert signature.outputs["translations"].dtype == tf.string.as_datatype_enum
    assert signature.outputs["scores"].dtype == tf.float32.as_datatype_enum
    for output in signature.outputs.values():
        assert [d.size for d in output.tensor_shape.dim] == [-1]


def test_assets_hold_the_sentencepiece_models_and_the_config(tiny_run, tiny_export):
    assets = tiny_export / "assets"
    assert (assets / "src.model").read_bytes() == tiny_run.src_model
    assert (assets / "tgt.model").read_bytes() == tiny_run.tgt_model
    assert "max_length_cap" in (assets / "config.yaml").read_text(encoding="utf-8")


def test_versions_are_consecutive_and_never_overwritten(tiny_run, tmp_path):
    first = export(tiny_run.graph, tiny_run.config, tiny_run.src_model, tiny_run.tgt_model, tmp_path, "m")
    marker = first / "assets" / "marker"
    marker.write_text("version one", encoding="utf-8")
    second = export(tiny_run.graph, tiny_run.config, tiny_run.src_model, tiny_run.tgt_model, tmp_path, "m")
    assert (first.name, second.name) == ("1", "2")
    assert marker.read_text(encoding="utf-8") == "version one"
    assert versions(tmp_path / "m") == [1, 2]
    # Nothing half-written is left beside the versions.
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]
