"""A TensorFlow-Serving-compatible stand-in, for tests only.

The real ``tensorflow_model_server`` ships as a Docker image and cannot run
on the test machines. This stand-in serves an export the way it would, as
far as a client can see:

* it loads every served version with ``tf.saved_model.load`` and replays the
  version's ``assets.extra/tf_serving_warmup_requests`` before the version
  counts as AVAILABLE (a failing record fails the load, as in TF Serving);
* REST (TF Serving's ``http_rest_api_handler`` and ``json_tensor`` rules):
  ``GET /v1/models/NAME[/versions/N|/labels/L]``, ``GET .../metadata``,
  ``POST ...:predict`` with the row (``instances``) and the columnar
  (``inputs``) formats, replies ``{"predictions": ...}`` / ``{"outputs": ...}``,
  errors ``{"error": "..."}`` with TF Serving's gRPC-code -> HTTP-status map;
  ``GET /monitoring/prometheus/metrics`` when monitoring is on;
* gRPC: ``PredictionService/Predict``, ``PredictionService/GetModelMetadata``
  and ``ModelService/GetModelStatus`` through the ``tensorflow_serving.apis``
  servicers, errors as gRPC status codes with TF Serving's messages;
* server-side batching like ``--enable_batching``: concurrent requests for
  one signature are merged into one batch of at most ``max_batch_size`` rows
  (waiting at most ``batch_timeout_micros``), run once and split again; a
  request over ``max_batch_size`` is refused with TF Serving's message.

Error texts follow TF Serving's source (``predict_util.cc``,
``json_tensor.cc``, ``http_rest_api_handler.cc``, ``shared_batch_scheduler.h``);
where a message comes from TensorFlow itself (a wrong input dtype) the
stand-in checks the same thing first and words it as TensorFlow does.

Part of :mod:`translate.testing`: the tests, notebook 03 and the ``serving``
and ``soak`` benchmarks (``benchmarks/serving.py``) import it as
``translate.testing.serving_standin`` (it imports TensorFlow; ``import
translate`` and ``import translate.testing`` do not).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)
from google.protobuf import json_format, text_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
WARMUP = Path("assets.extra") / "tf_serving_warmup_requests"
# tensorflow_serving/model_servers/http_server.cc: ToHTTPStatusCode.
HTTP_STATUS = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ServingStatus(Exception):
    """A non-OK status: a gRPC code name and TF Serving's message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def dtype_string(dtype: int) -> str:
    """TensorFlow's DataTypeString: DT_FLOAT -> "float", DT_STRING -> "string"."""
    return types_pb2.DataType.Name(dtype)[3:].lower()


def _model_spec(name: str, version: str | None, label: str | None):
    """The ``ModelSpec`` that a REST path names (``/versions/N`` or ``/labels/L`` optional)."""
    spec = predict_pb2.PredictRequest().model_spec
    spec.name = name
    if version:
        spec.version.value = int(version)
    if label:
        spec.version_label = label
    return spec


def invalid(message: str) -> ServingStatus:
    return ServingStatus("INVALID_ARGUMENT", message)


@dataclass
class Version:
    number: int
    path: Path
    loaded: object
    signature_defs: dict  # name -> SignatureDef proto (what GetModelMetadata returns)
    warmup_replayed: int = 0


@dataclass
class Model:
    name: str
    versions: dict[int, Version] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)


def _signature_defs(version_dir: Path) -> dict:
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            # TF Serving hides the internal restore signature from clients.
            return {k: v for k, v in meta_graph.signature_def.items() if k != "__saved_model_init_op"}
    raise ValueError(f"no 'serve' meta graph in {version_dir}")


def _rows(inputs: dict[str, tf.Tensor]) -> int:
    """The rows of a task (every input has them: checked when the request came)."""
    return int(next(iter(inputs.values())).shape[0])


