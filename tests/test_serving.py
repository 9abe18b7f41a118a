"""The TF Serving contract: warm-up records, the REST and gRPC surfaces, bad requests, concurrency, the client.

Everything runs against ``translate/testing/serving_standin.py`` on 127.0.0.1 with free
ports, configured from the operator files that ``serving-config`` writes.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REPO

pytestmark = pytest.mark.timeout(180)

SENTENCES = [
    "Good morning.",
    "Where is the house?",
    "Thank you.",
    "I love you 😀",
    "In the beginning was the Word.",
    "Love your neighbor as yourself.",
    "mixed Ελληνικά русский 中文 text",
    "The Lord is my shepherd.",
]


@pytest.fixture(scope="module")
def served(tiny_export, tmp_path_factory):
    """The stand-in serving the tiny export from the files ``serving-config`` writes (stable = version 1)."""
    from translate.serving_config import write_serving_config
    from translate.testing.serving_standin import BatchingOptions, StandIn

    out = tmp_path_factory.mktemp("serving-config")
    files = write_serving_config(tiny_export.parent.parent, out, name="translator", stable=1)
    server = StandIn(
        model_config_file=files["models.config"], batching=BatchingOptions.from_file(files["batching_parameters.txt"])
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def expected(tiny_translator):
    """In-process outputs of the export: what every served answer must equal."""
    translator = tiny_translator
    translations, scores = translator.translate_with_scores(SENTENCES)
    return {"translations": translations, "scores": scores, "nbest": translator.nbest_with_scores(SENTENCES[:3])}


def rest(server, path, body=None, method=None):
    """(HTTP status, JSON reply) for a plain HTTP request."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.rest_port}{path}",
        data=data,
        method=method or ("POST" if data is not None else "GET"),
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def client(server, grpc=False, **kwargs):
    from translate.serving_client import Client

    port = server.grpc_port if grpc else server.rest_port
    return Client(f"127.0.0.1:{port}", "translator", grpc=grpc, timeout=60, **kwargs)


def assert_scores(actual, wanted):
    assert len(actual) == len(wanted)
    for a, w in zip(actual, wanted):
        assert a == pytest.approx(w, abs=1e-4)


def test_warmup_records_hold_a_predict_request_for_every_signature(tiny_export, served):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = tiny_export / "assets.extra" / "tf_serving_warmup_requests"
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    assert {r.predict_log.request.model_spec.signature_name for r in records} == {
        "serving_default",
        "nbest",
        "align",
        "sample",
    }
    for record in records:
        tensor = record.predict_log.request.inputs["sentences"]
        sampling = (
            {"temperature", "top_k"} if record.predict_log.request.model_spec.signature_name == "sample" else set()
        )
        assert set(record.predict_log.request.inputs) == {"sentences"} | sampling
        assert tensor.dtype == tf.string.as_datatype_enum and len(tensor.tensor_shape.dim) == 1
        assert all(s.decode("utf-8").strip() for s in tensor.string_val)
    # The stand-in replayed every record when it loaded the version, as TF Serving does.
    assert served.models["translator"].versions[1].warmup_replayed == len(records)


