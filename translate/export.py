"""Export: a versioned, string-in/string-out SavedModel for TensorFlow Serving.

Layout (the contract in DESIGN.md)::

    saved_models/<name>/<version>/      version = 1, 2, 3, ... never overwritten
        saved_model.pb, variables/
        assets/src.model, assets/tgt.model, assets/config.yaml

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
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import keras

from translate.config import Config, save_config
from translate.inference import TranslationGraph
from translate.layout import SIGNATURE, versions

log = logging.getLogger(__name__)


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


def export(graph: TranslationGraph, config: Config, src_model: bytes, tgt_model: bytes,
           models_dir: str | Path | None = None, name: str | None = None) -> Path:
    """Writes the next version of ``models_dir/name`` and returns its path."""
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
