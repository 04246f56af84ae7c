"""PushgatewayHook against the sandbox's Pushgateway (Debian's, a real process reached through the
``AIRFLOW_CONN_VARAI_PUSHGATEWAY`` connection as a task reaches it): groups with awkward label values,
pushes that keep each other, deletes, and failures that say what failed where."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.support.pushgateway_stack import PushgatewayStack, pushgateway_stack
from tests.support.statuspage_stack import free_port
from varai_deploy.hooks.pushgateway import PushgatewayError, PushgatewayHook, group_path

JOB = "database_backup"
VERIFIED = "varai_backup_last_verified_timestamp_seconds"
FAILURE = "varai_backup_last_failure_timestamp_seconds"
RPO = "varai_backup_rpo_seconds"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PushgatewayStack]:
    with pushgateway_stack(tmp_path / "sandbox") as running:
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_PUSHGATEWAY", json.dumps(running.connection))
        yield running


@pytest.fixture
def hook(stack: PushgatewayStack) -> PushgatewayHook:
    return PushgatewayHook()


def test_a_push_lands_in_its_group_even_with_slashes_spaces_and_empty_label_values(stack, hook):
    grouping = {"environment": "sandbox", "database": "app/db 1", "bucket": "gs://varai-backups/app", "shard": ""}
    gauges = {VERIFIED: (1_700_000_000.5, "When the newest verified backup was taken."), RPO: (900, "The RPO.")}
    hook.push(JOB, grouping, gauges)
    assert stack.group(job=JOB, **grouping) == gauges
    # Plain values travel as they are, the others base64url-encoded, as the Pushgateway README prescribes.
    path = group_path(JOB, grouping)
    assert path.startswith("metrics/job/database_backup/environment/sandbox/database@base64/YXBwL2RiIDE=/")
    assert path.endswith("/shard@base64/=")


def test_a_second_push_to_the_group_keeps_the_metrics_it_does_not_name(stack, hook):
    grouping = {"environment": "sandbox", "database": "app_db"}
    hook.push(JOB, grouping, {VERIFIED: (1000.0, "Newest verified backup."), RPO: (60.0, "RPO.")})
    hook.push(JOB, grouping, {FAILURE: (2000.0, "Last failed backup.")})
    assert stack.group(job=JOB, **grouping) == {
        VERIFIED: (1000.0, "Newest verified backup."),
        RPO: (60.0, "RPO."),
        FAILURE: (2000.0, "Last failed backup."),
    }
    hook.push(JOB, grouping, {VERIFIED: (3000.0, "Newest verified backup.")})
    assert stack.group(job=JOB, **grouping)[VERIFIED] == (3000.0, "Newest verified backup.")
    assert set(stack.group(job=JOB, **grouping)) == {VERIFIED, RPO, FAILURE}


def test_delete_removes_only_that_group(stack, hook):
    hook.push(JOB, {"environment": "sandbox", "database": "app_db"}, {VERIFIED: (1.0, "v")})
    hook.push(JOB, {"environment": "sandbox", "database": "ledger/main"}, {VERIFIED: (2.0, "v")})
    hook.delete(JOB, {"environment": "sandbox", "database": "ledger/main"})
    # The Pushgateway accepts a delete (202) and applies it a moment later: on a loaded machine, not yet.
    deadline = time.monotonic() + 10
    while stack.group(job=JOB, environment="sandbox", database="ledger/main") is not None:
        assert time.monotonic() < deadline, "the deleted group is still there after 10 s"
        time.sleep(0.05)
    assert stack.group(job=JOB, environment="sandbox", database="app_db") == {VERIFIED: (1.0, "v")}
    hook.delete(JOB, {"environment": "sandbox", "database": "ledger/main"})  # already gone: fine (a retry)


def test_a_push_the_gateway_refuses_raises_its_reason_without_retrying(stack, hook):
    # The same metric name pushed elsewhere as a counter: the gateway refuses a gauge of that name (400).
    counter = b"# TYPE varai_backups_total counter\nvarai_backups_total 1\n"
    assert requests.post(f"{stack.url}/metrics/job/other", data=counter, timeout=5).status_code == 200
    with pytest.raises(PushgatewayError) as raised:
        hook.push(JOB, {"database": "app_db"}, {"varai_backups_total": (1.0, "Backups.")})
    message = str(raised.value)
    assert raised.value.status_code == 400
    assert f"pushing varai_backups_total for job {JOB!r} failed: POST {stack.url}/metrics/job/{JOB}" in message
    assert "HTTP 400" in message and "varai_backups_total" in message.split("HTTP 400", 1)[1]


def test_an_unreachable_gateway_raises_a_clear_error_without_the_password(monkeypatch):
    port = free_port()  # nothing listens there
    conn = {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http"}
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_PUSHGATEWAY", json.dumps({**conn, "login": "pusher", "password": "s3cr3t"}))
    hook = PushgatewayHook(attempts=2, retry_wait=0.01)
    with pytest.raises(PushgatewayError) as raised:
        hook.push(JOB, {"database": "app_db"}, {VERIFIED: (1.0, "v")})
    message = str(raised.value)
    assert raised.value.status_code is None
    assert f"the Pushgateway at http://127.0.0.1:{port}/metrics/job/{JOB}/database/app_db" in message
    assert "'varai_pushgateway'" in message and "after 2 attempt(s)" in message and "ConnectionError" in message
    assert "s3cr3t" not in message


def test_5xx_answers_are_retried_until_one_succeeds(monkeypatch):
    with answering([503, 502, 200]) as server:
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_PUSHGATEWAY", json.dumps(server["conn"]))
        PushgatewayHook(attempts=3, retry_wait=0.01).push(JOB, {"database": "app_db"}, {VERIFIED: (5.0, "v")})
        assert [method for method, _, _ in server["seen"]] == ["POST"] * 3
        _, path, body = server["seen"][-1]
        assert path == f"/metrics/job/{JOB}/database/app_db"
        assert f"# TYPE {VERIFIED} gauge\n{VERIFIED} 5.0\n".encode() in body


def test_5xx_to_the_last_attempt_raises_the_last_answer(monkeypatch):
    with answering([503, 503]) as server:
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_PUSHGATEWAY", json.dumps(server["conn"]))
        with pytest.raises(PushgatewayError, match=r"deleting the group for job 'j' failed: DELETE .* HTTP 503"):
            PushgatewayHook(attempts=2, retry_wait=0.01).delete("j", {})
        assert len(server["seen"]) == 2


@pytest.mark.parametrize(
    ("job", "grouping", "gauges", "error"),
    [
        ("", {}, {VERIFIED: (1.0, "v")}, "needs a job name"),
        (JOB, {"job": "x"}, {VERIFIED: (1.0, "v")}, "'job' cannot be a grouping label"),
        (JOB, {"data base": "x"}, {VERIFIED: (1.0, "v")}, "'data base' cannot be a grouping label"),
        (JOB, {}, {"backup age": (1.0, "v")}, "'backup age' is not a Prometheus metric name"),
        (JOB, {}, {}, "nothing to push"),
    ],
)
def test_bad_input_is_refused_before_any_request(job, grouping, gauges, error, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_PUSHGATEWAY", json.dumps({"conn_type": "http", "host": "192.0.2.1"}))
    with pytest.raises(ValueError, match=error):
        PushgatewayHook(attempts=1).push(job, grouping, gauges)


@contextmanager
def answering(statuses: list[int]) -> Iterator[dict]:
    """A loopback HTTP server answering POST and DELETE with the next status of ``statuses``, then 200: a
    gateway in trouble. Yields its connection and what it received, ``(method, path, body)``."""
    script = list(statuses)
    seen: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.command, self.path, body))
            self.send_response(script.pop(0) if script else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_DELETE = _answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = {"conn_type": "http", "host": "127.0.0.1", "port": server.server_address[1], "schema": "http"}
        yield {"conn": conn, "seen": seen}
    finally:
        server.shutdown()
        server.server_close()