@pytest.mark.parametrize("grpc", [False, True], ids=["rest", "grpc"])
def test_client_answers_equal_the_in_process_model(served, expected, grpc):
    with client(served, grpc) as c:
        translations, scores = c.translate_with_scores(SENTENCES)
        assert translations == expected["translations"]
        assert_scores(scores, expected["scores"])
        assert c.translate(SENTENCES[0]) == expected["translations"][0]
        nbest = c.nbest(SENTENCES[:3])
        assert [[t for t, _ in row] for row in nbest] == [[t for t, _ in row] for row in expected["nbest"]]
        assert_scores([s for row in nbest for _, s in row], [s for row in expected["nbest"] for _, s in row])
        assert c.nbest(SENTENCES[:1], n=2)[0] == nbest[0][:2]
        # 70 sentences: the client splits them into requests within max_batch_size (32).
        many = (SENTENCES * 9)[:70]
        assert c.translate(many) == (expected["translations"] * 9)[:70]
        status = c.status()
        assert status["model_version_status"] == [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
        signatures = c.metadata()["metadata"]["signature_def"]["signature_def"]
        assert set(signatures) == {"serving_default", "nbest", "align", "sample"}
        assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"


def test_label_and_version_paths(served, expected):
    for kwargs in ({"version": 1}, {"label": "stable"}):
        for grpc in (False, True):
            with client(served, grpc, **kwargs) as c:
                assert c.translate(SENTENCES[:2]) == expected["translations"][:2]
    from translate.serving_client import ServingError

    with pytest.raises(ServingError) as err, client(served, version=7) as c:
        c.translate(["x"])
    assert err.value.http_status == 404 and "Specific(translator, 7)" in err.value.message


def test_plain_http_row_and_columnar_formats(served, expected):
    code, reply = rest(served, "/v1/models/translator:predict", {"instances": SENTENCES[:2]})
    assert code == 200
    # Several outputs: one object per instance, keyed by output name.
    assert [row["translations"] for row in reply["predictions"]] == expected["translations"][:2]
    assert_scores([row["scores"] for row in reply["predictions"]], expected["scores"][:2])
    code, reply = rest(
        served,
        "/v1/models/translator/versions/1:predict",
        {"signature_name": "serving_default", "inputs": {"sentences": SENTENCES[:3]}},
    )
    assert code == 200 and set(reply) == {"outputs"}
    assert reply["outputs"]["translations"] == expected["translations"][:3]
    code, reply = rest(served, "/v1/models/translator:predict", {"inputs": SENTENCES[:1]})  # a plain list
    assert code == 200 and reply["outputs"]["translations"] == expected["translations"][:1]
    code, reply = rest(
        served,
        "/v1/models/translator/labels/stable:predict",
        {"signature_name": "nbest", "instances": [{"sentences": SENTENCES[0]}]},
    )
    assert code == 200 and len(reply["predictions"][0]["translations"]) == 5
    code, reply = rest(served, "/v1/models/translator/versions/1")
    assert code == 200 and reply["model_version_status"][0]["state"] == "AVAILABLE"
    code, reply = rest(served, "/v1/models/translator/metadata")
    assert code == 200 and reply["model_spec"]["name"] == "translator" and reply["model_spec"]["version"] == "1"
    inputs = reply["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert inputs["sentences"]["dtype"] == "DT_STRING"
    metrics = (
        urllib.request.urlopen(f"http://127.0.0.1:{served.rest_port}/monitoring/prometheus/metrics", timeout=30)
        .read()
        .decode()
    )
    assert ':tensorflow:serving:request_count{api="Predict",status="OK"}' in metrics


LONG = "Good morning. " * 715  # 10,010 characters

# (name, request body, HTTP status, text TF Serving puts in the error)
REST_ERRORS = [
    ("wrong dtype", {"instances": [1, 2]}, 400, "Type: Number is not of expected type: string"),
    ("wrong dtype, columnar", {"inputs": {"sentences": [0.5]}}, 400, "is not of expected type: string"),
    ("missing input", {"inputs": {"text": ["Good morning."]}}, 400, "Missing named input: sentences"),
    ("wrong input name", {"instances": [{"text": "Good morning."}]}, 400, "keys must be equal to: sentences"),
    ("no inputs at all", {"signature_name": "serving_default"}, 400, "Missing 'inputs' or 'instances' key"),
    (
        "unknown signature",
        {"signature_name": "classify", "instances": ["a"]},
        400,
        'Serving signature name: "classify" not found in signature def',
    ),
    ("empty batch", {"instances": []}, 400, "No values in 'instances' array"),
    (
        "batch over the maximum",
        {"instances": ["a"] * 33},
        400,
        "Task size 33 is larger than maximum input batch size 32",
    ),
    ("malformed JSON", b'{"instances": [', 400, "JSON Parse error"),
    ("a sentence that is a list", {"instances": [["a", "b"]]}, 400, "must be a vector of strings"),
]


@pytest.mark.parametrize("name, body, status, message", REST_ERRORS, ids=[e[0] for e in REST_ERRORS])
def test_bad_rest_requests_get_tf_serving_errors_and_the_server_keeps_serving(
    served, expected, name, body, status, message
):
    code, reply = rest(served, "/v1/models/translator:predict", body)
    assert (code, list(reply)) == (status, ["error"])
    assert message in reply["error"]
    code, reply = rest(served, "/v1/models/translator:predict", {"instances": SENTENCES[:1]})
    assert code == 200 and reply["predictions"][0]["translations"] == expected["translations"][0]


def test_unknown_model_and_path_over_rest(served):
    assert rest(served, "/v1/models/nosuch:predict", {"instances": ["a"]})[0] == 404
    assert rest(served, "/v1/models/nosuch")[0] == 404
    code, reply = rest(served, "/v1/nothing/here")
    assert code == 400 and "Malformed request" in reply["error"]


def grpc_request(signature="serving_default", **inputs):
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "translator"
    request.model_spec.signature_name = signature
    for key, proto in inputs.items():
        request.inputs[key].CopyFrom(proto)
    return request


def _grpc_cases():
    import tensorflow as tf

    strings = tf.make_tensor_proto(["Good morning."], dtype=tf.string)
    return [
        (
            "wrong dtype",
            grpc_request(sentences=tf.make_tensor_proto([1.0, 2.0], dtype=tf.float32)),
            "INVALID_ARGUMENT",
            "Expects arg[0] to be string but float is provided",
        ),
        (
            "missing input",
            grpc_request(),
            "INVALID_ARGUMENT",
            "input size does not match signature: 0!=1 len({}) != len({sentences}). Sent extra: {}. "
            "Missing but required: {sentences}.",
        ),
        (
            "wrong input name",
            grpc_request(text=strings),
            "INVALID_ARGUMENT",
            "input tensor alias not found in signature: text",
        ),
        (
            "unknown signature",
            grpc_request("classify", sentences=strings),
            "FAILED_PRECONDITION",
            'Serving signature key "classify" not found.',
        ),
        (
            "batch over the maximum",
            grpc_request(sentences=tf.make_tensor_proto(["a"] * 33, dtype=tf.string)),
            "INVALID_ARGUMENT",
            "Task size 33 is larger than maximum input batch size 32",
        ),
        (
            "a matrix of sentences",
            grpc_request(sentences=tf.make_tensor_proto([["a", "b"]], dtype=tf.string)),
            "INVALID_ARGUMENT",
            "must be a vector of strings",
        ),
    ]


def test_bad_grpc_requests_get_tf_serving_status_codes_and_the_server_keeps_serving(served, expected):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for name, request, code, message in _grpc_cases():
            with pytest.raises(grpc.RpcError) as err:
                stub.Predict(request, timeout=60)
            assert (err.value.code().name, name) == (code, name)
            assert message in err.value.details(), name
        with client(served, grpc=True) as c:
            assert c.translate(SENTENCES[:1]) == expected["translations"][:1]


def test_the_client_raises_serving_error_with_the_servers_text_and_code(served):
    from translate.serving_client import ServingError

    with client(served, grpc=True) as c, pytest.raises(ServingError) as err:
        c.predict(["a"], "no_such_signature")
    assert err.value.code == "FAILED_PRECONDITION" and err.value.http_status is None
    assert err.value.message == 'Serving signature key "no_such_signature" not found.'
    with client(served) as c, pytest.raises(ServingError) as err:
        c.predict(["a"], "no_such_signature")
    assert err.value.http_status == 400 and err.value.code is None
    assert 'Serving signature name: "no_such_signature" not found' in err.value.message
    with client(served, max_batch_size=40) as c, pytest.raises(ServingError) as err:
        c.translate(["a"] * 40)
    assert "Task size 40 is larger than maximum input batch size 32" in err.value.message
    with client(served, grpc=True) as c, pytest.raises(ValueError, match="list of strings"):
        c.translate_with_scores("a string, not a list")


def test_a_10000_character_sentence_and_an_empty_grpc_batch(served, expected):
    # The export bounds both the source (max_source_pieces) and the output (max length rule),
    # so TF Serving answers 200 / OK with a bounded translation; no error is due.
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    assert len(LONG) > 10_000
    for grpc in (False, True):
        with client(served, grpc) as c:
            started = time.monotonic()
            (translation,), (score,) = c.translate_with_scores([LONG])
            assert time.monotonic() - started < 60
            assert isinstance(translation, str) and len(translation) < len(LONG) and math.isfinite(score)
            assert c.translate(SENTENCES[:1]) == expected["translations"][:1]
    # A [0] tensor over gRPC goes through to the graph, which answers an empty batch.
    import grpc as grpc_module

    with grpc_module.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        reply = stub.Predict(grpc_request(sentences=tf.make_tensor_proto([], dtype=tf.string, shape=[0])), timeout=60)
        assert [d.size for d in reply.outputs["translations"].tensor_shape.dim] == [0]


def test_8_threads_x_50_requests_equal_the_sequential_answers(served):
    with client(served) as c:
        sequential = [c.translate_with_scores([s]) for s in SENTENCES]
    merged_before = len(served.batch_sizes())

    def worker(index):
        with client(served, grpc=index % 2 == 1) as c:
            answers = []
            for i in range(50):
                k = (index * 7 + i) % len(SENTENCES)
                answers.append((k, c.translate_with_scores([SENTENCES[k]])))
            return answers

    with ThreadPoolExecutor(8) as pool:
        results = [a for answers in pool.map(worker, range(8)) for a in answers]
    assert len(results) == 400
    for k, (translations, scores) in results:
        assert translations == sequential[k][0]
        assert scores[0] == pytest.approx(sequential[k][1][0], abs=1e-4)
    # The server did merge concurrent requests into batches of several rows.
    assert max(served.batch_sizes()[merged_before:]) > 1


class _Listener:
    """A TCP server on a free port that counts connections and then closes them (or stays silent)."""

    def __init__(self, silent: bool):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port, self.accepted, self.silent, self.open = self.sock.getsockname()[1], 0, silent, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.recv(65536)
            if self.silent:
                self.open.append(conn)
            else:
                conn.close()

    def close(self):
        self.sock.close()
        for conn in self.open:
            conn.close()


def test_retries_only_where_safe_and_timeouts():
    from translate.serving_client import Client

    listener = _Listener(silent=False)  # reads the request, then hangs up without an answer
    try:
        c = Client(f"127.0.0.1:{listener.port}", retries=2, backoff=0.01, timeout=5)
        with pytest.raises(ConnectionError):
            c.translate(["a"])
        assert listener.accepted == 1  # the request reached a server: never sent twice
        with pytest.raises(ConnectionError):
            c.status()
        assert listener.accepted == 1 + 3  # a read: retried
    finally:
        listener.close()
    silent = _Listener(silent=True)
    try:
        c = Client(f"127.0.0.1:{silent.port}", retries=2, backoff=0.01, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ConnectionError, match="timed out"):
            c.translate(["a"])
        assert time.monotonic() - started < 5 and silent.accepted == 1
    finally:
        silent.close()
    # Connection refused: nothing was sent, so even a prediction is retried, then fails clearly.
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(ConnectionError, match="refused"):
        Client(f"127.0.0.1:{port}", retries=1, backoff=0.01, timeout=5).translate(["a"])


def test_cli_translates_through_the_server(served, expected):
    for extra in ([], ["--grpc"]):
        port = served.grpc_port if extra else served.rest_port
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "translate",
                "translate",
                "--server",
                f"127.0.0.1:{port}",
                "--scores",
                *extra,
                *SENTENCES[:2],
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.rstrip("\n").split("\n")
        assert [line.split("\t", 1)[1] for line in lines] == expected["translations"][:2]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "translate",
            "translate",
            "--server",
            f"127.0.0.1:{served.rest_port}",
            "--model-name",
            "nosuch",
            "hello",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: Servable not found for request: Latest(nosuch) (HTTP 404)"]


def test_saved_model_cli_shows_the_documented_signatures(tiny_export):
    # saved_model_cli loads the model for its function listing, so the
    # SentencePiece ops must be registered first: run its main() after
    # importing tensorflow_text.
    code = (
        "import sys, tensorflow_text; from tensorflow.python.tools import saved_model_cli; "
        f"sys.argv = ['saved_model_cli', 'show', '--dir', {str(tiny_export)!r}, '--all']; saved_model_cli.main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "MetaGraphDef with tag-set: 'serve'" in out
    for signature in ("serving_default", "nbest", "align"):
        block = out.split(f"signature_def['{signature}']:")[1].split("Method name is:")[0]
        assert "inputs['sentences'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in block
    default = out.split("signature_def['serving_default']:")[1]
    assert "outputs['translations'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in default
    assert "outputs['scores'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1)" in default
    nbest = out.split("signature_def['nbest']:")[1]
    assert "dtype: DT_STRING\n        shape: (-1, 5)" in nbest
    assert "Method name is: tensorflow/serving/predict" in default
    assert "'SentencepieceTokenizeOp'" in out and "'PyFunc'" not in out


class _StubServer:
    """A local HTTP server (127.0.0.1, a free port, in a thread) that gives every POST one canned reply.

    GETs of ``.../metadata`` get a valid metadata reply naming the nbest
    signature, so that ``Client.nbest`` reaches the POST. With ``stream``,
    the body is that many bytes of JSON-looking filler with no
    Content-Length, sent in chunks until the client hangs up; ``sent`` counts
    what got out.
    """

    def __init__(self, body: bytes = b"", status: int = 200, headers: dict | None = None, stream: int = 0):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stub = self
        self.sent, self.done = 0, threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                metadata = {"metadata": {"signature_def": {"signature_def": {"serving_default": {}, "nbest": {}}}}}
                self._reply(200, json.dumps(metadata).encode(), {"Content-Length": None})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._reply(status, body, headers or {})

            def _reply(self, code, data, extra):
                self.send_response(code)
                self.send_header("Content-Type", extra.get("Content-Type", "application/json"))
                length = extra.get("Content-Length", None if stream else len(data))
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                try:
                    if stream and self.command == "POST":
                        chunk = b"[" + b"0," * 32767 + b"0"  # 64 KB
                        while stub.sent < stream:
                            self.wfile.write(chunk)
                            stub.sent += len(chunk)
                    else:
                        self.wfile.write(data)
                except OSError:  # the client stopped reading and hung up
                    pass
                finally:
                    stub.done.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/models/translator:predict"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def stub_client(stub, **kwargs):
    from translate.serving_client import Client

    return Client(f"127.0.0.1:{stub.port}", "translator", timeout=30, retries=0, **kwargs)


def test_client_turns_a_json_list_reply_into_serving_error():
    from translate.serving_client import ServingError

    with _StubServer(b'["hola", "adios"]') as stub, pytest.raises(ServingError) as err:
        stub_client(stub).translate(["hello", "goodbye"])
    assert err.value.http_status == 200
    assert str(err.value) == (
        f'malformed reply from {stub.url}: the body is a JSON list ["hola", "adios"], not a JSON object (HTTP 200)'
    )


def _row(translation="hola", score=-1.5):
    return {"translations": translation, "scores": score}


# (name, reply body, the call, what the error must say after "malformed reply from URL: ")
MALFORMED_REPLIES = [
    ("a null score", {"predictions": [_row(), _row(score=None)]}, "translate", "score 2 is null, not a number"),
    (
        "a missing key",
        {"predictions": [{"translations": "hola"}, {"translations": "adios"}]},
        "translate",
        "no 'scores' output (outputs: translations)",
    ),
    (
        "a row missing a key",
        {"predictions": [_row(), {"translations": "adios"}]},
        "translate",
        "prediction 2 has the outputs translations, prediction 1 scores, translations",
    ),
    (
        "no predictions",
        {"outputs": {"translations": ["hola", "adios"]}},
        "translate",
        "no 'predictions' key (keys: outputs)",
    ),
    ("too few predictions", {"predictions": [_row()]}, "translate", "expected 2 predictions, got 1"),
    (
        "a translation that is a number",
        {"predictions": [_row(7), _row()]},
        "translate",
        "translation 1 is the number 7, not a string",
    ),
    (
        "a row that is a string",
        {"predictions": ["hola", "adios"]},
        "translate",
        'prediction 1 is the string "hola", not an object of named outputs',
    ),
    ("a JSON string", "hola", "translate", 'the body is the string "hola", not a JSON object'),
    (
        "a non-JSON body",
        b"<html><body>502 Bad Gateway</body></html>",
        "translate",
        "the body is not JSON (Expecting value: line 1 column 1 (char 0)): '<html><body>502 Bad Gateway</body></html>'",
    ),
    ("a body that is not UTF-8", b'{"predictions": "\xff"}', "translate", "the body is not UTF-8 (byte 17)"),
    (
        "nbest rows of different lengths",
        {"predictions": [{"translations": ["a", "b"], "scores": [-1.0]}, {"translations": ["c"], "scores": [-2.0]}]},
        "nbest",
        "sentence 1 has 2 translations and 1 scores",
    ),
    (
        "an nbest score that is null",
        {"predictions": [{"translations": ["a"], "scores": [None]}, {"translations": ["c"], "scores": [-2.0]}]},
        "nbest",
        "scores of sentence 1 is a JSON list [null], not a list of numbers",
    ),
]


@pytest.mark.parametrize("name, body, call, message", MALFORMED_REPLIES, ids=[case[0] for case in MALFORMED_REPLIES])
def test_client_turns_each_malformed_reply_into_serving_error_naming_the_server(name, body, call, message):
    from translate.serving_client import ServingError

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    with _StubServer(data) as stub, pytest.raises(ServingError) as err:
        getattr(stub_client(stub), call)(["hello", "goodbye"])
    assert str(err.value) == f"malformed reply from {stub.url}: {message} (HTTP 200)"


def test_client_names_the_server_for_an_error_page_that_is_not_json():
    from translate.serving_client import ServingError

    with _StubServer(b"<html>502 Bad Gateway</html>", status=502) as stub, pytest.raises(ServingError) as err:
        stub_client(stub).translate(["hello"])
    assert str(err.value) == f"{stub.url} answered '<html>502 Bad Gateway</html>' (HTTP 502)"


def test_client_caps_the_reply_size():
    from translate.serving_client import ServingError

    # A declared length over the cap: refused before reading the body.
    with _StubServer(b"{}", headers={"Content-Length": 10 << 20}) as stub, pytest.raises(ServingError) as err:
        stub_client(stub, max_reply_bytes=1 << 20).translate(["hello"])
    assert str(err.value) == (
        f"reply from {stub.url} is 10485760 bytes, over the limit of 1 MB (max_reply_bytes); not read (HTTP 200)"
    )
    # No declared length, 400 MB on offer: the client reads a little past the cap and hangs up.
    with _StubServer(stream=400 << 20) as stub:
        with pytest.raises(ServingError) as err:
            stub_client(stub, max_reply_bytes=256 << 10).translate(["hello"])
        assert stub.done.wait(30)
    assert str(err.value) == (
        f"reply from {stub.url} is over the limit of 256 KB (max_reply_bytes); stopped reading (HTTP 200)"
    )
    assert stub.sent < 64 << 20  # what the socket buffers took before the hang-up, not the 400 MB


def test_cli_names_the_server_when_a_reply_is_not_json():
    with _StubServer(b"<html>hello</html>") as stub:
        result = subprocess.run(
            [sys.executable, "-m", "translate", "translate", "--server", f"127.0.0.1:{stub.port}", "hello"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: malformed reply from {stub.url}: the body is not JSON (Expecting value: line 1 column 1 (char 0)): "
        "'<html>hello</html>' (HTTP 200)"
    ]


class _GrpcStub:
    """A gRPC PredictionService on 127.0.0.1 whose Predict answers ``outputs`` (name -> TensorProto)."""

    def __init__(self, outputs: dict):
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):
                response = predict_pb2.PredictResponse()
                for key, proto in outputs.items():
                    response.outputs[key].CopyFrom(proto)
                return response

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.stop(None)


def _grpc_malformed_replies():
    import tensorflow as tf

    strings = tf.make_tensor_proto(["hola", "adios"], dtype=tf.string)
    return [
        ("a missing output", {"translations": strings}, "no 'scores' output (outputs: translations)"),
        (
            "too few rows",
            {"translations": strings, "scores": tf.make_tensor_proto([-1.0], dtype=tf.float32)},
            "output 'scores' should hold 2 rows, got 1",
        ),
        (
            "scores that are strings",
            {"translations": strings, "scores": strings},
            "score 1 is the bytes b'hola', not a number",
        ),
        (
            "a scalar output",
            {"translations": strings, "scores": tf.make_tensor_proto(1.0, dtype=tf.float32)},
            "output 'scores' should hold 2 rows, got a scalar",
        ),
    ]


def test_grpc_client_turns_each_malformed_reply_into_serving_error_naming_the_server():
    from translate.serving_client import Client, ServingError

    for name, outputs, message in _grpc_malformed_replies():
        with _GrpcStub(outputs) as stub, Client(f"127.0.0.1:{stub.port}", grpc=True, timeout=30) as c:
            with pytest.raises(ServingError) as err:
                c.translate_with_scores(["hello", "goodbye"])
            where = f"gRPC 127.0.0.1:{stub.port} (model translator, signature serving_default)"
            assert str(err.value) == f"malformed reply from {where}: {message}", name


def test_grpc_client_caps_the_reply_size():
    import tensorflow as tf

    from translate.serving_client import Client, ServingError

    big = {
        "translations": tf.make_tensor_proto(["x" * 100_000], dtype=tf.string),
        "scores": tf.make_tensor_proto([-1.0], dtype=tf.float32),
    }
    with _GrpcStub(big) as stub, Client(f"127.0.0.1:{stub.port}", grpc=True, timeout=30, max_reply_bytes=64 << 10) as c:
        with pytest.raises(ServingError) as err:
            c.translate(["hello"])
    assert err.value.code == "RESOURCE_EXHAUSTED"
    assert str(err.value).startswith(
        f"reply from gRPC 127.0.0.1:{stub.port} is over the limit of 64 KB (max_reply_bytes): "
    )
