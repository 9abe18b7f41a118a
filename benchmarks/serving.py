"""The serving path against the tests' TF Serving stand-in (:func:`start_standin`): ``serving`` (throughput and
latency) and ``soak`` (a bounded soak with mixed good and bad requests)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.harness import REPO, emit, machine, subcommand

SENTENCES = [
    "In the beginning was the Word.",
    "Love your neighbor as yourself.",
    "Where are you going?",
    "The Lord is my shepherd; I shall not want.",
    "Good morning.",
    "Blessed are the meek.",
    "And God said, Let there be light: and there was light.",
    "Thank you very much.",
]


def start_standin(model_dir: Path, config_dir: str) -> tuple[object, object, str]:
    """Serves the newest version of ``model_dir`` with the TF Serving stand-in, configured by the files
    ``python -m translate serving-config`` writes (into ``config_dir``). Returns the started server, its
    batching options and the stand-in's file, relative to the repository."""
    from translate.serving_config import write_serving_config
    from translate.testing.serving_standin import BatchingOptions, StandIn

    files = write_serving_config(model_dir.parent, config_dir, name=model_dir.name)
    batching = BatchingOptions.from_file(files["batching_parameters.txt"])
    server = StandIn(model_config_file=files["models.config"], batching=batching).start()
    source = Path(sys.modules[StandIn.__module__].__file__).resolve().relative_to(REPO)
    return server, batching, str(source)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def check_model(model_dir: Path) -> None:
    from translate.versions import versions

    if not versions(model_dir):
        raise SystemExit(f"no exported versions in {model_dir}")


# --- serving ----------------------------------------------------------------------------------


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
    return {
        "batch": batch,
        "requests": requests,
        "concurrency": concurrency,
        "requests_per_s": round(requests / elapsed, 2),
        "sentences_per_s": round(requests * batch / elapsed, 2),
        "latency_p50_ms": round(1000 * statistics.median(latencies), 2),
        "latency_p99_ms": round(1000 * percentile(latencies, 0.99), 2),
    }


