"""Blue-green with real processes: lifecycle, routing through the gateway, switches under load."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from tests.support.sandbox import deploy, request, shopper, wait_listening
from varai_deploy.sandbox import Sandbox, SandboxError, SandboxSettings, processes
from varai_deploy.services import SERVICE_NAMES, SERVICES


def _probe(sb: Sandbox, service: str) -> tuple[int, dict[str, str], object]:
    """The service's working endpoint through the gateway, as the shoppers call it (their API key)."""
    method, path = SERVICES[service].probe
    body = {"image": "data:image/png;base64,AAAA"} if method == "POST" else None
    return request(sb.settings.gateway_url, path, method=method, body=body, headers=shopper(sb.settings))


def test_up_status_down_leaves_no_process(settings: SandboxSettings) -> None:
    sb = Sandbox(settings)
    assert not sb.is_up()
    try:
        status = sb.up()
        assert sb.is_up()
        assert set(status) == {"services", "regions", "endpoints", "traffic", "supervisor"}
        assert set(status["services"]) == set(SERVICE_NAMES)
        assert all(entry == {"live": None, "idle": None} for entry in status["services"].values())
        assert status["endpoints"] == {
            "gateway": f"http://127.0.0.1:{settings.gateway_port}",
            "prometheus": f"http://127.0.0.1:{settings.prometheus_port}",
        }
        assert status["traffic"] == {"running": True, "rps": settings.traffic_rps}
        assert status["supervisor"] == {"running": True}
        assert sb.up() == sb.status()  # idempotent
        deploy(sb, "analytics", "v1.0.0")
        state = sb.store.read()
        slot = state["services"]["analytics"]["slots"]["blue"]
        pids = [state["gateway"]["pid"], state["gateway"]["wrapper_pid"]]
        pids += [p[key] for p in (slot, *slot["replicas"]) for key in ("pid", "wrapper_pid")]
        pids += [c[key] for c in state["components"].values() for key in ("pid", "wrapper_pid")]
        # The gateway, the live service's two instances, Prometheus, the load generator and the
        # supervisor, each with its wrapper.
        assert len(pids) == 12
        assert all(processes.is_alive(p) for p in pids)
    finally:
        sb.down()
    assert not any(processes.is_alive(p) for p in pids)
    assert processes.find_ours(settings.home) == []
    assert not sb.is_up()
    # The record survives a plain down, so a later up brings the same version back...
    assert sb.status()["services"]["analytics"]["live"]["version"] == "v1.0.0"
    try:
        sb.up()
        wait_listening(sb.status()["services"]["analytics"]["live"]["url"])
        status, headers, _ = request(settings.gateway_url, "/analytics/health")
        assert (status, headers["x-served-version"]) == (200, "v1.0.0")
    finally:
        sb.down(purge=True)  # ...and purge forgets everything.
    assert not settings.home.exists()
    assert processes.find_ours(settings.home) == []


def test_every_service_is_routed_to_its_live_colour_and_colours_stand_side_by_side(sandbox: Sandbox) -> None:
    gw = sandbox.settings.gateway_url
    status, headers, body = request(gw, "/ai/health")
    assert status == 503 and body["service"] == "ai-discovery"  # nothing live yet
    assert headers["x-served-version"] == "none"

    for service in SERVICE_NAMES:
        cand = sandbox.start_candidate(service, "v1.0.0", image="registry.local/varai/" + service + ":v1.0.0")
        assert cand["colour"] == "blue" and cand["version"] == "v1.0.0"
    for service in SERVICE_NAMES:
        wait_listening(sandbox.settings.service_url(service, "blue"))
        result = sandbox.switch(service, "blue")
        assert result["live"]["colour"] == "blue" and result["previous"] is None
    for service in SERVICE_NAMES:
        status, headers, _ = request(gw, SERVICES[service].health_path)
        assert status == 200
        assert (headers["x-served-version"], headers["x-served-colour"]) == ("v1.0.0", "blue")
        assert headers["x-served-service"] == service
        status, headers, body = _probe(sandbox, service)
        assert status in (200, 202), body
        assert (headers["x-served-version"], headers["x-served-colour"]) == ("v1.0.0", "blue")

    # The second version starts in green next to blue; the gateway still serves blue.
    for service in SERVICE_NAMES:
        assert sandbox.start_candidate(service, "v1.1.0")["colour"] == "green"
    for service in SERVICE_NAMES:
        wait_listening(sandbox.settings.service_url(service, "green"))
    status_now = sandbox.status()["services"]
    for service in SERVICE_NAMES:
        live, idle = status_now[service]["live"], status_now[service]["idle"]
        assert (live["colour"], live["version"], live["running"]) == ("blue", "v1.0.0", True)
        assert (idle["colour"], idle["version"], idle["running"], idle["state"]) == (
            "green",
            "v1.1.0",
            True,
            "running",
        )
        assert request(idle["url"], SERVICES[service].health_path)[1]["x-served-version"] == "v1.1.0"
        assert request(gw, SERVICES[service].health_path)[1]["x-served-version"] == "v1.0.0"

    for service in SERVICE_NAMES:
        result = sandbox.switch(service, "green")
        assert result["previous"]["version"] == "v1.0.0"
        assert sandbox.switch(service, "green")["live"]["version"] == "v1.1.0"  # idempotent
        status, headers, _ = _probe(sandbox, service)
        assert status in (200, 202)
        assert (headers["x-served-version"], headers["x-served-colour"]) == ("v1.1.0", "green")
    # The old colour keeps running after the switch (rollback is instant) until retired.
    assert sandbox.process_state("ai-discovery", "blue")["running"]

    with pytest.raises(SandboxError, match="it is live"):
        sandbox.retire("ai-discovery", "green")
    retired = sandbox.retire("ai-discovery", "blue")
    assert (retired["version"], retired["state"], retired["running"]) == ("v1.0.0", "retired", False)
    assert sandbox.retire("ai-discovery", "blue")["state"] == "retired"  # idempotent
    idle = sandbox.status()["services"]["ai-discovery"]["idle"]
    assert (idle["colour"], idle["version"], idle["state"], idle["running"]) == (
        "blue",
        "v1.0.0",
        "retired",
        False,
    )
    with pytest.raises(SandboxError, match="not running"):
        sandbox.switch("ai-discovery", "blue")


