"""Prometheus and synthetic traffic with real processes: what rollback analysis and a zero-downtime
proof rely on (real PromQL over scraped metrics, and the load generator's own request log)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import time
import urllib.parse

import pytest

from tests.support.sandbox import deploy, request, run_cli, wait_for, wait_listening
from varai_deploy.sandbox import PortInUseError, Sandbox, SandboxError, SandboxSettings, processes


def promql(sb: Sandbox, query: str) -> list[dict]:
    """An instant query through Prometheus's HTTP API, as an analysis task would send it."""
    url = sb.status()["endpoints"]["prometheus"]
    status, _, body = request(url, "/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    assert status == 200 and body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_the_live_version_the_traffic_reaches(sandbox: Sandbox) -> None:
    s = sandbox.settings
    assert sandbox.status()["endpoints"]["prometheus"] == s.prometheus_url
    assert request(s.prometheus_url, "/-/ready")[0] == 200
    config = s.prometheus_config_file.read_text()
    for line in ("scrape_interval: 1s", "evaluation_interval: 1s", "honor_labels: true", "refresh_interval: 1s"):
        assert line in config
    assert json.dumps(str(s.scrape_targets_file)) in config
    assert processes.port_owner(s.prometheus_port).split("(")[1].startswith(s.prometheus_binary)

    deploy(sandbox, "recommendation", "v1.0.0")
    query = 'sum by (service, version, colour) (varai_http_requests_total{service="recommendation"})'
    result = wait_for(
        lambda: [r for r in promql(sandbox, query) if float(r["value"][1]) > 0],
        timeout=25,
        interval=0.5,
        what="Prometheus to have scraped requests to recommendation v1.0.0",
    )
    assert result[0]["metric"] == {"service": "recommendation", "version": "v1.0.0", "colour": "blue"}
    # The target's own labels (sandbox_slot) ride along; the metric's service/version/colour win.
    info = promql(sandbox, 'varai_service_info{service="recommendation"}')
    assert info[0]["metric"]["sandbox_slot"] == "recommendation-blue"
    assert info[0]["metric"]["job"] == "varai-sandbox"


def test_kill_9_of_prometheus_and_the_generator_then_up_brings_them_back(settings: SandboxSettings) -> None:
    sb = Sandbox(settings)
    try:
        sb.up()
        components = sb.store.read()["components"]
        prom, gen = components["prometheus"], components["traffic"]
        for pid in (prom["pid"], gen["pid"]):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not processes.is_alive(prom["pid"]) and not processes.is_alive(gen["pid"]))
        assert sb.status()["traffic"] == {"running": False, "rps": 0.0}

        sb.up()
        components = sb.store.read()["components"]
        assert components["prometheus"]["pid"] != prom["pid"]
        assert components["traffic"]["pid"] != gen["pid"]
        assert request(settings.prometheus_url, "/-/ready")[0] == 200  # up() waited for it
        assert sb.status()["traffic"] == {"running": True, "rps": settings.traffic_rps}

        # Explicit control: a stopped generator stays stopped through up(), start re-rates it.
        assert sb.stop_traffic() == {"running": False, "rps": 0.0}
        sb.up()
        assert sb.status()["traffic"]["running"] is False
        assert sb.start_traffic(50) == {"running": True, "rps": 50.0}
        pids = [c[k] for c in sb.store.read()["components"].values() for k in ("pid", "wrapper_pid")]
        assert all(processes.is_alive(p) for p in pids)
        with pytest.raises(SandboxError, match="at most 200"):
            sb.start_traffic(1000)
    finally:
        sb.down()
    assert not any(processes.is_alive(p) for p in pids)
    assert processes.find_ours(settings.home) == []
    assert sb.status()["traffic"] == {"running": False, "rps": 0.0}


