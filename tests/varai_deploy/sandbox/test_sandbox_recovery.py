"""Failure paths with real processes: taken ports, kill -9 and recovery, faults, refusals."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from tests.support.sandbox import deploy, request, shopper, wait_for, wait_listening
from varai_deploy.sandbox import PortInUseError, Sandbox, SandboxError, SandboxSettings, processes


def test_a_taken_port_is_named_with_the_way_out(settings: SandboxSettings) -> None:
    sb = Sandbox(settings)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", settings.gateway_port))
        squatter.listen()
        with pytest.raises(PortInUseError) as err:
            sb.up()
    message = str(err.value)
    assert f"127.0.0.1:{settings.gateway_port}" in message
    assert "VARAI_SANDBOX_GATEWAY_PORT" in message
    assert f"pid {os.getpid()}" in message  # who holds it
    assert err.value.port == settings.gateway_port
    assert processes.find_ours(settings.home) == []  # nothing half-started

    try:
        sb.up()
        blue_port = settings.port_for("face-analysis", "blue")
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", blue_port))
            squatter.listen()
            with pytest.raises(PortInUseError, match=f"127.0.0.1:{blue_port}.*VARAI_SANDBOX_PORT_BASE"):
                sb.start_candidate("face-analysis", "v1.0.0")
    finally:
        sb.down()


def test_kill_9_of_gateway_supervisor_and_every_live_instance_then_up_brings_back_the_same_versions(
    sandbox: Sandbox,
) -> None:
    deploy(sandbox, "ai-discovery", "v1.0.0")
    deploy(sandbox, "ai-discovery", "v1.1.0", switch=False)  # idle green keeps running
    state = sandbox.store.read()
    gateway_pid = state["gateway"]["pid"]
    supervisor_pid = state["components"]["supervisor"]["pid"]
    blue = state["services"]["ai-discovery"]["slots"]["blue"]
    blue_pids = [blue["pid"], *(r["pid"] for r in blue["replicas"])]
    assert len(blue_pids) == sandbox.settings.instances
    green_pid = state["services"]["ai-discovery"]["slots"]["green"]["pid"]

    # Without the supervisor nothing brings them back: every live instance gone is a 502.
    os.kill(supervisor_pid, signal.SIGKILL)
    wait_for(lambda: not processes.is_alive(supervisor_pid), what="kill -9 of the supervisor")
    assert sandbox.status()["supervisor"] == {"running": False}
    for pid in blue_pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(processes.is_alive(p) for p in blue_pids), what="kill -9 of the live service")
    code, headers, body = request(sandbox.settings.gateway_url, "/ai/health")
    assert (code, body["service"], body["version"]) == (502, "ai-discovery", "v1.0.0")
    assert headers["x-served-service"] == "sandbox-gateway"
    os.kill(gateway_pid, signal.SIGKILL)
    wait_for(lambda: not processes.is_alive(gateway_pid), what="kill -9 of the gateway")
    assert not sandbox.is_up()
    blue_state = sandbox.process_state("ai-discovery", "blue")
    assert (blue_state["running"], blue_state["pid"], blue_state["exit_code"]) == (False, blue_pids[0], -signal.SIGKILL)
    live = sandbox.status()["services"]["ai-discovery"]["live"]
    assert live["running"] is False
    assert [i["running"] for i in live["instances"]] == [False] * len(blue_pids)

    status = sandbox.up()
    assert sandbox.is_up()
    assert status["supervisor"] == {"running": True}
    live, idle = status["services"]["ai-discovery"]["live"], status["services"]["ai-discovery"]["idle"]
    assert (live["colour"], live["version"], live["running"]) == ("blue", "v1.0.0", True)
    assert [i["running"] for i in live["instances"]] == [True] * len(blue_pids)  # replicas too, on their ports
    assert [i["port"] for i in live["instances"]] == [
        sandbox.settings.port_for("ai-discovery", "blue", i) for i in range(len(blue_pids))
    ]
    assert not {i["pid"] for i in live["instances"]} & set(blue_pids)
    assert live["restarts"] == []  # up's recovery, not the supervisor's
    assert (idle["version"], idle["pid"]) == ("v1.1.0", green_pid)  # untouched
    code, headers, _ = request(sandbox.settings.gateway_url, "/ai/discover?q=round", headers=shopper(sandbox.settings))
    assert code == 200
    assert (headers["x-served-version"], headers["x-served-colour"]) == ("v1.0.0", "blue")


def test_crash_fault_shows_as_a_dead_process_with_exit_code_and_message(sandbox: Sandbox) -> None:
    sandbox.register_fault("v2.0.0", "crash", ["ai-discovery"])
    cand = sandbox.start_candidate("ai-discovery", "v2.0.0")
    state = wait_for(
        lambda: (s := sandbox.process_state("ai-discovery", cand["colour"]))["exit_code"] is not None and s,
        what="the crash",
    )
    assert state["running"] is False
    assert state["pid"] == cand["pid"]
    assert state["exit_code"] not in (None, 0)
    assert "fault injected: crash at start" in state["log_tail"]  # a list of lines
    with pytest.raises(SandboxError, match="not running"):
        sandbox.switch("ai-discovery", cand["colour"])
    assert sandbox.discard("ai-discovery", cand["colour"])["state"] == "failed"
    assert sandbox.status()["services"]["ai-discovery"]["idle"]["state"] == "failed"
    # Other services at that version are not affected.
    other = sandbox.start_candidate("analytics", "v2.0.0")
    wait_listening(other["url"])


def test_unhealthy_errors_and_slow_faults(sandbox: Sandbox) -> None:
    sandbox.register_fault("v3.0.0", "unhealthy", ["recommendation"])
    sandbox.register_fault("v3.0.0", "errors", ["analytics"], rate=0.5)
    sandbox.register_fault("v3.0.0", "slow", ["api-gateway"], latency_seconds=0.3)
    urls = {s: sandbox.start_candidate(s, "v3.0.0")["url"] for s in ("recommendation", "analytics", "api-gateway")}
    for url in urls.values():
        wait_listening(url, timeout=15)

    rec = urls["recommendation"]
    assert request(rec, "/health")[0] == 503
    assert request(rec, "/recommendations/health")[0] == 503
    assert request(rec, "/recommendations?face_shape=oval")[0] == 200  # only health is broken

    codes = [request(urls["analytics"], "/analytics/events", "POST", {"type": "view"})[0] for _ in range(10)]
    assert sorted(codes) == [202] * 5 + [500] * 5
    assert request(urls["analytics"], "/analytics/health")[0] == 200

    started = time.monotonic()
    assert request(urls["api-gateway"], "/api/status")[0] == 200
    assert time.monotonic() - started >= 0.3


def test_start_candidate_is_idempotent_and_replaces_another_idle_version(sandbox: Sandbox) -> None:
    first = sandbox.start_candidate("face-analysis", "v1.0.0", image="img:1")
    again = sandbox.start_candidate("face-analysis", "v1.0.0", image="img:1")
    assert again == first
    assert set(first) == {"service", "version", "colour", "url", "pid", "image"}
    wait_listening(first["url"])
    replaced = sandbox.start_candidate("face-analysis", "v1.0.1")
    assert replaced["colour"] == "blue" and replaced["pid"] != first["pid"]
    assert not processes.is_alive(first["pid"])
    wait_listening(replaced["url"])
    assert request(replaced["url"], "/face/health")[1]["x-served-version"] == "v1.0.1"


def test_bad_input_and_impossible_moves_are_refused(settings: SandboxSettings) -> None:
    sb = Sandbox(settings)
    with pytest.raises(SandboxError, match="not up"):
        sb.start_candidate("ai-discovery", "v1.0.0")
    with pytest.raises(SandboxError, match="unknown service"):
        sb.start_candidate("billing", "v1.0.0")
    for bad in ("1.0.0", "v1.0", "v1.0.0;rm -rf /", "latest"):
        with pytest.raises(SandboxError, match="not a release tag"):
            sb.start_candidate("ai-discovery", bad)
    with pytest.raises(SandboxError, match="invalid colour"):
        sb.switch("ai-discovery", "red")
    with pytest.raises(SandboxError, match="nothing deployed"):
        sb.switch("ai-discovery", "green")
    assert sb.retire("ai-discovery", "green")["state"] is None  # nothing there: a no-op


def test_down_also_stops_processes_the_record_has_lost(settings: SandboxSettings) -> None:
    sb = Sandbox(settings)
    try:
        sb.up()
        deploy(sb, "api-gateway", "v1.0.0")
        pids = processes.find_ours(settings.home)
        # The gateway, the live service's two instances, Prometheus, the load generator and the
        # supervisor, each with its wrapper.
        assert len(pids) == 12
        settings.state_file.unlink()
    finally:
        sb.down()
    assert processes.find_ours(settings.home) == []
    assert not any(processes.is_alive(p) for p in pids)
