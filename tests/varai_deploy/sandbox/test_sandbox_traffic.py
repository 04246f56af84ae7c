"""The load generator on its own: loopback only, an even schedule a slow answer cannot stall, and
a log whose report counts what failed."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from varai_deploy.sandbox import traffic
from varai_deploy.sandbox.settings import PLUGINS_DIR


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:18080", "http://127.5.6.7:1", "http://localhost:19500", "http://[::1]:19500"]
)
def test_loopback_gateways_are_accepted(url: str) -> None:
    assert traffic.check_gateway(url)[1] in (18080, 1, 19500)


@pytest.mark.parametrize(
    "url", ["http://192.0.2.10:18080", "http://0.0.0.0:18080", "http://example.com:18080", "https://127.0.0.1:1"]
)
def test_anything_but_a_loopback_gateway_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="refusing|http://"):
        traffic.check_gateway(url)


def test_the_generator_process_refuses_a_non_loopback_gateway_before_sending_anything(tmp_path: Path) -> None:
    args = ["--home", str(tmp_path), "--gateway", "http://192.0.2.10:18080", "--rps", "5", "--max-seconds", "5"]
    done = subprocess.run(
        [sys.executable, "-m", "varai_deploy.sandbox.traffic", *args],
        env={"PYTHONPATH": str(PLUGINS_DIR), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "refusing to send traffic to 192.0.2.10" in done.stderr
    assert not (tmp_path / "traffic").exists()  # not one request logged (none sent)


def test_the_plan_covers_every_service_endpoint_and_health_path() -> None:
    calls = traffic.plan()
    assert {(c.service, c.path) for c in calls} >= {
        ("face-analysis", "/face/analyze"),
        ("analytics", "/analytics/health"),
        ("api-gateway", "/health"),
    }
    assert len(calls) == 10
    assert all(json.loads(c.body) for c in calls if c.method == "POST")


class _Stub(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/ai/discover"):
            time.sleep(1.2)  # slow, not failed
        status = 503 if self.path == "/face/health" else 200
        body = json.dumps({"error": "down for a test"} if status >= 500 else {"ok": True}).encode()
        self.send_response(status)
        self.send_header("X-Served-Version", "v9.9.9")
        self.send_header("X-Served-Colour", "green")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


class _Stop:
    """What the generator's main loop sees of SIGTERM (the real one installs signal handlers)."""

    raised = False

    def raise_(self) -> None:
        self.raised = True

    def sleep(self, seconds: float, step: float = 0.02) -> bool:
        time.sleep(seconds)
        return self.raised


def test_a_slow_answer_does_not_stall_the_schedule_and_the_log_says_what_happened(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log = traffic.RequestLog(tmp_path / "requests.jsonl")
    try:
        gen = traffic.Generator("127.0.0.1", server.server_address[1], 20, log)
        stop = _Stop()
        threading.Timer(2.0, stop.raise_).start()
        gen.run(stop, max_seconds=30)
    finally:
        server.shutdown()
        server.server_close()
        log.close()
    records = list(traffic.read_records(log.path))
    assert 32 <= len(records) <= 42  # 20 req/s for 2 s, the slow ones included (drained at stop)
    stamps = sorted(r["ts"] for r in records)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) < 0.3  # no pause behind the 1.2 s answers (one tick is 0.05 s)
    slow = [r for r in records if r["path"].startswith("/ai/discover")]
    assert slow and all(r["status"] == 200 and r["latency"] >= 1.2 for r in slow)
    bad = [r for r in records if r["path"] == "/face/health"]
    assert bad and all(r["error"] == "HTTP 503: down for a test" for r in bad)
    assert {(r["version"], r["colour"]) for r in records} == {("v9.9.9", "green")}

    report = traffic.report(log.path)
    assert (report["total"], report["failed"]) == (len(records), len(bad))
    assert report["by_status"] == {"200": len(records) - len(bad), "503": len(bad)}


def test_a_refused_connection_is_logged_as_status_0(tmp_path: Path) -> None:
    with socket_that_refuses() as port:
        log = traffic.RequestLog(tmp_path / "requests.jsonl")
        record = traffic.Generator("127.0.0.1", port, 1, log).send(traffic.plan()[0])
    assert record["status"] == 0 and record["version"] is None
    assert record["error"].startswith("ConnectionRefusedError")
    assert traffic.is_failure(record)


class socket_that_refuses:
    """A loopback port nothing listens on (bound, never listening, so nobody else takes it)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()


def test_the_log_rotates_and_the_report_reads_both_files(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    log = traffic.RequestLog(path, max_bytes=2000)
    for i in range(40):
        status = 500 if i % 10 == 0 else (0 if i == 5 else 200)
        log.write(
            {
                "ts": 1000.0 + i,
                "service": "analytics" if i % 2 else "recommendation",
                "method": "GET",
                "path": f"/p{i % 3}",
                "status": status,
                "version": "v1.0.0" if i < 20 else "v1.1.0",
                "colour": "blue",
                "latency": 0.01,
                "error": None if status == 200 else "x",
            }
        )
    log.close()
    assert traffic.rotated(path).exists() and path.stat().st_size <= 2000
    with path.open("a") as fh:
        fh.write('{"ts": 2000, "service": "anal')  # a line being written right now

    everything = traffic.report(path)
    kept = sum(1 for _ in traffic.read_records(path))
    assert everything["total"] == kept < 40  # the oldest went with the rotation before last
    window = traffic.report(path, since=1020, until=1035, failures_cap=1)
    assert window["total"] == 16
    assert window["failed"] == 2  # ts 1020 and 1030
    assert (window["first_failure_ts"], window["last_failure_ts"]) == (1020.0, 1030.0)
    assert window["by_version"] == {"v1.1.0": {"total": 16, "failed": 2}}
    assert len(window["failures"]) == 1 and window["failures_truncated"] is True
    assert traffic.report(path, since=5000)["total"] == 0