def test_the_traffic_report_counts_the_failures_of_a_faulty_version(sandbox: Sandbox) -> None:
    sandbox.register_fault("v2.0.0", "errors", ["analytics"], rate=0.5)
    deploy(sandbox, "recommendation", "v1.0.0")
    deploy(sandbox, "api-gateway", "v1.0.0")
    deploy(sandbox, "analytics", "v2.0.0")
    sandbox.start_traffic(60)
    since = time.time() + 0.2  # requests sent at a rate that was just changed are still settling
    time.sleep(4)
    until = time.time()
    # A request sent before `until` is logged when its answer arrives: let the last ones land, so the
    # Python and the CLI reports below read the same requests.
    time.sleep(1.5)

    report = sandbox.traffic_report(since, until)
    events = report["by_path"]["/analytics/events"]
    assert events["total"] >= 25
    # The fault fails exactly every other request the process gets; only the window's edges blur it.
    assert abs(events["failed"] - events["total"] / 2) <= 2
    assert report["failed"] == events["failed"]  # and nothing else failed
    assert report["by_path"]["/analytics/health"]["failed"] == 0
    assert {k: v["failed"] for k, v in report["by_service"].items()} == {
        "analytics": events["failed"],
        "api-gateway": 0,
        "recommendation": 0,
    }
    assert report["by_version"]["v2.0.0"]["failed"] == events["failed"]
    assert report["by_version"]["v1.0.0"] == {"total": report["by_version"]["v1.0.0"]["total"], "failed": 0}
    assert report["by_status"]["500"] == events["failed"]
    assert report["total"] == sum(report["by_status"].values())
    assert since <= report["first_failure_ts"] <= report["last_failure_ts"] <= until
    assert len(report["failures"]) == min(events["failed"], 100)
    failure = report["failures"][0]
    assert (failure["service"], failure["status"], failure["version"], failure["colour"]) == (
        "analytics",
        500,
        "v2.0.0",
        "blue",
    )
    assert "fault injected" in failure["error"]

    # Spread evenly, not in bursts: at 60 req/s a quarter of a second holds about 15 requests.
    stamps = sorted(r["ts"] for r in _records(sandbox, since, until))
    assert len(stamps) == report["total"]
    assert max(sum(1 for t in stamps[i:] if t < start + 0.25) for i, start in enumerate(stamps)) <= 25

    done = run_cli(sandbox.settings, "traffic", "report", "--since", repr(since), "--until", repr(until), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(json.dumps(report))
    human = run_cli(sandbox.settings, "traffic", "report", "--since", "1m")
    assert human.returncode == 0 and "failed:" in human.stdout and "v2.0.0" in human.stdout


def _records(sb: Sandbox, since: float, until: float) -> list[dict]:
    lines = sb.settings.traffic_log.read_text().splitlines()
    return [r for r in map(json.loads, lines) if since <= r["ts"] <= until]


def test_unhealthy_after_a_delay_turns_503_then(sandbox: Sandbox) -> None:
    sandbox.register_fault("v4.0.0", "unhealthy", ["ai-discovery"], after_seconds=1.5)
    cand = sandbox.start_candidate("ai-discovery", "v4.0.0")
    started = time.monotonic()
    wait_listening(cand["url"])
    assert request(cand["url"], "/ai/health")[0] == 200
    wait_for(lambda: request(cand["url"], "/ai/health")[0] == 503, timeout=10, what="health to turn 503")
    assert time.monotonic() - started >= 1.5
    assert request(cand["url"], "/ai/discover?q=round")[0] == 200  # only health is broken
    time.sleep(0.3)
    assert request(cand["url"], "/health")[0] == 503  # for good


def test_up_refuses_without_prometheus_or_with_its_port_taken(settings: SandboxSettings) -> None:
    missing = Sandbox(dataclasses.replace(settings, prometheus_binary="/nonexistent/prometheus"))
    with pytest.raises(SandboxError, match=r"apt-get install prometheus` or run `make setup`"):
        missing.up()
    assert processes.find_ours(settings.home) == []

    sb = Sandbox(settings)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", settings.prometheus_port))
        squatter.listen()
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{settings.prometheus_port}.*PROMETHEUS_PORT"):
            sb.up()
    assert processes.find_ours(settings.home) == []
