"""Export: a versioned, string-in/string-out SavedModel for TensorFlow Serving.

Layout (the contract in docs/design.md)::

    saved_models/<name>/<version>/      version = 1, 2, 3, ... never overwritten
        saved_model.pb, variables/
        assets/src.model, assets/tgt.model, assets/config.yaml
        assets.extra/tf_serving_warmup_requests

Signatures (tag ``serve``, method ``tensorflow/serving/predict``), each with the
input ``sentences: tf.string [batch]``:

* ``serving_default``: ``translations: tf.string [batch]``, ``scores: tf.float32 [batch]``;
* ``nbest``: ``translations: tf.string [batch, K]``, ``scores: tf.float32 [batch, K]``;
* ``align``: ``source_pieces [batch, S]``, ``target_pieces [batch, T]``, ``attention [batch, T, S]``.

Scores are log-probabilities divided by GNMT's length penalty. The beam width
K and alpha are fixed at export and recorded in ``assets/config.yaml``.

A version is written into a hidden temporary folder beside the versions and
renamed into place, so TF Serving, which polls the model folder, never sees a
half-written version.

``assets.extra/tf_serving_warmup_requests`` is a TFRecord file of
``tensorflow.serving.PredictionLog`` records, one ``PredictRequest`` per
signature and batch size in ``WARMUP_BATCHES``. TF Serving replays them when
it loads a version, before the version is marked AVAILABLE, so the first real
request does not pay for graph optimization, the oneDNN kernel choice and
the SentencePiece model parse (seconds on CPU). A warm-up request that fails
makes TF Serving refuse the version, so every record must be valid for the
export: the tests run each one through the C++ loader and the stand-in
server.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from translate.config import Config, save_config
from translate.inference import TranslationGraph
from translate.layout import SIGNATURE, versions

log = logging.getLogger(__name__)

WARMUP_FILE = "tf_serving_warmup_requests"
# Realistic source sentences for the warm-up requests (the built-in corpus is
# English on the source side by default; any text works for any model, since
# SentencePiece with byte fallback never fails on input).
WARMUP_SENTENCES = (
    "In the beginning was the Word.",
    "Love your neighbor as yourself.",
    "Where are you going?",
    "The Lord is my shepherd; I shall not want.",
)
# (signature, batch size): a single sentence (the common request) and a small
# batch for every signature. TF Serving's batching merges requests, so the
# graph must have seen a batch > 1 too; each batch stays far under any
# sensible max_batch_size (a warm-up request over it fails the load).
WARMUP_BATCHES = ((SIGNATURE, 1), (SIGNATURE, 4), ("nbest", 1), ("nbest", 2), ("align", 1))


def _archive(graph: TranslationGraph) -> keras.export.ExportArchive:
    archive = keras.export.ExportArchive()
    # Every model and tokenizer resource the endpoint touches must be tracked.
    archive.track(graph.encoder)
    archive.track(graph.step)
    archive.track(graph.src_tokenizer)
    archive.track(graph.tgt_tokenizer)
    archive.add_endpoint(SIGNATURE, graph.translate)
    archive.add_endpoint("nbest", graph.nbest)
    archive.add_endpoint("align", graph.align)
    return archive


def warmup_requests(sentences=WARMUP_SENTENCES, batches=WARMUP_BATCHES) -> list[bytes]:
    """Serialized ``PredictionLog`` records (``predict_log.request`` only), one per ``batches`` entry.

    The model name is left empty: TF Serving ignores it in warm-up records,
    and the export does not know the name it will be served under.
    """
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    if not sentences:
        raise ValueError("warm-up needs at least one sentence")
    records = []
    for signature, batch in batches:
        rows = [sentences[i % len(sentences)] for i in range(batch)]
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = signature
        request.inputs["sentences"].CopyFrom(tf.make_tensor_proto(rows, dtype=tf.string, shape=[batch]))
        records.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())
    return records


def write_warmup(version_dir: Path, records: list[bytes]) -> Path:
    """Writes ``records`` as ``version_dir/assets.extra/tf_serving_warmup_requests`` (TFRecord)."""
    extra = Path(version_dir) / "assets.extra"
    extra.mkdir(exist_ok=True)
    path = extra / WARMUP_FILE
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


def export(graph: TranslationGraph, config: Config, src_model: bytes, tgt_model: bytes,
           models_dir: str | Path | None = None, name: str | None = None,
           warmup_sentences=WARMUP_SENTENCES) -> Path:
    """Writes the next version of ``models_dir/name`` and returns its path.

    ``warmup_sentences`` fill the warm-up records (see the module docstring).
    """
    model_dir = Path(models_dir or config.export.models_dir) / (name or config.export.name)
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=model_dir))
    try:
        target = tmp / "model"
        _archive(graph).write_out(str(target), verbose=False)
        assets = target / "assets"
        assets.mkdir(exist_ok=True)
        (assets / "src.model").write_bytes(src_model)
        (assets / "tgt.model").write_bytes(tgt_model)
        save_config(config, assets / "config.yaml")
        write_warmup(target, warmup_requests(tuple(warmup_sentences)))
        # Another exporter may take a number first: never overwrite, take the next.
        while True:
            version = (versions(model_dir) or [0])[-1] + 1
            destination = model_dir / str(version)
            try:
                os.rename(target, destination)
                break
            except OSError:
                if not destination.exists():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s", destination)
    return destination
