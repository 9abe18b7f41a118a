"""A client for the translator served by TensorFlow Serving: REST (port 8501) or gRPC (port 8500).

    from translate.serving_client import Client
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

A reply that is not what TF Serving sends (not JSON, a JSON list, a missing
output, a null score, too few rows, a tensor of the wrong type, ...) raises
:class:`ServingError` too, naming the server (the request's URL over REST,
``gRPC HOST:PORT``) and what was wrong. A reply is read in chunks up to
``max_reply_bytes`` (64 MB by default; the gRPC receive limit too) and
refused beyond it, so a broken or hostile server cannot make the client hold
an unbounded reply in memory.

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
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from translate.versions import SIGNATURE

log = logging.getLogger(__name__)

REST_PORT, GRPC_PORT = 8501, 8500
# The max_batch_size that ``python -m translate serving-config`` writes: bigger jobs are split.
DEFAULT_MAX_BATCH = 32
# The largest reply the client reads. A batch of 32 long sentences' outputs is far below it; the align
# signature's attention matrices of a large batch are the biggest reply a translator sends.
DEFAULT_MAX_REPLY_BYTES = 64 << 20
# An error reply's body is only a message: read at most this much of it.
ERROR_BODY_BYTES = 64 << 10
_CHUNK = 1 << 20


class ServingError(Exception):
    """An error answered by the model server.

    Also raised for a reply that is malformed or too big; its message then
    names the server and what was wrong.

    Attributes:
        message: the server's own text (TF Serving's ``{"error": ...}`` or gRPC details),
            or what was wrong with the reply.
        code: the gRPC status name (e.g. ``"INVALID_ARGUMENT"``); ``None`` over REST
            and for a malformed gRPC reply.
        http_status: the HTTP status over REST (e.g. 400); ``None`` over gRPC.
    """

    def __init__(self, message: str, code: str | None = None, http_status: int | None = None):
        self.message, self.code, self.http_status = message, code, http_status
        suffix = f" ({code})" if code else f" (HTTP {http_status})" if http_status is not None else ""
        super().__init__(message + suffix)


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
        max_reply_bytes: the largest reply read (REST body, gRPC message); a
            bigger one raises :class:`ServingError` without being read whole.
    """

    def __init__(
        self,
        address: str = f"localhost:{REST_PORT}",
        model_name: str = "translator",
        *,
        grpc: bool = False,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        max_batch_size: int = DEFAULT_MAX_BATCH,
        backoff: float = 0.2,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ):
        if version is not None and label is not None:
            raise ValueError("give a version or a label, not both")
        if timeout <= 0 or retries < 0 or max_batch_size < 1 or max_reply_bytes < 1:
            raise ValueError("timeout, max_batch_size and max_reply_bytes must be positive, retries at least 0")
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        if not host:
            raise ValueError(f"server address must look like HOST:PORT, got {address!r}")
        if port and not port.isdigit():
            raise ValueError(f"server port must be a number, got {address!r}")
        self.host, self.port = host, int(port) if port else (GRPC_PORT if grpc else REST_PORT)
        self.model_name, self.grpc, self.version, self.label = model_name, grpc, version, label
        self.timeout, self.retries, self.max_batch_size, self.backoff = timeout, retries, max_batch_size, backoff
        self.max_reply_bytes = max_reply_bytes
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
        sentences = _as_sentences(sentences)
        if not sentences:
            return [], []
        translations, scores = self._columns(self.predict(sentences, SIGNATURE), SIGNATURE, len(sentences))
        for i, (translation, score) in enumerate(zip(translations, scores), start=1):
            self._check_value(translation, _is_text, "a string", f"translation {i}", SIGNATURE)
            self._check_value(score, _is_number, "a number", f"score {i}", SIGNATURE)
        return [_text(t) for t in translations], [float(s) for s in scores]

    def nbest(self, sentences: Sequence[str], n: int | None = None) -> list[list[tuple[str, float]]]:
        """For each sentence its ``n`` best translations with scores (default: the export's beam width)."""
        if "nbest" not in self.signatures():
            raise ValueError(
                f"model {self.model_name} on {self.host}:{self.port} has no nbest signature "
                f"(signatures: {', '.join(sorted(self.signatures()))})"
            )
        if n is not None and n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        sentences = _as_sentences(sentences)
        if not sentences:
            return []
        translations, scores = self._columns(self.predict(sentences, "nbest"), "nbest", len(sentences))
        rows = []
        for i, (ts, ss) in enumerate(zip(translations, scores), start=1):
            self._check_value(
                ts,
                lambda v: isinstance(v, list) and all(map(_is_text, v)),
                "a list of strings",
                f"translations of sentence {i}",
                "nbest",
            )
            self._check_value(
                ss,
                lambda v: isinstance(v, list) and all(map(_is_number, v)),
                "a list of numbers",
                f"scores of sentence {i}",
                "nbest",
            )
            if len(ts) != len(ss) or not ts:
                raise self._malformed("nbest", f"sentence {i} has {len(ts)} translations and {len(ss)} scores")
            rows.append([(_text(t), float(s)) for t, s in zip(ts, ss)])
        return [row[:n] for row in rows] if n is not None else rows

    def signatures(self) -> set[str]:
        """The served model's signature names (from its metadata; asked once)."""
        if self._signatures is None:
            metadata = self.metadata()
            try:
                signatures = metadata["metadata"]["signature_def"]["signature_def"]
                if not isinstance(signatures, dict):
                    raise TypeError
            except (KeyError, TypeError):
                where = f"gRPC {self.host}:{self.port}" if self.grpc else self._url(self._path() + "/metadata")
                raise ServingError(
                    f"malformed reply from {where}: the metadata has no metadata.signature_def.signature_def map",
                    http_status=None if self.grpc else 200,
                ) from None
            self._signatures = set(signatures)
        return self._signatures

    def predict(self, sentences: list, signature: str = SIGNATURE) -> dict[str, list]:
        """Runs ``signature`` on ``sentences`` (``str``, or ``bytes`` for raw bytes), in chunks of
        ``max_batch_size``; returns each output as a list with one entry per sentence."""
        sentences = _as_sentences(sentences)
        if not sentences:
            return {}
        merged: dict[str, list] = {}
        for start in range(0, len(sentences), self.max_batch_size):
            chunk = sentences[start : start + self.max_batch_size]
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
            if not response.metadata["signature_def"].Unpack(signature_map):
                raise ServingError(
                    f"malformed reply from gRPC {self.host}:{self.port}: the metadata holds no SignatureDefMap"
                )
            return {
                "model_spec": json_format.MessageToDict(
                    response.model_spec, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
                ),
                "metadata": {
                    "signature_def": json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
                },
            }
        return self._call_rest("GET", self._path() + "/metadata", None, idempotent=True)

    def close(self) -> None:
        if self._stubs:
            self._stubs["channel"].close()
            self._stubs = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- checking replies -----------------------------------------------------

    def _where(self, signature: str) -> str:
        """The server, as an error names it: the predict URL over REST, ``gRPC HOST:PORT`` otherwise."""
        if self.grpc:
            return f"gRPC {self.host}:{self.port} (model {self.model_name}, signature {signature})"
        return self._url(self._path() + ":predict")

    def _malformed(self, signature: str, what: str) -> ServingError:
        return ServingError(
            f"malformed reply from {self._where(signature)}: {what}", http_status=None if self.grpc else 200
        )

    def _columns(self, out: dict, signature: str, count: int) -> tuple[list, list]:
        """The translations and scores outputs of a reply, each checked to hold ``count`` rows."""
        columns = []
        for key in ("translations", "scores"):
            if key not in out:
                raise self._malformed(signature, f"no {key!r} output (outputs: {', '.join(sorted(out)) or 'none'})")
            if not isinstance(out[key], list) or len(out[key]) != count:
                got = len(out[key]) if isinstance(out[key], list) else _describe(out[key])
                raise self._malformed(signature, f"{key!r} should hold {count} rows, got {got}")
            columns.append(out[key])
        return columns[0], columns[1]

    def _check_value(self, value, ok, expected: str, what: str, signature: str) -> None:
        if not ok(value):
            raise self._malformed(signature, f"{what} is {_describe(value)}, not {expected}")

    # -- REST -----------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

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
        if "predictions" not in reply:
            raise self._malformed(signature, f"no 'predictions' key (keys: {', '.join(sorted(reply)) or 'none'})")
        predictions = reply["predictions"]
        if not isinstance(predictions, list) or len(predictions) != len(sentences):
            got = len(predictions) if isinstance(predictions, list) else _describe(predictions)
            raise self._malformed(signature, f"expected {len(sentences)} predictions, got {got}")
        for i, row in enumerate(predictions, start=1):
            if not isinstance(row, dict):
                # TF Serving drops the output names when a signature has one output.
                raise self._malformed(signature, f"prediction {i} is {_describe(row)}, not an object of named outputs")
            if set(row) != set(predictions[0]):
                raise self._malformed(
                    signature,
                    f"prediction {i} has the outputs {', '.join(sorted(row))}, "
                    f"prediction 1 {', '.join(sorted(predictions[0]))}",
                )
        return {key: [row[key] for row in predictions] for key in predictions[0]} if predictions else {}

    def _read_reply(self, response, url: str, limit: int, truncate: bool = False) -> bytes:
        """The body of ``response``, read in chunks; over ``limit`` bytes: ServingError, or cut if ``truncate``."""
        length = response.headers.get("Content-Length", "")
        status = getattr(response, "status", None) or getattr(response, "code", None)
        if not truncate and length.strip().isdigit() and int(length) > limit:
            raise ServingError(
                f"reply from {url} is {int(length)} bytes, over the limit of {_size(limit)} "
                "(max_reply_bytes); not read",
                http_status=status,
            )
        chunks, size = [], 0
        while size <= limit:
            chunk = response.read(min(_CHUNK, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        if truncate:
            return b"".join(chunks)[:limit]
        raise ServingError(
            f"reply from {url} is over the limit of {_size(limit)} (max_reply_bytes); stopped reading",
            http_status=status,
        )

    def _json_object(self, raw: bytes, url: str, status: int) -> dict:
        try:
            reply = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise ServingError(
                f"malformed reply from {url}: the body is not UTF-8 (byte {err.start})", http_status=status
            ) from None
        except ValueError as err:
            raise ServingError(
                f"malformed reply from {url}: the body is not JSON ({err}): {_snippet(raw)}", http_status=status
            ) from None
        if not isinstance(reply, dict):
            raise ServingError(
                f"malformed reply from {url}: the body is {_describe(reply)}, not a JSON object", http_status=status
            )
        return reply

    def _call_rest(self, method: str, path: str, body: Any, idempotent: bool) -> dict:
        url = self._url(path)
        data = json.dumps(body).encode("utf-8") if body is not None else None
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(
                url, data=data, method=method, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = self._read_reply(response, url, self.max_reply_bytes)
                    return self._json_object(raw, url, response.status)
            except urllib.error.HTTPError as err:
                raw = self._read_reply(err, url, min(ERROR_BODY_BYTES, self.max_reply_bytes), truncate=True)
                try:
                    message = json.loads(raw.decode("utf-8"))["error"]
                except (ValueError, KeyError, TypeError):
                    # Not TF Serving's {"error": ...}: a proxy's page, say. Name who answered.
                    message = f"{url} answered {_snippet(raw)}" if raw.strip() else f"{url}: {err.reason}"
                raise ServingError(str(message), http_status=err.code) from None
            except (TimeoutError, urllib.error.URLError, ConnectionError) as err:
                reason = getattr(err, "reason", err)
                refused = isinstance(reason, ConnectionRefusedError)
                if attempt < self.retries and (idempotent or refused):
                    log.warning("%s %s failed (%s); retrying", method, url, reason)
                    time.sleep(self.backoff * 2**attempt)
                    continue
                raise ConnectionError(f"{method} {url} failed: {reason}") from err
            except http.client.HTTPException as err:  # not HTTP at all, or a body cut short
                # After ConnectionError: RemoteDisconnected is both, and a hang-up is a connection failure.
                raise ServingError(f"malformed reply from {url}: {type(err).__name__} {err}"[:300]) from None
        raise AssertionError("unreachable")

    # -- gRPC -----------------------------------------------------------------

    def _open_grpc(self) -> None:
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        # Outputs of a batch of 32 long sentences stay far under gRPC's 4 MB default,
        # but the align signature's attention matrices may not: allow max_reply_bytes (64 MB).
        options = [
            ("grpc.max_receive_message_length", self.max_reply_bytes),
            ("grpc.max_send_message_length", 64 << 20),
        ]
        channel = grpc.insecure_channel(f"{self.host}:{self.port}", options=options)
        self._stubs = {
            "channel": channel,
            "prediction": prediction_service_pb2_grpc.PredictionServiceStub(channel),
            "model": model_service_pb2_grpc.ModelServiceStub(channel),
        }

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
        out = {}
        for key, proto in response.outputs.items():
            try:
                value = tf.make_ndarray(proto).tolist()
            except Exception as err:  # noqa: BLE001 -- numpy and TensorFlow raise several types
                raise self._malformed(signature, f"output {key!r} is not a valid tensor ({err})") from None
            if not isinstance(value, list) or len(value) != len(rows):
                got = len(value) if isinstance(value, list) else "a scalar"
                raise self._malformed(signature, f"output {key!r} should hold {len(rows)} rows, got {got}")
            out[key] = value
        return out

    def _call_grpc(self, method, request, idempotent: bool):
        import grpc

        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as err:
                code, details = err.code(), err.details() or ""
                # gRPC fails fast with UNAVAILABLE when it cannot connect; then nothing was sent.
                unsent = code == grpc.StatusCode.UNAVAILABLE and (
                    "failed to connect" in details.lower() or "connection refused" in details.lower()
                )
                transient = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                if attempt < self.retries and (unsent or (idempotent and transient)):
                    log.warning(
                        "gRPC %s to %s:%s failed (%s: %s); retrying",
                        type(request).__name__,
                        self.host,
                        self.port,
                        code.name,
                        details,
                    )
                    time.sleep(self.backoff * 2**attempt)
                    continue
                if code == grpc.StatusCode.UNAVAILABLE and unsent:
                    raise ConnectionError(f"gRPC {self.host}:{self.port}: {details}") from None
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details.lower():
                    # Raised by this side's receive limit: the server is not named in the details.
                    details = (
                        f"reply from gRPC {self.host}:{self.port} is over the limit of "
                        f"{_size(self.max_reply_bytes)} (max_reply_bytes): {details}"
                    )
                raise ServingError(details, code=code.name) from None
        raise AssertionError("unreachable")


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _is_text(value) -> bool:
    return isinstance(value, (str, bytes))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _describe(value) -> str:
    """A JSON value as an error names it: ``null``, ``a JSON list [1, 2]``, ``the string "x"``."""
    if value is None:
        return "null"
    kind = {dict: "a JSON object", list: "a JSON list", str: "the string", bool: "the boolean", bytes: "the bytes"}.get(
        type(value), "the number" if _is_number(value) else type(value).__name__
    )
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return f"{kind} {text[:60]}{'...' if len(text) > 60 else ''}"


def _snippet(raw: bytes) -> str:
    text = raw[:80].decode("utf-8", errors="replace")
    return repr(text) + ("..." if len(raw) > 80 else "")


def _size(count: int) -> str:
    for unit, shift in (("MB", 20), ("KB", 10)):
        if count >= 1 << shift and count % (1 << shift) == 0:
            return f"{count >> shift} {unit}"
    return f"{count} bytes"
