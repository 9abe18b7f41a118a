"""A short run of ``python -m benchmarks soak`` (issue 18) on the tiny export: 400 mixed requests, all answered."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.timeout(600)

REQUEST_KINDS = {
    "rest/good": "OK",
    "grpc/good": "OK",
    "rest/empty": "OK",
    "grpc/empty": "OK",
    "rest/long": "OK",
    "grpc/long": "OK",
    "rest/malformed_json": "HTTP 400",
    "rest/oversized": "HTTP 400",
    "grpc/oversized": "gRPC INVALID_ARGUMENT",
}


def test_a_short_soak_answers_every_request_and_samples_the_servers_memory(tiny_export, tmp_path):
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "soak",
            "--model",
            str(tiny_export.parent),
            "--requests",
            "400",
            "--threads",
            "8",
            "--warmup",
            "40",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert out.is_file(), result.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["unexpected"] == {}, report["unexpected_examples"]
    assert report["sent"] == 400
    assert report["answered_ok"] + report["expected_errors"] == report["sent"]
    assert report["unexpected_replies"] == 0 and report["warmup"]["unexpected_replies"] == 0
    assert set(report["errors_by_kind"]) == {"HTTP 400", "gRPC INVALID_ARGUMENT"}
    # The default mix: 60 % good, 10 % each of the rest; malformed JSON only over REST.
    assert report["answered_ok"] == 320 and report["expected_errors"] == 80
    assert set(report["by_request"]) == set(REQUEST_KINDS)
    assert report["by_request"]["rest/malformed_json"]["sent"] == 40
    for key, entry in report["by_request"].items():
        assert entry["expected"] == REQUEST_KINDS[key]
        assert entry["outcomes"] == {REQUEST_KINDS[key]: entry["sent"]}, key
        assert 0 < entry["p50_ms"] <= entry["p99_ms"] <= entry["max_ms"], key
    memory = report["server_rss_kib"]
    assert set(memory) == {"start", "middle", "end"}
    assert all(isinstance(kib, int) and kib > 0 for kib in memory.values()), memory
    assert isinstance(report["rss_growth_after_warmup_pct"], float)
    # Every request reached the server, which kept serving, exited cleanly and wrote no traceback.
    assert report["server_counted_every_request"] and report["server_alive_after"]
    assert report["server_exit_code"] == 0 and report["server_tracebacks"] == 0, report["server_first_traceback"]
    assert report["passed"] and result.returncode == 0
