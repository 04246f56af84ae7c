"""Automatic failover to healthy instances, with real processes: a live revision runs several,
the gateway fails over between them, the supervisor brings a dead one back; candidates are
never healed, and ``down`` leaves nothing behind."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.sandbox import deploy, request, wait_for, wait_listening
from varai_deploy.sandbox import Sandbox, SandboxError, SandboxSettings, processes
from varai_deploy.sandbox.gateway import Balancer, make_handler
from varai_deploy.sandbox.routes import RouteTable
from varai_deploy.sandbox.serving import Server
from varai_deploy.sandbox.state import write_json_atomic
from varai_deploy.services import SERVICES


def _live(sb: Sandbox, service: str) -> dict:
    return sb.status()["services"][service]["live"]


def _wait_all_listening(sb: Sandbox, service: str) -> None:
    for instance in _live(sb, service)["instances"]:
        wait_listening(sb.settings.url_for_port(instance["port"]))


def test_a_live_revision_runs_every_instance_on_its_ports_and_status_lists_them(sandbox: Sandbox) -> None:
    s = sandbox.settings
    assert s.instances == 2
    candidate = sandbox.start_candidate("recommendation", "v1.0.0")
    wait_listening(candidate["url"])
    idle = sandbox.status()["services"]["recommendation"]["idle"]
    assert [(i["instance"], i["port"]) for i in idle["instances"]] == [(0, s.port_for("recommendation", "blue"))]

    live = sandbox.switch("recommendation", "blue")["live"]
    ports = [s.port_for("recommendation", "blue", i) for i in range(s.instances)]
    assert ports[1] == ports[0] + 2  # green's replica is +3: both colours stay in the service's stride
    assert [(i["instance"], i["port"], i["running"]) for i in live["instances"]] == [
        (0, ports[0], True),
        (1, ports[1], True),
    ]
    assert live["instances"][0]["pid"] == candidate["pid"] and live["restarts"] == []
    _wait_all_listening(sandbox, "recommendation")
    for port in ports:
        status, headers, _ = request(port, SERVICES["recommendation"].health_path)
        assert (status, headers["x-served-version"], headers["x-served-colour"]) == (200, "v1.0.0", "blue")
    routes = json.loads(s.routes_file.read_text())["routes"]
    assert routes["recommendation"]["instances"] == ports and routes["recommendation"]["port"] == ports[0]
    targets = json.loads(s.scrape_targets_file.read_text())
    assert sorted((t["targets"][0], t["labels"]["sandbox_instance"]) for t in targets) == [
        (f"127.0.0.1:{ports[0]}", "0"),
        (f"127.0.0.1:{ports[1]}", "1"),
    ]
    # Requests through the gateway reach every instance (round-robin).
    deploy(sandbox, "api-gateway", "v1.0.0")
    _wait_all_listening(sandbox, "api-gateway")
    served = re.compile(r'varai_http_requests_total\{[^}]*code="200"[^}]*path_group="status"[^}]*\} [1-9]')

    def every_instance_served() -> bool:
        assert request(s.gateway_url, "/api/status")[0] == 200
        instances = _live(sandbox, "api-gateway")["instances"]
        return all(served.search(request(i["port"], "/metrics")[2].decode()) for i in instances)

    wait_for(every_instance_served, timeout=5, what="requests to reach both instances")


def test_every_way_of_stopping_a_slot_stops_its_replicas_and_faults_reach_them(sandbox: Sandbox) -> None:
    deploy(sandbox, "analytics", "v1.0.0")
    deploy(sandbox, "analytics", "v1.1.0")  # green live; blue keeps both instances for an instant rollback
    status = sandbox.status()["services"]["analytics"]
    blue = [i["pid"] for i in status["idle"]["instances"]]
    green = [i["pid"] for i in status["live"]["instances"]]
    assert len(blue) == len(green) == 2 and all(processes.is_alive(p) for p in blue + green)

    _wait_all_listening(sandbox, "analytics")
    sandbox.register_fault("v1.1.0", "unhealthy", ["analytics"])
    assert sandbox.apply_faults("v1.1.0") == ["analytics-green"]
    for instance in _live(sandbox, "analytics")["instances"]:
        wait_for(lambda p=instance["port"]: request(p, "/analytics/health")[0] == 503, timeout=3, what="SIGHUP")

    # A new candidate replaces blue (the old revision and its replica)...
    candidate = sandbox.start_candidate("analytics", "v1.2.0")
    wait_for(lambda: not any(processes.is_alive(p) for p in blue), what="blue's instances to stop")
    assert [i["pid"] for i in sandbox.status()["services"]["analytics"]["idle"]["instances"]] == [candidate["pid"]]
    wait_listening(candidate["url"])
    sandbox.switch("analytics", "blue")
    # ...retiring green stops both of its instances...
    retired = sandbox.retire("analytics", "green")
    assert retired["state"] == "retired"
    assert [(i["instance"], i["running"]) for i in retired["instances"]] == [(0, False)]
    assert not any(processes.is_alive(p) for p in green)
    # ...and removing the service stops the rest.
    blue = [i["pid"] for i in _live(sandbox, "analytics")["instances"]]
    assert len(blue) == 2
    sandbox.remove("analytics")
    assert not any(processes.is_alive(p) for p in blue)


@pytest.mark.parametrize("instance", [0, 1])
def test_a_killed_live_instance_costs_users_nothing_and_comes_back_by_itself(sandbox: Sandbox, instance: int) -> None:
    s = sandbox.settings
    service = "recommendation"
    health = SERVICES[service].health_path
    deploy(sandbox, service, "v1.0.0")
    _wait_all_listening(sandbox, service)
    assert sandbox.status()["supervisor"] == {"running": True}
    before = _live(sandbox, service)["instances"][instance]

    killed = sandbox.kill_instance(service, instance)
    assert set(killed) == {"service", "colour", "version", "instance", "region", "pid", "killed_at"}
    assert (killed["service"], killed["colour"], killed["version"]) == (service, "blue", "v1.0.0")
    assert (killed["instance"], killed["pid"]) == (instance, before["pid"])
    assert datetime.fromisoformat(killed["killed_at"]).utcoffset().total_seconds() == 0
    assert not processes.is_alive(before["pid"])

    first = [request(s.gateway_url, health) for _ in range(50)]
    answers = [status for status, _, _ in first]
    assert answers == [200] * 50, [body.get("detail") for status, _, body in first if status != 200][:3]

    def back() -> dict | None:
        # Keep users coming while the instance is away and while the new process starts.
        answers.append(request(s.gateway_url, health)[0])
        now = _live(sandbox, service)["instances"][instance]
        return (
            now
            if now["running"] and now["pid"] != before["pid"] and processes.is_listening(s.host, now["port"])
            else None
        )

    now = wait_for(back, timeout=10, interval=0.02, what="the supervisor to bring the instance back")
    answers += [request(s.gateway_url, health)[0] for _ in range(20)]
    assert set(answers) == {200}, f"{answers.count(200)} of {len(answers)} answered 200"
    assert now["port"] == before["port"] == s.port_for(service, "blue", instance)
    restarts = _live(sandbox, service)["restarts"]
    assert len(restarts) == 1
    restart = restarts[0]
    assert set(restart) == {"instance", "old_pid", "exit_code", "pid", "restarted_at"}
    assert (restart["instance"], restart["old_pid"], restart["exit_code"], restart["pid"]) == (
        instance,
        before["pid"],
        -signal.SIGKILL,
        now["pid"],
    )
    assert datetime.fromisoformat(restart["restarted_at"]) >= datetime.fromisoformat(killed["killed_at"])
    log = s.log_file("supervisor").read_text()
    assert f"restarted {service} blue (v1.0.0) instance {instance}: pid {before['pid']} exited with code -9" in log
    assert f"new pid {now['pid']}" in log
    assert sandbox.heal() == []  # nothing left to heal


def test_heal_restarts_live_instances_only_never_a_candidate(sandbox: Sandbox) -> None:
    deploy(sandbox, "analytics", "v1.0.0")
    candidate = deploy(sandbox, "analytics", "v1.1.0", switch=False)
    with pytest.raises(SandboxError, match="no revision of it is live"):
        sandbox.kill_instance("recommendation")
    with pytest.raises(SandboxError, match="instances 0-1"):
        sandbox.kill_instance("analytics", 2)

    # A candidate that dies stays dead: the release's own checks must see it.
    os.kill(candidate["pid"], signal.SIGKILL)
    wait_for(lambda: not processes.is_alive(candidate["pid"]), what="the candidate to die")
    assert sandbox.heal() == []
    time.sleep(1.5)  # three of the supervisor's rounds
    idle = sandbox.status()["services"]["analytics"]["idle"]
    assert (idle["running"], idle["pid"], idle["restarts"]) == (False, candidate["pid"], [])
    assert sandbox.process_state("analytics", "green")["exit_code"] == -signal.SIGKILL

    # heal() itself (without waiting for the supervisor) restarts a live instance.
    live = _live(sandbox, "analytics")
    os.kill(live["pid"], signal.SIGKILL)
    wait_for(lambda: not processes.is_alive(live["pid"]), what="the live instance to die")
    healed = sandbox.heal()
    restarted = _live(sandbox, "analytics")
    if healed:  # or the supervisor was first; either way it is back, recorded once
        assert [(h["service"], h["colour"], h["version"], h["instance"]) for h in healed] == [
            ("analytics", "blue", "v1.0.0", 0)
        ]
        assert healed[0]["pid"] == restarted["pid"]
    else:
        restarted = wait_for(lambda: (v := _live(sandbox, "analytics"))["running"] and v, what="the restart")
    assert [r["old_pid"] for r in restarted["restarts"]] == [live["pid"]]
    assert restarted["pid"] != live["pid"] and restarted["port"] == live["port"]


def test_down_stops_the_supervisor_first_and_leaves_no_process(settings: SandboxSettings) -> None:
    sb = Sandbox(settings)
    try:
        sb.up()
        deploy(sb, "face-analysis", "v1.0.0")
        supervisor = sb.store.read()["components"]["supervisor"]
        assert processes.is_alive(supervisor["pid"])
        saved = SandboxSettings.from_home(settings.home)
        assert saved == settings  # what the supervisor runs with
        sb.kill_instance("face-analysis", 1)
    finally:
        sb.down()
    assert processes.find_ours(settings.home) == []
    assert not processes.is_alive(supervisor["pid"])
    assert sb.status()["supervisor"] == {"running": False}
    # A sandbox that is down is not healed: down stopped its services on purpose.
    assert sb.heal() == []
    assert processes.find_ours(settings.home) == []
    # up brings back the live revision with every instance, and the supervisor.
    try:
        status = sb.up()
        assert status["supervisor"] == {"running": True}
        live = status["services"]["face-analysis"]["live"]
        assert [i["running"] for i in live["instances"]] == [True, True]
    finally:
        sb.down(purge=True)
    assert processes.find_ours(settings.home) == []


def test_the_supervisor_refuses_a_home_without_settings(tmp_path: Path) -> None:
    from varai_deploy.sandbox import supervisor

    assert supervisor.main(["--home", str(tmp_path)]) == 2
    with pytest.raises(SandboxError, match="settings.json"):
        SandboxSettings.from_home(tmp_path)


# -- the gateway on its own: fail over between a route's instances ---------------------------------
class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"port": self.server.server_address[1]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _Resetter(_Upstream):
    """Reads the request, then closes without an answer: what a crash mid-request looks like."""

    def do_GET(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Server:
    server = Server("127.0.0.1", 0, handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    routes = tmp_path / "routes.json"
    server = _serve(make_handler(RouteTable(routes)))
    try:
        yield server.server_address[1], routes
    finally:
        server.shutdown()
        server.server_close()


def _route(*ports: int) -> dict:
    route = {"colour": "blue", "version": "v1.0.0", "host": "127.0.0.1", "port": ports[0], "instances": list(ports)}
    return {"schema": 1, "routes": {"api-gateway": route}}


def test_the_gateway_answers_from_the_next_instance_when_one_refuses(gateway: tuple[int, Path]) -> None:
    port, routes = gateway
    good, other = _serve(_Upstream), _serve(_Upstream)
    try:
        dead = _closed_port()
        good_port, other_port = good.server_address[1], other.server_address[1]
        write_json_atomic(routes, _route(dead, good_port))
        answers = [request(port, "/api/status") for _ in range(10)]
        assert [(status, body["port"]) for status, _, body in answers] == [(200, good_port)] * 10

        # Both alive: round-robin.
        write_json_atomic(routes, _route(good_port, other_port))
        seen = [request(port, "/api/status")[2]["port"] for _ in range(6)]
        assert sorted(seen) == sorted([good_port, other_port] * 3)

        # Every instance refuses: the 502 naming the revision, as with one instance.
        write_json_atomic(routes, _route(dead, _closed_port()))
        status, headers, body = request(port, "/api/status")
        assert (status, body["version"], headers["x-served-service"]) == (502, "v1.0.0", "sandbox-gateway")
    finally:
        for server in (good, other):
            server.shutdown()
            server.server_close()


def test_a_reset_mid_request_is_a_502_not_retried_elsewhere(gateway: tuple[int, Path]) -> None:
    port, routes = gateway
    resetter, good = _serve(_Resetter), _serve(_Upstream)
    try:
        # A fresh gateway starts its round-robin at the first instance: the one that resets.
        write_json_atomic(routes, _route(resetter.server_address[1], good.server_address[1]))
        status, _, body = request(port, "/api/status")
        assert status == 502 and body["version"] == "v1.0.0"  # it may have been processed: not sent twice
        assert request(port, "/api/status")[0] == 200  # the next goes to the other instance
    finally:
        for server in (resetter, good):
            server.shutdown()
            server.server_close()


def test_the_balancer_rotates_and_tries_a_refusing_port_last_for_a_second() -> None:
    now = [100.0]
    balancer = Balancer(down_seconds=1.0, clock=lambda: now[0])
    route = {"host": "h", "port": 1, "instances": [1, 2, 3]}
    assert [balancer.order("svc", route) for _ in range(4)] == [[1, 2, 3], [2, 3, 1], [3, 1, 2], [1, 2, 3]]
    balancer.refused("h", 2)
    assert [balancer.order("svc", route) for _ in range(3)] == [[3, 1, 2], [3, 1, 2], [1, 3, 2]]
    now[0] += 1.01
    assert balancer.order("svc", route) == [2, 3, 1]
    assert balancer.order("other", {"host": "h", "port": 7}) == [7]  # a route from before instances