def serving(args: argparse.Namespace) -> None:
    """Serving throughput and latency over REST and gRPC, at batch 1 and 32, against the test stand-in.

        python -m benchmarks serving --model saved_models/translator --out benchmarks/results/serving.json

    Serves the newest version of ``--model`` with the tests' TF Serving
    stand-in (TF Serving's REST and gRPC surfaces, server-side batching with
    the values ``python -m translate serving-config`` writes), then, for each
    protocol and request batch size, sends ``--requests`` requests from
    ``--concurrency`` client threads through ``translate.serving_client.Client`` and
    reports requests per second, sentences per second and the p50/p99 latency
    of one request. Each setting first sends ``--concurrency`` untimed
    requests. The stand-in runs in this
    process, so its Python HTTP/gRPC layers and the client share the CPU with
    the model: the numbers bound what TF Serving's C++ server would do on the
    same machine from below, and compare REST with gRPC and batch 1 with 32.
    """
    from translate.serving_client import Client
    from translate.versions import versions

    model_dir = Path(args.model)
    check_model(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        server, batching, standin = start_standin(model_dir, tmp)
        try:
            rows = []
            for protocol in ("rest", "grpc"):
                port = server.grpc_port if protocol == "grpc" else server.rest_port
                for batch in args.batches:
                    factory = lambda port=port, grpc=protocol == "grpc": Client(  # noqa: E731
                        f"127.0.0.1:{port}", model_dir.name, grpc=grpc, timeout=300
                    )
                    rows.append({"protocol": protocol, **measure(factory, batch, args.requests, args.concurrency)})
        finally:
            server.stop()
    config = (model_dir / str(versions(model_dir)[-1]) / "assets" / "config.yaml").read_text(encoding="utf-8")
    beam = next(
        (line.split(":")[1].strip() for line in config.splitlines() if line.strip().startswith("beam_size")), "?"
    )
    emit(
        {
            "benchmark": "serving",
            "machine": machine(),
            "model": str(model_dir),
            "beam_size": beam,
            "server": f"{standin} (in process)",
            "batching": vars(batching),
            "results": rows,
        },
        args.out,
    )


# --- soak -------------------------------------------------------------------------------------

KINDS = ("good", "empty", "long", "malformed_json", "oversized")
DEFAULT_MIX = "good=60,empty=10,long=10,malformed_json=10,oversized=10"
MALFORMED = [
    b'{"instances": ["Good morning.", ',
    b'{"instances": ["Good morning."]} trailing',
    b'{"instances": ["caf\xc3 \xff\xfe"]}',
    b"Good morning.",
    b'{"instances": [Good morning.]}',
    b"{'instances': ['Good morning.']}",
]
READY = "SOAK-SERVER "


def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in KINDS or not weight.strip().isdigit():
            raise ValueError(f"--mix wants KIND=WEIGHT,... with KIND in {', '.join(KINDS)}; got {part!r}")
        mix[name.strip()] = int(weight)
    if not sum(mix.values()):
        raise ValueError("--mix weights are all 0")
    return mix


def plan(count: int, mix: dict[str, int], max_batch: int, seed: int) -> list[tuple[str, str, object]]:
    """``count`` requests (protocol, kind, payload) in the proportions of ``mix``, shuffled with ``seed``."""
    rng = random.Random(seed)
    total = sum(mix.values())
    # Exact proportions (largest remainders), not a draw per request: the mix is the same at every seed.
    shares = {k: count * w / total for k, w in mix.items()}
    counts = {k: int(s) for k, s in shares.items()}
    for k in sorted(shares, key=lambda k: counts[k] - shares[k])[: count - sum(counts.values())]:
        counts[k] += 1
    requests = []
    for kind, n in counts.items():
        for i in range(n):
            protocol = "rest" if kind == "malformed_json" or i % 2 == 0 else "grpc"
            if kind == "good":
                payload = [rng.choice(SENTENCES) for _ in range(rng.randint(1, 4))]
            elif kind == "empty":
                payload = [""]
            elif kind == "long":
                start, words = rng.randrange(len(SENTENCES)), []
                while sum(len(w) + 1 for w in words) < 10_000:
                    words.append(SENTENCES[(start + len(words)) % len(SENTENCES)])
                payload = [" ".join(words)]
            elif kind == "malformed_json":
                payload = rng.choice(MALFORMED)
            else:
                payload = [rng.choice(SENTENCES) for _ in range(rng.randint(max_batch + 1, 2 * max_batch))]
            requests.append((protocol, kind, payload))
    rng.shuffle(requests)
    return requests


def expected_outcome(protocol: str, kind: str) -> str:
    if kind in ("malformed_json", "oversized"):
        return "HTTP 400" if protocol == "rest" else "gRPC INVALID_ARGUMENT"
    return "OK"


def rss_kib(pid: int, field: str = "VmRSS") -> int | None:
    """The process's resident memory in KiB (``VmHWM``: its peak), from /proc or psutil; None if neither."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        import psutil

        info = psutil.Process(pid).memory_info()
        return (info.rss if field == "VmRSS" else getattr(info, "peak_wset", info.rss)) // 1024
    except Exception:  # noqa: BLE001 - no psutil, or the process is gone
        return None


# -- the server, in a child process ----------------------------------------------------


def serve_child(model_dir: Path) -> None:
    """Runs the stand-in until stdin closes; the first stdout line is READY + its ports as JSON."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        server, batching, standin = start_standin(model_dir, tmp)
    print(
        READY
        + json.dumps(
            {
                "rest_port": server.rest_port,
                "grpc_port": server.grpc_port,
                "batching": vars(batching),
                "pid": os.getpid(),
                "standin": standin,
            }
        ),
        flush=True,
    )
    os.dup2(2, 1)  # nothing else on the pipe that the parent stops reading
    sys.stdin.read()
    server.stop()


class Server:
    """``serve_child`` in a subprocess; its stderr goes to a file, read for tracebacks at the end."""

    def __init__(self, model_dir: Path, stderr_path: Path, start_timeout: float):
        self.stderr_path = stderr_path
        self.stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks", "soak", "--model", str(model_dir.resolve()), "--serve-child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=REPO,
        )
        watchdog = threading.Timer(start_timeout, self.proc.kill)
        watchdog.start()
        try:
            while True:
                line = self.proc.stdout.readline().decode("utf-8", "replace")
                if not line:
                    raise RuntimeError(
                        f"the stand-in exited with code {self.proc.wait()} before serving:\n" + self.stderr_tail()
                    )
                if line.startswith(READY):
                    self.info = json.loads(line[len(READY) :])
                    break
        finally:
            watchdog.cancel()
        self.pid = self.proc.pid

    def stderr_tail(self, chars: int = 3000) -> str:
        self.stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def tracebacks(self) -> list[str]:
        text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return ["Traceback" + part[:1500] for part in text.split("Traceback")[1:]]

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        code = self.proc.wait()
        self.stderr.close()
        return code