class _Batcher:
    """Merges concurrent requests for one signature, like TF Serving's BatchingSession.

    Each task is a dict of the signature's inputs, each ``[n]`` (``sentences``, and the
    ``sample`` signature's per-sentence settings); ``num_threads`` workers each take
    the oldest task, add queued tasks while the rows fit ``max_batch_size``
    and ``timeout_s`` has not passed, run the signature once and hand every
    task its rows of every output.
    """

    def __init__(self, function, max_batch_size: int, timeout_s: float, num_threads: int, max_enqueued: int):
        self.function, self.max_batch_size, self.timeout_s = function, max_batch_size, timeout_s
        self.max_rows_queued = max_enqueued * max_batch_size
        self.queue: list[tuple[dict[str, tf.Tensor], futures.Future]] = []
        self.cond = threading.Condition()
        self.closed = False
        self.batch_sizes: list[int] = []  # for tests: that merging happened
        self.threads = [threading.Thread(target=self._work, daemon=True, name=f"batch-{i}") for i in range(num_threads)]
        for thread in self.threads:
            thread.start()

    def submit(self, inputs: dict[str, tf.Tensor]) -> dict:
        rows = _rows(inputs)
        if rows > self.max_batch_size:
            raise invalid(f"Task size {rows} is larger than maximum input batch size {self.max_batch_size}")
        future: futures.Future = futures.Future()
        with self.cond:
            if sum(_rows(t) for t, _ in self.queue) + rows > self.max_rows_queued:
                raise ServingStatus(
                    "UNAVAILABLE", "The batch scheduling queue to which this task was submitted is full"
                )
            self.queue.append((inputs, future))
            self.cond.notify()
        return future.result()

    def _take(self) -> list[tuple[dict[str, tf.Tensor], futures.Future]] | None:
        with self.cond:
            while not self.queue and not self.closed:
                self.cond.wait()
            if self.closed:
                return None
            deadline = time.monotonic() + self.timeout_s
            batch = [self.queue.pop(0)]
            rows = _rows(batch[0][0])
            while rows < self.max_batch_size:
                if self.queue and rows + _rows(self.queue[0][0]) <= self.max_batch_size:
                    task = self.queue.pop(0)
                    batch.append(task)
                    rows += _rows(task[0])
                    continue
                if self.queue:  # the next task does not fit: close this batch
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            sizes = [_rows(t) for t, _ in batch]
            self.batch_sizes.append(sum(sizes))
            try:
                outputs = self.function(**{key: tf.concat([t[key] for t, _ in batch], axis=0) for key in batch[0][0]})
                start = 0
                for size, (_, future) in zip(sizes, batch):
                    future.set_result({k: v[start : start + size] for k, v in outputs.items()})
                    start += size
            except Exception as err:  # noqa: BLE001 - every waiting request must get an answer
                status = (
                    err
                    if isinstance(err, ServingStatus)
                    else ServingStatus(
                        "INVALID_ARGUMENT" if isinstance(err, tf.errors.InvalidArgumentError) else "INTERNAL", str(err)
                    )
                )
                for _, future in batch:
                    future.set_exception(status)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


