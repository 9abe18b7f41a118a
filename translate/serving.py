"""A client for the translator served by TensorFlow Serving: REST (port 8501) or gRPC (port 8500).

    from translate.serving import Client
    client = Client("localhost:8501")                       # REST
    client.translate(["Good morning.", "Where is the house?"])
    client = Client("localhost:8500", grpc=True)             # gRPC, tensorflow-serving-api stubs
    client.nbest(["Good morning."], n=3)
    client.status(), client.metadata()

Errors that the server reports (a bad signature name, a batch over the
server's ``max_batch_size``, ...) raise :class:`ServingError` with the
server's own message and its code: the gRPC status name, or the HTTP status
over REST (TF Serving maps several gRPC codes onto 400, so REST cannot tell
them apart).

Retries happen only where they cannot do harm: ``status()`` and
``metadata()`` (reads) are retried on connection failures, timeouts and
UNAVAILABLE; a prediction is retried only when the connection was refused,
i.e. the request never reached a server. A prediction that may have reached
the server is never sent twice, because under overload that doubles the load
that caused the failure.

The REST path needs only the standard library. The gRPC path imports
``grpc`` and the ``tensorflow_serving.apis`` protos (and so TensorFlow's)
when the first gRPC client is made.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from translate.layout import SIGNATURE

log = logging.getLogger(__name__)

REST_PORT, GRPC_PORT = 8501, 8500
# The max_batch_size that ``python -m translate serving-config`` writes: bigger jobs are split.
DEFAULT_MAX_BATCH = 32


class ServingError(Exception):
    """An error answered by the model server.

    Attributes:
        message: the server's own text (TF Serving's ``{"error": ...}`` or gRPC details).
        code: the gRPC status name (e.g. ``"INVALID_ARGUMENT"``); ``None`` over REST.
        http_status: the HTTP status over REST (e.g. 400); ``None`` over gRPC.
    """

    def __init__(self, message: str, code: str | None = None, http_status: int | None = None):
        self.message, self.code, self.http_status = message, code, http_status
        super().__init__(f"{message} ({code if code else f'HTTP {http_status}'})")


def _as_sentences(sentences) -> list:
    if isinstance(sentences, (str, bytes)) or not all(isinstance(s, (str, bytes)) for s in sentences):
        raise ValueError("sentences must be a list of strings")
    return list(sentences)


class Client:
    """Talks to one model on one TF Serving (or compatible) server.

    Args:
        address: ``HOST:PORT``; a bare host gets 8501 (REST) or 8500 (gRPC).
        model_name: the model's name in the server's ``models.config``.
        grpc: speak gRPC instead of REST.
        version, label: pin a version number or a version label (``stable``,
            ``canary``); default the server's choice (the newest it serves).
        timeout: seconds for each request.
        retries: further attempts for what is safe to retry (see the module docstring).
        max_batch_size: sentences per request; longer lists are sent in
            consecutive requests (match the server's batching parameters).
    """

    def __init__(self, address: str = f"localhost:{REST_PORT}", model_name: str = "translator", *,
                 grpc: bool = False, version: int | None = None, label: str | None = None,
                 timeout: float = 30.0, retries: int = 2, max_batch_size: int = DEFAULT_MAX_BATCH,
                 backoff: float = 0.2):
        if version is not None and label is not None:
            raise ValueError("give a version or a label, not both")
        if timeout <= 0 or retries < 0 or max_batch_size < 1:
            raise ValueError("timeout and max_batch_size must be positive, retries at least 0")
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        if not host:
            raise ValueError(f"server address must look like HOST:PORT, got {address!r}")
        if port and not port.isdigit():
            raise ValueError(f"server port must be a number, got {address!r}")
        self.host, self.port = host, int(port) if port else (GRPC_PORT if grpc else REST_PORT)
        self.model_name, self.grpc, self.version, self.label = model_name, grpc, version, label
        self.timeout, self.retries, self.max_batch_size, self.backoff = timeout, retries, max_batch_size, backoff
        self._signatures: set[str] | None = None
        self._stubs = None
        if grpc:
            self._open_grpc()

    # -- public API ---------------------------------------------------------

    def translate(self, sentences: str | Sequence[str]):
        """A string -> its translation; a list -> a list of translations."""
        if isinstance(sentences, str):
            return self.translate_with_scores([sentences])[0][0]
        return self.translate_with_scores(sentences)[0]

    def translate_with_scores(self, sentences: Sequence[str]) -> tuple[list[str], list[float]]:
        """The best translation of each sentence and its score (length-penalized log-probability)."""
        out = self.predict(_as_sentences(sentences), SIGNATURE)
        return [_text(t) for t in out["translations"]], [float(s) for s in out["scores"]]

    def nbest(self, sentences: Sequence[str], n: int | None = None) -> list[list[tuple[str, float]]]:
        """For each sentence its ``n`` best translations with scores (default: the export's beam width)."""
        if "nbest" not in self.signatures():
            raise ValueError(f"model {self.model_name} on {self.host}:{self.port} has no nbest signature "
                             f"(signatures: {', '.join(sorted(self.signatures()))})")
        out = self.predict(_as_sentences(sentences), "nbest")
        rows = [[(_text(t), float(s)) for t, s in zip(ts, ss)] for ts, ss in zip(out["translations"], out["scores"])]
        if n is not None:
            if n < 1:
                raise ValueError(f"n must be at least 1, got {n}")
            rows = [row[:n] for row in rows]
        return rows

    def signatures(self) -> set[str]:
        """The served model's signature names (from its metadata; asked once)."""
        if self._signatures is None:
            self._signatures = set(self.metadata()["metadata"]["signature_def"]["signature_def"])
        return self._signatures

    def predict(self, sentences: list, signature: str = SIGNATURE) -> dict[str, list]:
        """Runs ``signature`` on ``sentences`` (``str``, or ``bytes`` for raw bytes), in chunks of
        ``max_batch_size``; returns each output as a list with one entry per sentence."""
        sentences = _as_sentences(sentences)
        if not sentences:
            return {}
        merged: dict[str, list] = {}
        for start in range(0, len(sentences), self.max_batch_size):
            chunk = sentences[start:start + self.max_batch_size]
            out = self._predict_grpc(chunk, signature) if self.grpc else self._predict_rest(chunk, signature)
            for key, values in out.items():
                merged.setdefault(key, []).extend(values)
        return merged

    def status(self) -> dict:
        """TF Serving's GetModelStatusResponse as JSON (``model_version_status``: version, state, status)."""
        if self.grpc:
            from google.protobuf import json_format
            from tensorflow_serving.apis import get_model_status_pb2

            request = get_model_status_pb2.GetModelStatusRequest()
            self._fill_spec(request.model_spec)
            response = self._call_grpc(self._stubs["model"].GetModelStatus, request, idempotent=True)
            return json_format.MessageToDict(response, always_print_fields_with_no_presence=True)
        return self._call_rest("GET", self._path(), None, idempotent=True)

    def metadata(self) -> dict:
        """``{"model_spec": ..., "metadata": {"signature_def": {"signature_def": {NAME: ...}}}}``, as REST gives it."""
        if self.grpc:
            from google.protobuf import json_format
            from tensorflow_serving.apis import get_model_metadata_pb2

            request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            self._fill_spec(request.model_spec)
            response = self._call_grpc(self._stubs["prediction"].GetModelMetadata, request, idempotent=True)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signature_map)
            return {"model_spec": json_format.MessageToDict(response.model_spec, preserving_proto_field_name=True,
                                                            always_print_fields_with_no_presence=True),
                    "metadata": {"signature_def": json_format.MessageToDict(
                        signature_map, preserving_proto_field_name=True)}}
        return self._call_rest("GET", self._path() + "/metadata", None, idempotent=True)

    def close(self) -> None:
        if self._stubs:
            self._stubs["channel"].close()
            self._stubs = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- REST -----------------------------------------------------------------

    def _path(self) -> str:
        path = f"/v1/models/{self.model_name}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        elif self.label is not None:
            path += f"/labels/{self.label}"
        return path

    def _predict_rest(self, sentences: list, signature: str) -> dict[str, list]:
        # The row ("instances") format; bytes travel base64-encoded as TF Serving expects.
        instances = [{"b64": base64.b64encode(s).decode("ascii")} if isinstance(s, bytes) else s for s in sentences]
        body = {"signature_name": signature, "instances": instances}
        reply = self._call_rest("POST", self._path() + ":predict", body, idempotent=False)
        predictions = reply.get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(sentences):
            raise ServingError(f"malformed reply: expected {len(sentences)} predictions, got {str(reply)[:200]}",
                               http_status=200)
        if predictions and not isinstance(predictions[0], dict):
            # TF Serving drops the output names when a signature has one output.
            raise ServingError(f"malformed reply: signature {signature} answered unnamed outputs", http_status=200)
        return {key: [row[key] for row in predictions] for key in predictions[0]} if predictions else {}

    def _call_rest(self, method: str, path: str, body: Any, idempotent: bool) -> dict:
        url = f"http://{self.host}:{self.port}{path}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=data, method=method,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as err:
                raw = err.read().decode("utf-8", "replace")
                try:
                    message = json.loads(raw)["error"]
                except (ValueError, KeyError, TypeError):
                    message = raw or err.reason
                raise ServingError(str(message), http_status=err.code) from None
            except (TimeoutError, urllib.error.URLError, ConnectionError) as err:
                reason = getattr(err, "reason", err)
                refused = isinstance(reason, ConnectionRefusedError)
                if attempt < self.retries and (idempotent or refused):
                    log.warning("%s %s failed (%s); retrying", method, url, reason)
                    time.sleep(self.backoff * 2 ** attempt)
                    continue
                raise ConnectionError(f"{method} {url} failed: {reason}") from err
        raise AssertionError("unreachable")

    # -- gRPC -----------------------------------------------------------------

    def _open_grpc(self) -> None:
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        # Outputs of a batch of 32 long sentences stay far under gRPC's 4 MB default,
        # but the align signature's attention matrices may not: allow 64 MB.
        options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        channel = grpc.insecure_channel(f"{self.host}:{self.port}", options=options)
        self._stubs = {"channel": channel,
                       "prediction": prediction_service_pb2_grpc.PredictionServiceStub(channel),
                       "model": model_service_pb2_grpc.ModelServiceStub(channel)}

    def _fill_spec(self, spec, signature: str | None = None) -> None:
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        if signature:
            spec.signature_name = signature

    def _predict_grpc(self, sentences: list, signature: str) -> dict[str, list]:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, signature)
        rows = [s.encode("utf-8") if isinstance(s, str) else s for s in sentences]
        request.inputs["sentences"].CopyFrom(tf.make_tensor_proto(rows, dtype=tf.string, shape=[len(rows)]))
        response = self._call_grpc(self._stubs["prediction"].Predict, request, idempotent=False)
        return {key: tf.make_ndarray(proto).tolist() for key, proto in response.outputs.items()}

    def _call_grpc(self, method, request, idempotent: bool):
        import grpc

        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as err:
                code, details = err.code(), err.details() or ""
                # gRPC fails fast with UNAVAILABLE when it cannot connect; then nothing was sent.
                unsent = code == grpc.StatusCode.UNAVAILABLE and (
                    "failed to connect" in details.lower() or "connection refused" in details.lower())
                transient = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                if attempt < self.retries and (unsent or (idempotent and transient)):
                    log.warning("gRPC %s to %s:%s failed (%s: %s); retrying", type(request).__name__,
                                self.host, self.port, code.name, details)
                    time.sleep(self.backoff * 2 ** attempt)
                    continue
                if code == grpc.StatusCode.UNAVAILABLE and unsent:
                    raise ConnectionError(f"gRPC {self.host}:{self.port}: {details}") from None
                raise ServingError(details, code=code.name) from None
        raise AssertionError("unreachable")


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
