"""Serving throughput and latency over REST and gRPC, at batch 1 and 32, against the test stand-in.

    python benchmarks/serving.py --model saved_models/translator --out benchmarks/results/serving.json

Serves the newest version of ``--model`` with ``translate/testing/serving_standin.py``
(TF Serving's REST and gRPC surfaces, server-side batching with the values
``python -m translate serving-config`` writes), then, for each protocol and
request batch size, sends ``--requests`` requests from ``--concurrency``
client threads through ``translate.serving.Client`` and reports requests per
second, sentences per second and the p50/p99 latency of one request. Each
setting first sends ``--concurrency`` untimed requests. The stand-in runs in
this process, so its Python HTTP/gRPC layers and the client share the CPU
with the model: the numbers bound what TF Serving's C++ server would do on
the same machine from below, and compare REST with gRPC and batch 1 with 32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from report import emit, machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SENTENCES = ["In the beginning was the Word.", "Love your neighbor as yourself.", "Where are you going?",
             "The Lord is my shepherd; I shall not want.", "Good morning.", "Blessed are the meek.",
             "And God said, Let there be light: and there was light.", "Thank you very much."]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(client_factory, batch: int, requests: int, concurrency: int) -> dict:
    def one(i: int) -> float:
        client = clients[i % concurrency]
        sentences = [SENTENCES[(i + j) % len(SENTENCES)] for j in range(batch)]
        started = time.perf_counter()
        client.translate(sentences)
        return time.perf_counter() - started

    clients = [client_factory() for _ in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency)))  # warm the connections
        started = time.perf_counter()
        latencies = list(pool.map(one, range(requests)))
        elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    return {"batch": batch, "requests": requests, "concurrency": concurrency,
            "requests_per_s": round(requests / elapsed, 2), "sentences_per_s": round(requests * batch / elapsed, 2),
            "latency_p50_ms": round(1000 * statistics.median(latencies), 2),
            "latency_p99_ms": round(1000 * percentile(latencies, 0.99), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model folder (saved_models/NAME)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per setting")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="sentences per request")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    from translate.layout import versions
    from translate.serving import Client
    from translate.serving_config import write_serving_config
    from translate.testing.serving_standin import BatchingOptions, StandIn

    model_dir = Path(args.model)
    if not versions(model_dir):
        parser.error(f"no exported versions in {model_dir}")
    with tempfile.TemporaryDirectory() as tmp:
        files = write_serving_config(model_dir.parent, tmp, name=model_dir.name)
        batching = BatchingOptions.from_file(files["batching_parameters.txt"])
        server = StandIn(model_config_file=files["models.config"], batching=batching).start()
        try:
            rows = []
            for protocol in ("rest", "grpc"):
                port = server.grpc_port if protocol == "grpc" else server.rest_port
                for batch in args.batches:
                    # measure() calls it before this iteration ends.
                    factory = lambda: Client(f"127.0.0.1:{port}", model_dir.name,  # noqa: E731, B023
                                             grpc=protocol == "grpc", timeout=300)  # noqa: B023
                    rows.append({"protocol": protocol, **measure(factory, batch, args.requests, args.concurrency)})
        finally:
            server.stop()
    config = (model_dir / str(versions(model_dir)[-1]) / "assets" / "config.yaml").read_text(encoding="utf-8")
    beam = next((line.split(":")[1].strip() for line in config.splitlines() if line.strip().startswith("beam_size")),
                "?")
    emit({"benchmark": "serving", "machine": machine(), "model": str(model_dir), "beam_size": beam,
          "server": "translate/testing/serving_standin.py (in process)", "batching": vars(batching),
          "results": rows}, args.out)


if __name__ == "__main__":
    main()
