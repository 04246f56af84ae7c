"""The command line as scripts use it: JSON status, fault registration, clean errors."""

from __future__ import annotations

import json
import socket

from tests.support.sandbox import deploy, run_cli
from varai_deploy.sandbox import Sandbox, SandboxSettings, processes


def test_status_json_and_human_status(sandbox: Sandbox) -> None:
    deploy(sandbox, "analytics", "v1.2.0")
    done = run_cli(sandbox.settings, "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status == sandbox.status()
    assert status["services"]["analytics"]["live"]["version"] == "v1.2.0"
    assert status["endpoints"]["gateway"] == sandbox.settings.gateway_url

    human = run_cli(sandbox.settings, "status")
    assert human.returncode == 0, human.stderr
    line = next(ln for ln in human.stdout.splitlines() if ln.startswith("analytics"))
    assert "blue v1.2.0" in line and line.rstrip().endswith("200 v1.2.0 blue")


def test_fault_commands(settings: SandboxSettings) -> None:
    done = run_cli(settings, "fault", "--version", "v9.0.0", "--mode", "crash", "--service", "recommendation")
    assert done.returncode == 0, done.stderr
    done = run_cli(settings, "fault", "--version", "v9.0.0", "--mode", "errors", "--rate", "0.2")
    assert done.returncode == 0, done.stderr
    listed = json.loads(run_cli(settings, "fault", "--list").stdout)
    assert listed == {
        "v9.0.0": [
            {"mode": "crash", "services": ["recommendation"]},
            {"mode": "errors", "services": None, "rate": 0.2},
        ]
    }
    done = run_cli(settings, "fault", "--version", "v9.1.0", "--mode", "unhealthy", "--after", "5s")
    assert done.returncode == 0, done.stderr
    done = run_cli(settings, "fault", "--version", "v9.1.0", "--mode", "slow", "--latency", "6s")
    assert done.returncode == 0, done.stderr
    assert json.loads(run_cli(settings, "fault", "--list").stdout)["v9.1.0"] == [
        {"mode": "unhealthy", "services": None, "after_seconds": 5.0},
        {"mode": "slow", "services": None, "latency_seconds": 6.0},
    ]
    bad = run_cli(settings, "fault", "--version", "v9.1.0", "--mode", "crash", "--after", "5s")
    assert bad.returncode == 1 and "only applies to fault modes 'unhealthy' and 'flap'" in bad.stderr
    bad = run_cli(settings, "fault", "--version", "v9.1.0", "--mode", "slow", "--latency", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    now = run_cli(settings, "fault", "--version", "v9.1.0", "--mode", "unhealthy", "--now")
    assert now.returncode == 0 and "no process of v9.1.0 is running" in now.stdout, now.stderr
    assert run_cli(settings, "fault", "--clear", "--version", "v9.1.0").returncode == 0
    bad = run_cli(settings, "fault", "--version", "v9.0.0", "--mode", "errors")
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    assert run_cli(settings, "fault", "--clear", "--version", "v9.0.0").returncode == 0
    assert json.loads(run_cli(settings, "fault", "--list").stdout) == {}


def test_up_on_a_taken_port_exits_1_with_the_message(settings: SandboxSettings) -> None:
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", settings.gateway_port))
        squatter.listen()
        done = run_cli(settings, "up")
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: port 127.0.0.1:{settings.gateway_port}")
    assert "VARAI_SANDBOX_GATEWAY_PORT" in done.stderr
    assert "Traceback" not in done.stderr
    run_cli(settings, "down")


def test_processes_started_by_the_cli_outlive_it(settings: SandboxSettings) -> None:
    try:
        up = run_cli(settings, "up")
        assert up.returncode == 0, up.stderr
        assert "gateway " in up.stdout and ": up" in up.stdout
        assert Sandbox(settings).is_up()  # the `up` process has exited; its gateway has not
        assert "traffic: 20 req/s" in up.stdout
        stop = run_cli(settings, "traffic", "stop")
        assert stop.returncode == 0 and not Sandbox(settings).status()["traffic"]["running"]
        start = run_cli(settings, "traffic", "start", "--rps", "5")
        assert start.returncode == 0, start.stderr
        assert Sandbox(settings).status()["traffic"] == {"running": True, "rps": 5.0}
    finally:
        down = run_cli(settings, "down")
    assert down.returncode == 0, down.stderr
    assert not Sandbox(settings).is_up()
    assert processes.find_ours(settings.home) == []