def test_switching_under_concurrent_load_never_drops_a_request(sandbox: Sandbox) -> None:
    deploy(sandbox, "recommendation", "v1.0.0")
    deploy(sandbox, "recommendation", "v2.0.0", switch=False)
    gw = sandbox.settings.gateway_url
    stop = threading.Event()
    seen: Counter = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    key = shopper(sandbox.settings)

    def hammer(path: str) -> None:
        while not stop.is_set():
            try:
                status, headers, _ = request(gw, path, headers=key)
            except OSError as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                if status // 100 != 2:
                    failures.append(f"HTTP {status}")
                seen[(headers.get("x-served-version"), headers.get("x-served-colour"))] += 1

    paths = ["/recommendations/health", "/recommendations?face_shape=oval"] * 2
    threads = [threading.Thread(target=hammer, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    try:
        for i in range(40):
            sandbox.switch("recommendation", "green" if i % 2 == 0 else "blue")
            stop.wait(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert failures == []
    assert set(seen) == {("v1.0.0", "blue"), ("v2.0.0", "green")}, seen
    assert sum(seen.values()) > 100


def test_concurrent_callers_for_different_services_do_not_lose_each_others_changes(sandbox: Sandbox) -> None:
    """Airflow runs one task per service in parallel; each goes through its own Sandbox object."""
    errors: list[BaseException] = []

    def release(service: str) -> None:
        try:
            sb = Sandbox(sandbox.settings)
            for version in ("v1.0.0", "v1.1.0"):
                cand = sb.start_candidate(service, version)
                wait_listening(cand["url"])
                sb.switch(service, cand["colour"])
        except BaseException as exc:  # reported below, with the thread's service
            errors.append(exc)

    threads = [threading.Thread(target=release, args=(s,)) for s in SERVICE_NAMES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    status = sandbox.status()["services"]
    for service in SERVICE_NAMES:
        assert (status[service]["live"]["colour"], status[service]["live"]["version"]) == ("green", "v1.1.0")
        assert (status[service]["idle"]["version"], status[service]["idle"]["running"]) == ("v1.0.0", True)
        code, headers, _ = request(sandbox.settings.gateway_url, SERVICES[service].health_path)
        assert (code, headers["x-served-version"]) == (200, "v1.1.0")
    targets = json.loads(sandbox.settings.scrape_targets_file.read_text())
    # Both colours of every service with both instances: blue kept its replicas when green went live.
    assert len(targets) == 2 * 2 * len(SERVICE_NAMES)
    sandbox.retire("analytics", "blue")
    targets = json.loads(sandbox.settings.scrape_targets_file.read_text())
    assert {"analytics-blue"} == {f"{s}-{c}" for s in SERVICE_NAMES for c in ("blue", "green")} - {
        t["labels"]["sandbox_slot"] for t in targets
    }


def test_a_removed_service_is_as_before_its_first_release(sandbox: Sandbox) -> None:
    first = deploy(sandbox, "analytics", "v1.0.0")
    deploy(sandbox, "analytics", "v1.0.1")
    sandbox.remove("analytics")
    assert sandbox.status()["services"]["analytics"] == {"live": None, "idle": None}
    assert request(sandbox.settings.gateway_url, "/analytics/health")[0] >= 500
    assert first["pid"] not in processes.find_ours(sandbox.settings.home)
    assert deploy(sandbox, "analytics", "v1.0.2")["colour"] == "blue"
