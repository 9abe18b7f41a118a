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
* ``align``: ``source_pieces [batch, S]``, ``target_pieces [batch, T]``, ``attention [batch, T, S]``;
* ``sample``, with the inputs ``temperature: tf.float32 [batch]`` and ``top_k: tf.int32 [batch]``
  too (one value per sentence, so TF Serving's batching can join requests; top_k 0: the whole
  vocabulary): ``translations [batch]``, ``scores [batch]``, one translation drawn per sentence
  (:func:`translate.search.sample_search`), scored by its log-probability.

Scores are log-probabilities divided by GNMT's length penalty. The beam width
K and alpha are fixed at export and recorded in ``assets/config.yaml``.

A version is written into a hidden temporary folder beside the versions,
fsynced and renamed into place, so TF Serving, which polls the model folder,
never sees a half-written version. The model name must be one safe folder
name (:func:`translate.versions.check_model_name`), checked before anything is
written.

The temporary folder is ``.export-<host>-<pid>-<8 hex digits>``: the machine
and the process that write it. An export killed before the rename (Ctrl-C
twice, SIGKILL, a power cut) leaves it behind; the next export into the same
model folder removes it when its writer is gone: same host, and
``os.kill(pid, 0)`` says no such process. A live writer's folder (another
export running now) is never touched, and neither is one from another host
(a models dir on a shared file system), whose processes this machine cannot
see; a reused pid only delays the cleaning. Owner liveness rather than age,
because an export of a large model can take long and two exports may run at
once. Folders left by older versions of this module (``.export-`` and 8
characters of :func:`tempfile.mkdtemp`, no owner in the name) are removed once
older than a day. Nothing else is touched, and a hidden name is never a
version (:func:`translate.versions.versions` counts only digit names).

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
import re
import secrets
import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf
import yaml

from translate import atomic
from translate.config import Config, save_config
from translate.inference import TranslationGraph
from translate.versions import SIGNATURE, check_model_name, versions

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
WARMUP_BATCHES = ((SIGNATURE, 1), (SIGNATURE, 4), ("nbest", 1), ("nbest", 2), ("align", 1), ("sample", 2))
# The sample signature's other inputs in its warm-up records, row i taking value i % 2:
# the whole vocabulary, and a top-k cut (the two branches of translate.search._keep_top_k).
WARMUP_SAMPLING = {"temperature": (tf.float32, (1.0, 1.0)), "top_k": (tf.int32, (0, 10))}


def _archive(graph: TranslationGraph) -> keras.export.ExportArchive:
    archive = keras.export.ExportArchive()
    # Every model and tokenizer resource the endpoint touches must be tracked (every member of an ensemble).
    for model in graph.keras_models:
        archive.track(model)
    archive.track(graph.src_tokenizer)
    archive.track(graph.tgt_tokenizer)
    archive.add_endpoint(SIGNATURE, graph.translate)
    archive.add_endpoint("nbest", graph.nbest)
    archive.add_endpoint("align", graph.align)
    archive.add_endpoint("sample", graph.sample)
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
        if signature == "sample":
            for name, (dtype, values) in WARMUP_SAMPLING.items():
                column = [values[i % len(values)] for i in range(batch)]
                request.inputs[name].CopyFrom(tf.make_tensor_proto(column, dtype=dtype, shape=[batch]))
        records.append(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            ).SerializeToString()
        )
    return records


def write_warmup(version_dir: Path, records: list[bytes]) -> Path:
    """Writes ``records`` as ``version_dir/assets.extra/tf_serving_warmup_requests`` (TFRecord, atomically)."""
    extra = Path(version_dir) / "assets.extra"
    extra.mkdir(exist_ok=True)
    path = extra / WARMUP_FILE
    with atomic.atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for record in records:
                writer.write(record)
    return path


