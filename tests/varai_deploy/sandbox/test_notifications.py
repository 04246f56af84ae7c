"""What the notification stand-ins received and the faults they play, through ``Sandbox`` and the CLI;
started by ``up``, listed by ``status``, their connections handed to Airflow."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import stand_ins
from tests.support.notification_stack import NotificationStack, notification_stack
from tests.support.sandbox import run_cli
from varai_deploy.sandbox import Sandbox, SandboxError, SandboxSettings, processes
from varai_deploy.sandbox.components import load

EMAIL = {"to": ["devops@varai.ai"], "subject": "v1.2.3 rolled back", "severity": "critical", "text": "Rolled back\nwhy"}


def test_notifications_are_listed_by_channel_and_time(tmp_path: Path):
    with notification_stack(tmp_path / "sandbox") as stack:
        sandbox = Sandbox(stack.settings)
        assert sandbox.notifications() == []
        stack.post_slack({"text": "first"})
        stack.post_email(EMAIL)
        middle = datetime.now(UTC)
        stack.post_slack({"blocks": []})
        stack.post_email(EMAIL, token="wrong")

        every = sandbox.notifications()
        assert [(r["channel"], r["status"]) for r in every] == [
            ("slack", 200),
            ("email", 202),
            ("slack", 400),
            ("email", 401),
        ]
        assert every[0] == {**stack.records("slack")[0], "channel": "slack"}
        assert every[1]["answer"]["accepted"] == 1 and every[1]["body"] == EMAIL
        assert [r["status"] for r in sandbox.notifications("email")] == [202, 401]
        assert [r["status"] for r in sandbox.notifications(since=middle)] == [400, 401]
        assert [r["status"] for r in sandbox.notifications("slack", since=middle.replace(tzinfo=None))] == [400]
        assert sandbox.notifications(since=datetime.now(UTC) + timedelta(seconds=1)) == []
        with pytest.raises(SandboxError, match="unknown notification channel 'sms'"):
            sandbox.notifications("sms")


def test_faults_through_the_sandbox_survive_a_restart_of_the_stand_in(tmp_path: Path):
    with notification_stack(tmp_path / "sandbox") as stack:
        sandbox = Sandbox(stack.settings)
        assert sandbox.fail_notifications("slack", count=3) == {
            "channel": "slack",
            "fault": {"status": 500, "remaining": 3},
        }
        sandbox.fail_notifications("email", status=503)
        assert stack.post_slack({"text": "one"}).status_code == 500

        restart(stack, "slack")
        assert [stack.post_slack({"text": n}).status_code for n in ("two", "three", "four")] == [500, 500, 200]
        assert stack.post_email(EMAIL).status_code == 503
        restart(stack, "email")
        assert stack.post_email(EMAIL).status_code == 503  # until cleared

        assert sandbox.clear_notification_faults() == ["email"]
        assert stack.post_email(EMAIL).status_code == 202
        assert sandbox.clear_notification_faults("slack") == []
        with pytest.raises(SandboxError, match="status must be an HTTP error status"):
            sandbox.fail_notifications("slack", status=200)
        statuses = [r["status"] for r in sandbox.notifications("slack")]
        assert statuses == [500, 500, 500, 200]


def restart(stack: NotificationStack, name: str) -> None:
    pid = stack.pids[name]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while processes.is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    stack.pids[name] = stand_ins.start(stack.settings, load(name))


def test_with_the_stand_in_down_a_fault_is_refused_and_clearing_removes_it(tmp_path: Path):
    with notification_stack(tmp_path / "sandbox", ("email",)) as stack:
        Sandbox(stack.settings).fail_notifications("email", status=500)
    sandbox = Sandbox(stack.settings)
    fault_file = stack.settings.home / "notifications" / "email.fault.json"
    assert json.loads(fault_file.read_text()) == {"status": 500, "remaining": None}
    with pytest.raises(SandboxError, match="the sandbox email is not running"):
        sandbox.fail_notifications("email")
    assert sandbox.clear_notification_faults() == ["email"]
    assert not fault_file.exists()


def test_the_notifications_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with notification_stack(tmp_path / "sandbox") as stack:
        monkeypatch.setenv("VARAI_SANDBOX_COMPONENT_PORT_BASE", str(stack.settings.component_port_base))
        monkeypatch.setenv("VARAI_SANDBOX_COMPONENTS", "slack,email")
        s = stack.settings
        done = run_cli(s, "notifications", "fail", "--channel", "email", "--count", "1")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "email: the next 1 gets 500"
        stack.post_slack({"text": "v1.2.3 is live\nsecond line", "metadata": {"event_payload": {"severity": "info"}}})
        stack.post_slack({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "Rollback"}}]})
        stack.post_email(EMAIL)

        listed = run_cli(s, "notifications", "--json")
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == Sandbox(s).notifications()
        plain = run_cli(s, "notifications", "--since", "1m").stdout.splitlines()
        assert [line.split()[2:] for line in plain] == [
            ["slack", "200", "info", "v1.2.3", "is", "live"],
            ["slack", "200", "-", "Rollback"],
            ["email", "500", "critical", "Rolled", "back"],
        ]
        assert run_cli(s, "notifications", "--channel", "email", "--since", "1m").stdout.count("\n") == 1

        cleared = run_cli(s, "notifications", "clear-faults")
        assert (cleared.returncode, cleared.stdout.strip()) == (0, "no notification fault was set")
        bad = run_cli(s, "notifications", "fail", "--channel", "slack", "--status", "302")
        assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
        assert run_cli(s, "notifications", "fail", "--channel", "pager").returncode == 2


def test_up_starts_both_status_lists_them_and_their_connections_go_to_airflow(
    settings: SandboxSettings, monkeypatch: pytest.MonkeyPatch
):
    # On free ports at the end of the test's own block (base+54, base+55: the services end at base+53).
    s = dataclasses.replace(
        settings, components=("slack", "email"), component_port_base=settings.gateway_port + 47, traffic_rps=0
    )
    monkeypatch.setenv("VARAI_SANDBOX_COMPONENT_PORT_BASE", str(s.component_port_base))
    monkeypatch.setenv("VARAI_SANDBOX_COMPONENTS", "slack,email")
    sandbox = Sandbox(s)
    try:
        endpoints = sandbox.up()["endpoints"]
        assert endpoints["slack"] == f"http://127.0.0.1:{s.gateway_port + 54}"
        assert endpoints["email"] == f"http://127.0.0.1:{s.gateway_port + 55}"
        status = run_cli(s, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["endpoints"] == endpoints
        lines = s.connections_env_file.read_text().splitlines()[1:]
        exports = {
            k: json.loads(shlex.split(v)[0]) for k, v in (ln.removeprefix("export ").split("=", 1) for ln in lines)
        }
        assert set(exports) == {
            "AIRFLOW_CONN_VARAI_GATEWAY",
            "AIRFLOW_CONN_VARAI_SLACK",
            "AIRFLOW_CONN_VARAI_EMAIL_ENDPOINT",
        }
        slack, email = exports["AIRFLOW_CONN_VARAI_SLACK"], exports["AIRFLOW_CONN_VARAI_EMAIL_ENDPOINT"]
        assert (slack["conn_type"], slack["host"]) == ("slackwebhook", f"{endpoints['slack']}/services")
        assert (email["conn_type"], email["port"]) == ("http", s.gateway_port + 55)
        assert load("slack").ready(s, s.component_port("slack")) and load("email").ready(s, s.component_port("email"))
    finally:
        sandbox.down()
    markers = [load(name).marker(s, s.component_port(name)) for name in s.components]
    assert processes.find_ours(s.home, markers) == []
