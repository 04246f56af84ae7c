"""The sandbox storage component: the emulator process, its data under the home, the varai_cdn connection."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cdn_stack import CdnStack, cdn_stack
from tests.support.stand_ins import start
from varai_deploy.hooks.cdn import CdnHook
from varai_deploy.sandbox import components, processes
from varai_deploy.sandbox.storage import BUCKET, COMPONENT, CONN_ID


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CdnStack]:
    with cdn_stack(tmp_path / "sandbox") as running:
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_CDN", running.connection_env())
        yield running


def test_the_registry_knows_it_at_offset_zero():
    assert components.load("storage") is COMPONENT
    assert COMPONENT.offset == 0


def test_the_emulator_runs_as_a_recognisable_process_of_the_home(stack: CdnStack):
    s = stack.settings
    marker = COMPONENT.marker(s, s.component_port("storage"))
    assert ("--home", str(s.home)) in marker.flags
    assert processes.is_ours(stack.pids["storage"], marker)
    assert COMPONENT.ready(s, s.component_port("storage"))


def test_the_connection_airflow_gets_reaches_the_emulator_and_names_the_cdn(stack: CdnStack, monkeypatch):
    s = stack.settings
    line = next(
        ln for ln in components.connections_env(s).splitlines() if ln.startswith("export AIRFLOW_CONN_VARAI_CDN=")
    )
    conn = json.loads(shlex.split(line.split("=", 1)[1])[0])
    assert conn == {
        "conn_type": "google_cloud_platform",
        "extra": {
            "is_anonymous": True,
            "project": "varai-sandbox",
            "api_endpoint": stack.storage_url,
            "bucket": BUCKET,
            "public_url": stack.cdn_url,
        },
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    hook = CdnHook(CONN_ID)
    assert hook.put_alias("probe.txt", b"hello", content_type="text/plain", cache_control="no-store") == "published"
    assert hook.read("probe.txt") == b"hello"


def test_published_objects_survive_a_restart(stack: CdnStack):
    s = stack.settings
    CdnHook().put_alias("kept.txt", b"kept", content_type="text/plain", cache_control="no-store")
    processes.stop([stack.pids["storage"]])
    assert not COMPONENT.ready(s, s.component_port("storage"))
    stack.pids["storage"] = start(s, COMPONENT)
    assert CdnHook().read("kept.txt") == b"kept"
    assert any(p.name == "kept.txt" for p in (s.home / "storage").rglob("*"))


def test_it_does_not_start_on_a_taken_port_and_says_why(stack: CdnStack):
    s = stack.settings
    port = s.component_port("storage")
    spawned = processes.spawn(
        COMPONENT.marker(s, port).argv(), log_file=s.home / "second.log", exit_file=s.home / "second.exit", cwd=s.home
    )
    try:
        # Its launcher records the exit code once the server has exited: a moment after, on a loaded machine.
        deadline = time.monotonic() + 10
        while (code := processes.read_exit_code(s.home / "second.exit", spawned.pid)) is None:
            assert time.monotonic() < deadline, "the second server neither exited nor had its exit recorded"
            time.sleep(0.05)
        assert not processes.is_alive(spawned.pid)
        assert code == 1
        assert f"cannot listen on {s.host}:{port}" in "\n".join(processes.log_tail(s.home / "second.log"))
    finally:
        processes.stop([spawned.pid])