TEMPORARY_PREFIX = ".export-"
# .export-<host>-<pid>-<8 hex digits>; the host may hold '-' itself.
_TEMPORARY = re.compile(r"\.export-(?P<host>[A-Za-z0-9._-]+)-(?P<pid>[0-9]{1,10})-[0-9a-f]{8}")
# What tempfile.mkdtemp(prefix=".export-") made before the owner was in the name.
_LEGACY_TEMPORARY = re.compile(r"\.export-[a-z0-9_]{8}")
LEGACY_MAX_AGE_S = 24 * 3600


def _host() -> str:
    """This machine's name as it goes into a temporary folder's name."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "localhost"


def _process_exists(pid: int) -> bool:
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate the process there: never clean
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: alive, another user's
        return True
    return True


def _is_stale(entry: Path, host: str, now: float) -> bool:
    match = _TEMPORARY.fullmatch(entry.name)
    if match:
        return match["host"] == host and not _process_exists(int(match["pid"]))
    if _LEGACY_TEMPORARY.fullmatch(entry.name):
        return now - entry.stat().st_mtime > LEGACY_MAX_AGE_S
    return False


def remove_stale_exports(model_dir: str | Path) -> list[Path]:
    """Removes the temporary folders of exports killed before their rename (module docstring); returns them."""
    model_dir = Path(model_dir)
    host, now, removed = _host(), time.time(), []
    if not model_dir.is_dir():
        return removed
    for entry in model_dir.iterdir():
        try:
            if entry.is_symlink() or not entry.is_dir() or not _is_stale(entry, host, now):
                continue
        except OSError:
            continue  # gone meanwhile: another export cleaned it
        shutil.rmtree(entry, ignore_errors=True)
        if entry.exists():
            log.warning("could not remove the stale export folder %s", entry)
        else:
            log.info("removed %s, left by an export that did not finish", entry)
            removed.append(entry)
    return removed


# An ensemble's record of its members (run folder and whole config each), in the export's assets.
ENSEMBLE_RECORD = "ensemble.yaml"


def _temporary_folder(model_dir: Path) -> Path:
    """A new, empty ``.export-<host>-<pid>-<hex>`` folder in ``model_dir``."""
    tmp = model_dir / f"{TEMPORARY_PREFIX}{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    return tmp


def export(
    graph: TranslationGraph,
    config: Config,
    src_model: bytes,
    tgt_model: bytes,
    models_dir: str | Path | None = None,
    name: str | None = None,
    warmup_sentences=WARMUP_SENTENCES,
    members: Sequence[tuple[str, Config]] = (),
) -> Path:
    """Writes the next version of ``models_dir/name`` and returns its path.

    ``warmup_sentences`` fill the warm-up records (see the module docstring).
    ``members`` (an ensemble's run folders and configs) are recorded in
    ``assets/ensemble.yaml``, beside ``config.yaml`` (the first member's
    config with the decoding settings in force).
    """
    name = check_model_name(name if name is not None else config.export.name, "export name")
    model_dir = Path(models_dir or config.export.models_dir) / name
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the model folder {model_dir}: {err.strerror or err}") from None
    remove_stale_exports(model_dir)
    tmp = _temporary_folder(model_dir)
    try:
        target = tmp / "model"
        _archive(graph).write_out(str(target), verbose=False)
        assets = target / "assets"
        assets.mkdir(exist_ok=True)
        atomic.write_bytes(assets / "src.model", src_model)
        atomic.write_bytes(assets / "tgt.model", tgt_model)
        save_config(config, assets / "config.yaml")
        if members:
            record = {"members": [{"run_dir": run_dir, "config": c.to_dict()} for run_dir, c in members]}
            atomic.write_text(assets / ENSEMBLE_RECORD, yaml.safe_dump(record, sort_keys=False, allow_unicode=True))
        write_warmup(target, warmup_requests(tuple(warmup_sentences)))
        atomic.fsync_tree(target)
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
        atomic.fsync_folder(model_dir)  # the rename itself survives a power cut
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s", destination)
    return destination