def server_counts(rest_port: int) -> dict[str, int]:
    """The stand-in's ``request_count`` counters, as ``{"Predict/OK": n, ...}``."""
    url = f"http://127.0.0.1:{rest_port}/monitoring/prometheus/metrics"
    counts = {}
    with urllib.request.urlopen(url, timeout=60) as reply:
        for line in reply.read().decode("utf-8").splitlines():
            if line.startswith(":tensorflow:serving:request_count{"):
                labels, value = line.rsplit(" ", 1)
                fields = dict(part.split("=", 1) for part in labels[labels.index("{") + 1 : -1].split(","))
                counts[f"{fields['api'].strip(chr(34))}/{fields['status'].strip(chr(34))}"] = int(value)
    return counts


# -- the load -------------------------------------------------------------------------


class Load:
    """Client threads that each keep one REST and one gRPC client and send the requests of a plan."""

    def __init__(self, server: Server, model_name: str, threads: int, timeout: float):
        from translate.serving_client import Client

        info = server.info
        self.rest_url = f"http://127.0.0.1:{info['rest_port']}/v1/models/{model_name}:predict"
        self.threads, self.timeout = threads, timeout

        # No retries, and no splitting of the oversized batches on the client side.
        def make(port, grpc):
            return Client(
                f"127.0.0.1:{port}", model_name, grpc=grpc, timeout=timeout, retries=0, max_batch_size=1 << 20
            )

        self.clients = [
            {"rest": make(info["rest_port"], False), "grpc": make(info["grpc_port"], True)} for _ in range(threads)
        ]

    def close(self) -> None:
        for pair in self.clients:
            for client in pair.values():
                client.close()

    def one(self, thread: int, protocol: str, kind: str, payload) -> tuple[str, str | None]:
        """(outcome, message): ``OK``, ``HTTP <status>``, ``gRPC <CODE>`` or the exception's class."""
        from translate.serving_client import ServingError

        try:
            if kind == "malformed_json":
                return self._raw_post(payload)
            translations, scores = self.clients[thread][protocol].translate_with_scores(payload)
            if (
                len(translations) != len(payload)
                or len(scores) != len(payload)
                or not all(isinstance(t, str) for t in translations)
                or not all(math.isfinite(s) for s in scores)
            ):
                return "malformed reply", f"{len(payload)} sentences -> {str((translations, scores))[:200]}"
            return "OK", None
        except ServingError as err:
            return (f"HTTP {err.http_status}" if err.http_status else f"gRPC {err.code}"), err.message
        except Exception as err:  # noqa: BLE001 - a soak names every failure
            cause = err.__cause__
            reason = getattr(cause, "reason", cause)
            name = type(err).__name__ + (f" ({type(reason).__name__})" if reason is not None else "")
            return name, str(err)

    def _raw_post(self, body: bytes) -> tuple[str, str | None]:
        request = urllib.request.Request(
            self.rest_url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return f"HTTP {reply.status}", reply.read()[:200].decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            raw = err.read().decode("utf-8", "replace")
            try:
                return f"HTTP {err.code}", json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                return f"HTTP {err.code} (no JSON error)", raw[:200]

    def run(self, requests: list, on_progress=None, label: str = "requests") -> tuple[list[tuple], float]:
        """Sends ``requests`` from the threads, with a progress bar on stderr; returns
        ``(protocol, kind, outcome, message, seconds)`` rows."""
        from tqdm import tqdm

        lock, position, done = threading.Lock(), [0], [0]
        bar = tqdm(total=len(requests), desc=label, unit=" requests", file=sys.stderr, mininterval=2)

        def worker(thread: int) -> list[tuple]:
            rows = []
            while True:
                with lock:
                    if position[0] >= len(requests):
                        return rows
                    protocol, kind, payload = requests[position[0]]
                    position[0] += 1
                started = time.perf_counter()
                outcome, message = self.one(thread, protocol, kind, payload)
                rows.append((protocol, kind, outcome, message, time.perf_counter() - started))
                with lock:
                    done[0] += 1
                    finished = done[0]
                    bar.update()
                if on_progress:
                    on_progress(finished)

        started = time.perf_counter()
        with bar, ThreadPoolExecutor(self.threads) as pool:
            rows = [row for rows in pool.map(worker, range(self.threads)) for row in rows]
        return rows, time.perf_counter() - started


def summarize(rows: list[tuple]) -> dict:
    by_request, errors, unexpected, examples = {}, {}, {}, {}
    for protocol, kind, outcome, message, seconds in rows:
        key = f"{protocol}/{kind}"
        entry = by_request.setdefault(
            key, {"sent": 0, "expected": expected_outcome(protocol, kind), "outcomes": {}, "_latencies": []}
        )
        entry["sent"] += 1
        entry["outcomes"][outcome] = entry["outcomes"].get(outcome, 0) + 1
        entry["_latencies"].append(seconds)
        if outcome != "OK":
            errors[outcome] = errors.get(outcome, 0) + 1
        if outcome != entry["expected"]:
            unexpected.setdefault(key, {})
            unexpected[key][outcome] = unexpected[key].get(outcome, 0) + 1
            examples.setdefault(f"{key}: {outcome}", (message or "")[:500])
    for entry in by_request.values():
        latencies = entry.pop("_latencies")
        entry.update(
            p50_ms=round(1000 * percentile(latencies, 0.5), 2),
            p99_ms=round(1000 * percentile(latencies, 0.99), 2),
            max_ms=round(1000 * max(latencies), 2),
        )
    ok = sum(1 for row in rows if row[2] == "OK")
    expected_errors = sum(1 for p, k, o, *_ in rows if o != "OK" and o == expected_outcome(p, k))
    return {
        "sent": len(rows),
        "answered_ok": ok,
        "expected_errors": expected_errors,
        "unexpected_replies": len(rows) - ok - expected_errors,
        "errors_by_kind": dict(sorted(errors.items())),
        "unexpected": unexpected,
        "unexpected_examples": examples,
        "by_request": dict(sorted(by_request.items())),
    }


def soak_command(args: argparse.Namespace) -> None:
    """A bounded soak of the serving path: mixed good and bad requests over REST and gRPC, and the server's memory.

        python -m benchmarks soak --model saved_models/translator --out benchmarks/results/soak.json

    Serves the newest version of ``--model`` with the tests' TF Serving
    stand-in (TF Serving's REST and gRPC surfaces, server-side batching with
    the values ``python -m translate serving-config`` writes) in a child
    process of its own, so that its resident memory can be read, and sends
    ``--requests`` requests from ``--threads`` client threads through
    ``translate.serving_client.Client`` (raw HTTP for the malformed bodies). The requests are drawn, with ``--seed``, in
    the fixed proportions of ``--mix``:

    * ``good``: 1 to 4 ordinary sentences; answered OK;
    * ``empty``: one empty sentence; answered OK (an empty translation);
    * ``long``: one sentence of about 10,000 characters; answered OK (the export
      bounds the source and the output);
    * ``malformed_json``: REST only, a body that is not JSON (cut short, extra
      text after the object, invalid UTF-8, plain text); answered HTTP 400;
    * ``oversized``: ``max_batch_size + 1`` to ``2 * max_batch_size`` sentences
      in one request; answered HTTP 400 / INVALID_ARGUMENT by the batcher.

    Every kind but ``malformed_json`` goes half over REST, half over gRPC. The
    clients make one attempt per request (no retries), so every failure counts.
    Before the timed load each thread sends ``--warmup`` requests in all (same
    mix, another seed, not counted); then the server's resident memory (VmRSS
    from ``/proc/PID/status``, or psutil) is read: at start, at every tenth of
    the load (the middle is at one half) and at the end.

    The JSON gives: requests sent, answered OK, the errors by kind (``HTTP
    400``, ``gRPC INVALID_ARGUMENT``, or the client's exception class), which
    replies were not the one each request kind must get (``unexpected``, with a
    message of each), p50/p99 latency per request kind and protocol, the RSS at
    start, middle and end with its growth after the warm-up in percent, the
    server's own request counts (its Prometheus page; every request sent must
    be counted there), whether it still answers afterwards and any traceback it
    wrote to stderr. The command exits 1 when a reply was unexpected, the server
    missed a request, died or wrote a traceback.

    The client threads and the server share the CPU, as in ``serving``: the
    latencies bound TF Serving's from above; the point here is that every
    request gets its right answer and the memory stays flat.
    """
    model_dir = Path(args.model)
    if args.serve_child:
        serve_child(model_dir)
        return
    try:
        mix = parse_mix(args.mix)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if args.requests < 1 or args.threads < 1 or args.warmup < 0:
        raise SystemExit("--requests and --threads must be positive, --warmup at least 0")

    check_model(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(model_dir, Path(tmp) / "server.stderr", args.start_timeout)
        try:
            report = soak(server, model_dir.name, args, mix)
        except BaseException:
            print(f"the stand-in's stderr ends:\n{server.stderr_tail()}", file=sys.stderr)
            raise
        finally:
            exit_code = server.stop()
        tracebacks = server.tracebacks()
    report.update(
        server_exit_code=exit_code,
        server_tracebacks=len(tracebacks),
        server_first_traceback=tracebacks[0] if tracebacks else None,
    )
    report["passed"] = (
        report["unexpected_replies"] == 0
        and report["warmup"]["unexpected_replies"] == 0
        and report["server_counted_every_request"]
        and report["server_alive_after"]
        and not tracebacks
        and exit_code == 0
    )
    emit(report, args.out)
    sys.exit(0 if report["passed"] else 1)


def soak(server: Server, model_name: str, args, mix: dict[str, int]) -> dict:
    max_batch = server.info["batching"]["max_batch_size"]
    load = Load(server, model_name, args.threads, args.timeout)
    try:
        warmup_rows, _ = (
            load.run(plan(args.warmup, mix, max_batch, args.seed + 1), label="warm-up") if args.warmup else ([], 0)
        )
        samples = {0: rss_kib(server.pid)}
        marks = {max(1, args.requests * tenth // 10): tenth * 10 for tenth in range(1, 11)}

        def on_progress(finished: int) -> None:
            if finished in marks:
                samples[marks[finished]] = rss_kib(server.pid)

        rows, elapsed = load.run(plan(args.requests, mix, max_batch, args.seed), on_progress, label="load")
        samples[100] = rss_kib(server.pid)  # after the last reply, whichever thread got it
        alive = server.proc.poll() is None
        # Still serving: one good request over each protocol, then the server's own counts.
        after = [load.one(0, protocol, "good", SENTENCES[:1])[0] for protocol in ("rest", "grpc")] if alive else []
        try:
            counts = server_counts(server.info["rest_port"]) if alive else {}
        except Exception as err:  # noqa: BLE001
            counts = {"error": f"{type(err).__name__}: {err}"}
    finally:
        load.close()
    summary = summarize(rows)
    predicts = sum(n for key, n in counts.items() if key.startswith("Predict/"))
    start, middle, end = samples[0], samples.get(50), samples[100]
    growth = round(100 * (end - start) / start, 2) if start and end else None
    return {
        "benchmark": "soak",
        "machine": machine(),
        "model": args.model,
        "server": f"{server.info['standin']} (subprocess, pid {server.pid})",
        "batching": server.info["batching"],
        "threads": args.threads,
        "seed": args.seed,
        "mix": mix,
        "warmup": {
            "sent": len(warmup_rows),
            "answered_ok": sum(1 for r in warmup_rows if r[2] == "OK"),
            "unexpected_replies": sum(1 for p, k, o, *_ in warmup_rows if o != expected_outcome(p, k)),
        },
        **summary,
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(len(rows) / elapsed, 2),
        "server_rss_kib": {"start": start, "middle": middle, "end": end},
        "rss_growth_after_warmup_pct": growth,
        "server_rss_kib_by_percent_done": {str(k): v for k, v in sorted(samples.items())},
        "server_peak_rss_kib": rss_kib(server.pid, "VmHWM"),
        "server_counts": counts,
        # The warm-up, the load and the two closing requests: every one must have reached the server.
        "server_counted_every_request": predicts == len(warmup_rows) + len(rows) + len(after),
        "server_alive_after": after == ["OK", "OK"],
    }


# --- the command line ---------------------------------------------------------------------


def register(commands) -> None:
    p = subcommand(commands, "serving", serving, "requests/s and latency over REST and gRPC (serving.json)")
    p.add_argument("--model", required=True, help="a model folder (saved_models/NAME)")
    p.add_argument("--requests", type=int, default=200, help="timed requests per setting")
    p.add_argument("--concurrency", type=int, default=4, help="client threads")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="sentences per request")
    p.add_argument("--out", help="also write the JSON here")

    p = subcommand(commands, "soak", soak_command, "mixed good and bad requests; the server's memory (soak.json)")
    p.add_argument("--model", required=True, help="a model folder (saved_models/NAME)")
    p.add_argument("--requests", type=int, default=20_000, help="requests in the measured load")
    p.add_argument("--threads", type=int, default=8, help="client threads")
    p.add_argument("--warmup", type=int, default=400, help="requests before the first memory reading")
    p.add_argument("--mix", default=DEFAULT_MIX, help=f"request kinds and weights (default {DEFAULT_MIX})")
    p.add_argument("--seed", type=int, default=18)
    p.add_argument("--timeout", type=float, default=120, help="seconds the client waits for one reply")
    p.add_argument("--start-timeout", type=float, default=600, help="seconds the server may take to load")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--serve-child", action="store_true", help=argparse.SUPPRESS)