@dataclass
class BatchingOptions:
    max_batch_size: int = 32
    batch_timeout_micros: int = 5000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 8

    @classmethod
    def from_file(cls, path: str | Path) -> BatchingOptions:
        """Reads the fields of a ``batching_parameters.txt`` (``name { value: N }`` lines)."""
        values = dict(re.findall(r"^\s*(\w+)\s*\{\s*value:\s*(\d+)\s*\}", Path(path).read_text(encoding="utf-8"), re.M))
        known = {k: int(v) for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class StandIn:
    """Serves models like ``tensorflow_model_server`` on 127.0.0.1 (free ports unless given).

    Args:
        models: ``{name: base_path}``; the newest version of each is served.
        model_config_file: a ``models.config`` instead (version policy and
            labels honoured, as ``--model_config_file``).
        batching: server-side batching (``--enable_batching``); None: off.
        monitoring: serve Prometheus text at ``/monitoring/prometheus/metrics``.
    """

    def __init__(
        self,
        models: dict[str, str | Path] | None = None,
        model_config_file: str | Path | None = None,
        batching: BatchingOptions | None = None,
        monitoring: bool = True,
        rest_port: int = 0,
        grpc_port: int = 0,
    ):
        self.batching, self.monitoring = batching, monitoring
        self.models: dict[str, Model] = {}
        self.request_counts: dict[tuple[str, str], int] = {}
        self._counts_lock = threading.Lock()
        self._batchers: dict[tuple[str, int, str], _Batcher] = {}
        self._batchers_lock = threading.Lock()
        configs = self._configs(models, model_config_file)
        for config in configs:
            self._load(config)
        self._rest_port, self._grpc_port = rest_port, grpc_port
        self.http: ThreadingHTTPServer | None = None
        self.grpc_server = None

    # -- loading --------------------------------------------------------------

    @staticmethod
    def _configs(models, model_config_file) -> list:
        if model_config_file is not None:
            server_config = text_format.Parse(
                Path(model_config_file).read_text(encoding="utf-8"), model_server_config_pb2.ModelServerConfig()
            )
            return list(server_config.model_config_list.config)
        configs = []
        for name, base_path in (models or {}).items():
            config = model_server_config_pb2.ModelConfig(
                name=name, base_path=str(Path(base_path).resolve()), model_platform="tensorflow"
            )
            config.model_version_policy.latest.num_versions = 1
            configs.append(config)
        if not configs:
            raise ValueError("nothing to serve: give models or a model_config_file")
        return configs

    def _load(self, config) -> None:
        base = Path(config.base_path)
        present = (
            sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()) if base.is_dir() else []
        )
        policy = config.model_version_policy.WhichOneof("policy_choice") or "latest"
        if policy == "specific":
            wanted = sorted(config.model_version_policy.specific.versions)
        elif policy == "all":
            wanted = present
        else:
            wanted = present[-max(1, config.model_version_policy.latest.num_versions) :]
        missing = [v for v in wanted if v not in present]
        if not present or missing:
            raise ValueError(f"model {config.name}: no version {missing or ''} under {base}")
        model = Model(config.name)
        for number in wanted:
            path = base / str(number)
            version = Version(number, path, tf.saved_model.load(str(path)), _signature_defs(path))
            model.versions[number] = version
            version.warmup_replayed = self._warm_up(model, version)
        for label, number in config.version_labels.items():
            if number not in model.versions:
                raise ValueError(f"model {config.name}: label {label} names version {number}, which is not loaded")
            model.labels[label] = number
        self.models[config.name] = model
        log.info("serving %s versions %s", config.name, sorted(model.versions))

    def _warm_up(self, model: Model, version: Version) -> int:
        """Replays the version's warm-up records; any failure fails the load, as in TF Serving."""
        path = version.path / WARMUP
        if not path.is_file():
            return 0
        count = 0
        for raw in tf.data.TFRecordDataset(str(path)):
            record = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
            if record.WhichOneof("log_type") != "predict_log":
                raise ValueError(
                    f"{path}: warm-up record {count} is {record.WhichOneof('log_type')}, only predict_log is supported"
                )
            try:
                self._run(model, version, record.predict_log.request, batched=False)
            except ServingStatus as err:
                raise ValueError(f"{path}: warm-up record {count} failed: {err.code}: {err.message}") from None
            count += 1
        return count

    # -- the predict path, shared by REST, gRPC and warm-up ----------------------

    def _resolve(self, spec) -> tuple[Model, Version]:
        model = self.models.get(spec.name)
        if model is None:
            raise ServingStatus("NOT_FOUND", f"Servable not found for request: Latest({spec.name})")
        if spec.HasField("version"):
            number = spec.version.value
            if number not in model.versions:
                raise ServingStatus("NOT_FOUND", f"Servable not found for request: Specific({spec.name}, {number})")
        elif spec.version_label:
            if spec.version_label not in model.labels:
                raise ServingStatus("INVALID_ARGUMENT", f"Unrecognized servable version label: {spec.version_label}")
            number = model.labels[spec.version_label]
        else:
            number = max(model.versions)
        return model, model.versions[number]

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        model, version = self._resolve(request.model_spec)
        return self._run(model, version, request, batched=self.batching is not None)

    def _run(self, model: Model, version: Version, request, batched: bool) -> predict_pb2.PredictResponse:
        name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = version.signature_defs.get(name)
        if signature is None:
            raise ServingStatus("FAILED_PRECONDITION", f'Serving signature key "{name}" not found.')
        request_inputs, signature_inputs = set(request.inputs), set(signature.inputs)
        if len(request_inputs) != len(signature_inputs):
            raise invalid(
                f"input size does not match signature: {len(request_inputs)}!={len(signature_inputs)} "
                f"len({{{','.join(sorted(request_inputs))}}}) != len({{{','.join(sorted(signature_inputs))}}}). "
                f"Sent extra: {{{','.join(sorted(request_inputs - signature_inputs))}}}. "
                f"Missing but required: {{{','.join(sorted(signature_inputs - request_inputs))}}}."
            )
        for alias in sorted(request_inputs - signature_inputs):
            raise invalid(
                f"input tensor alias not found in signature: {alias}. Inputs expected to be in the set "
                f"{{{','.join(sorted(signature_inputs))}}}."
            )
        for alias in request.output_filter:
            if alias not in signature.outputs:
                raise invalid(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in "
                    f"the set {{{','.join(sorted(signature.outputs))}}}."
                )
        inputs = {}
        # sentences first (arg[0]), then the sample signature's per-sentence settings.
        for index, alias in enumerate(sorted(signature.inputs, key=lambda a: (a != "sentences", a))):
            proto, expected = request.inputs[alias], signature.inputs[alias].dtype
            if proto.dtype != expected:
                raise invalid(
                    f"Expects arg[{index}] to be {dtype_string(expected)} but {dtype_string(proto.dtype)} is provided"
                )
            try:
                array = tf.make_ndarray(proto)
            except (TypeError, ValueError) as err:
                raise invalid(f"Cannot parse tensor from proto: {err}") from None
            if array.ndim != 1:
                kind = "vector of strings" if alias == "sentences" else "vector"
                raise invalid(f"input '{alias}' must be a {kind} [batch], got shape {list(array.shape)}")
            inputs[alias] = tf.constant(array, dtype=tf.as_dtype(expected))
        if len({int(t.shape[0]) for t in inputs.values()}) > 1:
            raise invalid("Batching Run() input tensors must have equal 0th-dimension size")
        function = version.loaded.signatures[name]
        if batched:
            outputs = self._batcher(model.name, version, name, function).submit(inputs)
        else:
            try:
                outputs = function(**inputs)
            except tf.errors.InvalidArgumentError as err:
                raise invalid(err.message) from None
        response = predict_pb2.PredictResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = version.number
        response.model_spec.signature_name = name
        wanted = list(request.output_filter) or sorted(outputs)
        for key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key].numpy()))
        return response

    def _batcher(self, model_name: str, version: Version, signature: str, function) -> _Batcher:
        key = (model_name, version.number, signature)
        with self._batchers_lock:
            if key not in self._batchers:
                b = self.batching
                self._batchers[key] = _Batcher(
                    function,
                    b.max_batch_size,
                    b.batch_timeout_micros / 1e6,
                    b.num_batch_threads,
                    b.max_enqueued_batches,
                )
            return self._batchers[key]

    def batch_sizes(self) -> list[int]:
        """Rows of every merged batch run so far (all signatures)."""
        return [size for batcher in self._batchers.values() for size in batcher.batch_sizes]

    def status(self, spec) -> get_model_status_pb2.GetModelStatusResponse:
        model = self.models.get(spec.name)
        if model is None:
            raise ServingStatus("NOT_FOUND", f"Could not find any versions of model {spec.name}")
        if spec.HasField("version") and spec.version.value not in model.versions:
            raise ServingStatus("NOT_FOUND", f"Could not find version {spec.version.value} of model {spec.name}")
        numbers = [spec.version.value] if spec.HasField("version") else sorted(model.versions, reverse=True)
        if spec.version_label:
            numbers = [self._resolve(spec)[1].number]
        response = get_model_status_pb2.GetModelStatusResponse()
        for number in numbers:
            entry = response.model_version_status.add(
                version=number, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE
            )
            entry.status.SetInParent()
        return response

    def metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest):
        if not request.metadata_field:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field_name in request.metadata_field:
            if field_name != "signature_def":
                raise invalid(f"Metadata field {field_name} is not supported")
        model, version = self._resolve(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = version.number
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in version.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(signature_map)
        return response, signature_map

    def count(self, api: str, code: str) -> None:
        with self._counts_lock:
            self.request_counts[(api, code)] = self.request_counts.get((api, code), 0) + 1

    # -- servers ----------------------------------------------------------------

    def start(self) -> StandIn:
        self.http = ThreadingHTTPServer(("127.0.0.1", self._rest_port), _rest_handler(self))
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True, name="standin-rest").start()
        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="standin-grpc"))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionServicer(self), self.grpc_server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(self), self.grpc_server)
        self._grpc_port = self.grpc_server.add_insecure_port(f"127.0.0.1:{self._grpc_port}")
        self.grpc_server.start()
        log.info("stand-in REST on 127.0.0.1:%d, gRPC on 127.0.0.1:%d", self.rest_port, self.grpc_port)
        return self

    @property
    def rest_port(self) -> int:
        return self.http.server_address[1]

    @property
    def grpc_port(self) -> int:
        return self._grpc_port

    def stop(self) -> None:
        if self.http:
            self.http.shutdown()
            self.http.server_close()
        if self.grpc_server:
            self.grpc_server.stop(grace=1).wait(5)
        for batcher in self._batchers.values():
            batcher.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# -- REST --------------------------------------------------------------------------

PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.I)
STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(/metadata)?", re.I)


def _json_value(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _tensor_from_json(value, dtype: int):
    """A JSON value -> a flat list of Python values and its shape, with json_tensor.cc's checks."""
    shape, probe = [], value
    while isinstance(probe, list):
        shape.append(len(probe))
        probe = probe[0] if probe else None
    flat: list = []

    def walk(v, level):
        if isinstance(v, list):
            if level >= len(shape):
                raise invalid(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
            if len(v) != shape[level]:
                raise invalid(
                    f"Encountered list at unexpected size: {len(v)} at level: {level} expected size: {shape[level]}"
                )
            for item in v:
                walk(item, level + 1)
            return
        if level != len(shape):
            raise invalid(
                f"JSON Value: {_json_value(v)} found at incorrect level: {level + 1} in the JSON DOM. "
                f"Expected at level: {len(shape)}"
            )
        if dtype == types_pb2.DT_STRING:
            if isinstance(v, dict) and set(v) == {"b64"} and isinstance(v["b64"], str):
                try:
                    flat.append(base64.b64decode(v["b64"], validate=True))
                except ValueError:
                    raise invalid("Unable to base64 decode") from None
                return
            if isinstance(v, str):
                flat.append(v.encode("utf-8"))
                return
        type_name = {
            dict: "Object",
            list: "Array",
            str: "String",
            bool: "True" if v is True else "False",
            type(None): "Null",
        }.get(type(v), "Number")
        raise invalid(f"JSON Value: {_json_value(v)} Type: {type_name} is not of expected type: {dtype_string(dtype)}")

    walk(value, 0)
    return flat, shape


def _proto(flat: list, shape: list[int], dtype: int):
    return tf.make_tensor_proto(
        np.array(flat, dtype=object).reshape(shape), dtype=tf.dtypes.as_dtype(dtype), shape=shape
    )


def predict_request_from_json(body: bytes, signature_defs: dict, model_name: str):
    """TF Serving's FillPredictRequestFromJson: the request and its format ("row" or "columnar")."""
    if not body:
        raise invalid("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise invalid(f"JSON Parse error: {err}") from None
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {_json_value(doc)} Is not object")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    if "signature_name" in doc:
        if not isinstance(doc["signature_name"], str):
            raise invalid(
                f"JSON Value: {_json_value(doc)} not formatted correctly. 'signature_name' key must be a string value."
            )
        request.model_spec.signature_name = doc["signature_name"]
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    if name not in signature_defs:
        raise invalid(f'Serving signature name: "{name}" not found in signature def')
    inputs = signature_defs[name].inputs
    if "instances" in doc and "inputs" in doc:
        raise invalid(
            f"JSON Value: {_json_value(doc)} Not formatted correctly expecting only one of 'inputs' or "
            "'instances' keys to exist "
        )
    if "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise invalid(f"JSON Value: {_json_value(doc)} Excepting 'instances' to be an list/array")
        if not instances:
            raise invalid(f"JSON Value: {_json_value(doc)} No values in 'instances' array")
        is_object = lambda v: isinstance(v, dict) and not (set(v) == {"b64"})  # noqa: E731
        columns: dict[str, list] = {}
        shapes: dict[str, list] = {}
        for index, item in enumerate(instances):
            if is_object(instances[0]) != is_object(item):
                kind = "object but got list" if is_object(instances[0]) else "value/list but got object"
                raise invalid(f"Expecting {kind} at item {index} of input list")
            named = item if is_object(item) else {next(iter(inputs)): item}
            if is_object(item) and set(named) != set(inputs):
                raise invalid(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{_json_value(item)} keys must be equal to: {','.join(sorted(inputs))}"
                )
            for key, value in named.items():
                try:
                    flat, shape = _tensor_from_json(value, inputs[key].dtype)
                except ServingStatus as err:
                    where = f"{index} key: {key}" if is_object(item) else f"{index}"
                    raise invalid(
                        f"Failed to process element: {where} of 'instances' list. Error: "
                        f"INVALID_ARGUMENT: {err.message}"
                    ) from None
                if key in shapes and shapes[key] != shape:
                    raise invalid(f"Expecting shape {shapes[key]} but got: {shape}")
                shapes[key] = shape
                columns.setdefault(key, []).extend(flat)
        for key, flat in columns.items():
            request.inputs[key].CopyFrom(_proto(flat, [len(instances), *shapes[key]], inputs[key].dtype))
        return request, "row"
    if "inputs" in doc:
        value = doc["inputs"]
        if not isinstance(value, dict) or set(value) == {"b64"}:
            named = {next(iter(inputs)): value}
        else:
            named = {}
            for key in inputs:
                if key not in value:
                    raise invalid(f"Missing named input: {key} in 'inputs' object.")
                named[key] = value[key]
        for key, item in named.items():
            flat, shape = _tensor_from_json(item, inputs[key].dtype)
            request.inputs[key].CopyFrom(_proto(flat, shape, inputs[key].dtype))
        return request, "columnar"
    raise invalid("Missing 'inputs' or 'instances' key")


def _json_values(array, as_bytes: bool):
    def one(v):
        if isinstance(v, bytes):
            return {"b64": base64.b64encode(v).decode("ascii")} if as_bytes else v.decode("utf-8", "replace")
        if isinstance(v, np.floating):
            # TF Serving prints the shortest decimal that round-trips the float32.
            return float(str(v))
        return v.item() if isinstance(v, np.generic) else v

    if isinstance(array, np.ndarray):
        return [_json_values(a, as_bytes) for a in array] if array.ndim else one(array[()])
    return one(array)


def predict_response_to_json(response: predict_pb2.PredictResponse, fmt: str) -> dict:
    """TF Serving's MakeJsonFromTensors: row -> ``predictions``, columnar -> ``outputs``."""
    arrays = {k: tf.make_ndarray(v) for k, v in sorted(response.outputs.items())}
    as_bytes = {k: k.endswith("_bytes") for k in arrays}
    if fmt == "row":
        batch = {a.shape[0] if a.ndim else -1 for a in arrays.values()}
        if len(batch) != 1 or -1 in batch:
            raise invalid("Tensor outputs have inconsistent batch sizes for the row format")
        rows = []
        for i in range(batch.pop()):
            values = {k: _json_values(a[i], as_bytes[k]) for k, a in arrays.items()}
            rows.append(values if len(values) > 1 else next(iter(values.values())))
        return {"predictions": rows}
    values = {k: _json_values(a, as_bytes[k]) for k, a in arrays.items()}
    return {"outputs": values if len(values) > 1 else next(iter(values.values()))}


def _rest_handler(server: StandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: tests read the logs through `log`
            log.debug("rest: " + fmt, *args)

        def _reply(self, status: int, payload: dict | str, content_type="application/json") -> None:
            body = (payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, err: ServingStatus, api: str) -> None:
            server.count(api, err.code)
            self._reply(HTTP_STATUS.get(err.code, 500), {"error": err.message})

        def do_GET(self):  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if server.monitoring and path == "/monitoring/prometheus/metrics":
                with server._counts_lock:
                    lines = [
                        f':tensorflow:serving:request_count{{api="{api}",status="{code}"}} {n}'
                        for (api, code), n in sorted(server.request_counts.items())
                    ]
                self._reply(
                    200,
                    "\n".join(["# TYPE :tensorflow:serving:request_count counter", *lines]) + "\n",
                    "text/plain; version=0.0.4",
                )
                return
            match = STATUS_PATH.fullmatch(path)
            try:
                if not match:
                    raise invalid(f"Malformed request: GET {path}")
                name, version, label, metadata = match.groups()
                if not name:
                    raise invalid("Missing model name in request.")
                spec = _model_spec(name, version, label)
                if metadata:
                    response, signature_map = server.metadata(
                        get_model_metadata_pb2.GetModelMetadataRequest(
                            model_spec=spec, metadata_field=["signature_def"]
                        )
                    )
                    payload = {
                        "model_spec": json_format.MessageToDict(
                            response.model_spec,
                            preserving_proto_field_name=True,
                            always_print_fields_with_no_presence=True,
                        ),
                        "metadata": {
                            "signature_def": json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
                        },
                    }
                    server.count("GetModelMetadata", "OK")
                else:
                    payload = json_format.MessageToDict(server.status(spec), always_print_fields_with_no_presence=True)
                    server.count("GetModelStatus", "OK")
            except ServingStatus as err:
                self._error(err, "GET")
                return
            self._reply(200, payload)

        def do_POST(self):  # noqa: N802
            path = self.path.split("?", 1)[0]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            match = PREDICT_PATH.fullmatch(path)
            try:
                if not match:
                    raise invalid(f"Malformed request: POST {path}")
                name, version, label, method = match.groups()
                if method.lower() != "predict":
                    raise ServingStatus(
                        "UNIMPLEMENTED", f"{method} is not served by this model (it has only predict signatures)"
                    )
                spec = _model_spec(name, version, label)
                model, served = server._resolve(spec)
                request, fmt = predict_request_from_json(body, served.signature_defs, name)
                request.model_spec.MergeFrom(spec)
                payload = predict_response_to_json(server.predict(request), fmt)
            except ServingStatus as err:
                self._error(err, "Predict")
                return
            except Exception as err:  # noqa: BLE001 - a client always gets an answer
                log.exception("predict failed")
                self._error(ServingStatus("INTERNAL", f"{type(err).__name__}: {err}"), "Predict")
                return
            server.count("Predict", "OK")
            self._reply(200, payload)

    return Handler


# -- gRPC --------------------------------------------------------------------------


def _abort(context, err: ServingStatus):
    context.abort(getattr(grpc.StatusCode, err.code), err.message)


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server: StandIn):
        self.server = server

    def Predict(self, request, context):  # noqa: N802 - gRPC's name
        try:
            response = self.server.predict(request)
        except ServingStatus as err:
            self.server.count("Predict", err.code)
            _abort(context, err)
        self.server.count("Predict", "OK")
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        try:
            response, _ = self.server.metadata(request)
        except ServingStatus as err:
            _abort(context, err)
        return response


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, server: StandIn):
        self.server = server

    def GetModelStatus(self, request, context):  # noqa: N802
        try:
            return self.server.status(request.model_spec)
        except ServingStatus as err:
            _abort(context, err)
