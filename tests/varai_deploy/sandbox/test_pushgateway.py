"""The sandbox's Pushgateway and the backup alerts: Debian's pushgateway started as ``sandbox up`` starts it,
keeping what was pushed across a crash, scraped by the sandbox's real Prometheus with the pushed labels
intact, and the generated alert rules loaded, reloaded and really evaluated there."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import stand_ins
from tests.support.pushgateway_stack import (
    PushgatewayStack,
    free_settings,
    prometheus_api,
    pushgateway_stack,
    sandbox_with_pushgateway,
)
from tests.support.sandbox import run_cli, wait_for
from varai_deploy.sandbox import Sandbox, SandboxError, SandboxSettings, processes, prometheus, pushgateway
from varai_deploy.sandbox.components import COMPONENT_NAMES, load
from varai_deploy.sandbox.pushgateway import COMPONENT

PROMTOOL = "/usr/bin/promtool"
JOB = "database_backup"
SANDBOX_DB = {"environment": "sandbox", "database": "app_db"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[PushgatewayStack]:
    with pushgateway_stack(tmp_path / "sandbox") as running:
        yield running


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    with sandbox_with_pushgateway(tmp_path / "sandbox") as running:
        yield running


def push(url: str, job: str, labels: dict[str, str], **gauges: float) -> None:
    """A raw push of untyped samples, as any client may send them (the hook has its own tests)."""
    path = "/".join(f"{k}/{v}" for k, v in labels.items())
    body = "".join(f"{name} {value!r}\n" for name, value in gauges.items())
    answer = requests.post(f"{url}/metrics/job/{job}/{path}", data=body, timeout=5)
    assert answer.status_code == 200, answer.text


def firing(box: Sandbox, alertname: str) -> list[dict]:
    alerts = prometheus_api(box.settings, "/api/v1/alerts")["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def scrape_urls(settings: SandboxSettings) -> dict[str, str]:
    """The running Prometheus' targets other than the services': {job: scrape URL}."""
    targets = prometheus_api(settings, "/api/v1/targets")["activeTargets"]
    return {t["labels"]["job"]: t["scrapeUrl"] for t in targets if t["labels"]["job"] != prometheus.JOB_NAME}


def loaded_rules(settings: SandboxSettings) -> dict[str, list[str]]:
    """The rule groups the running Prometheus evaluates: {group: [alert names]}."""
    groups = prometheus_api(settings, "/api/v1/rules")["groups"]
    return {g["name"]: [r["name"] for r in g["rules"]] for g in groups}


def evaluated_rules(settings: SandboxSettings) -> list[dict]:
    """The loaded rules once each has been evaluated without an error (the PromQL works); [] until then."""
    rules = [r for g in prometheus_api(settings, "/api/v1/rules")["groups"] for r in g["rules"]]
    return rules if rules and all(r["health"] == "ok" for r in rules) else []


def test_it_is_a_component_with_an_http_connection_and_its_data_under_the_home(tmp_path):
    assert COMPONENT_NAMES[10] == "pushgateway" and load("pushgateway") is COMPONENT and COMPONENT.offset == 10
    s = free_settings(tmp_path / "sandbox")
    port = s.component_port("pushgateway")
    assert COMPONENT.connections(s, port) == {
        "varai_pushgateway": {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http"}
    }
    assert COMPONENT.url(s, port) == f"http://127.0.0.1:{port}"
    argv = COMPONENT.marker(s, port).argv()
    assert argv[0] == "/usr/bin/prometheus-pushgateway" and COMPONENT.marker(s, port).matches(argv)
    flags = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert flags == {
        "--web.listen-address": f"127.0.0.1:{port}",
        "--persistence.file": str(s.home / "pushgateway" / "pushgateway.data"),
        "--persistence.interval": "1s",
    }


def test_a_missing_pushgateway_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(pushgateway, "BINARY", str(tmp_path / "no-pushgateway"))
    with pytest.raises(SandboxError, match=r"apt-get install prometheus-pushgateway` or run `make setup`"):
        pushgateway.check_installed(free_settings(tmp_path / "sandbox"))


def test_it_is_ready_and_keeps_what_was_pushed_across_a_crash(stack):
    assert COMPONENT.ready(stack.settings, stack.port)
    push(stack.url, JOB, SANDBOX_DB, varai_backup_last_verified_timestamp_seconds=1700000000.0)
    data = pushgateway.persistence_file(stack.settings)
    wait_for(lambda: data.is_file() and b"app_db" in data.read_bytes(), timeout=5, what="the push on disk")

    pid = stack.pids["pushgateway"]
    os.kill(pid, signal.SIGKILL)  # a crash: nothing written at exit
    wait_for(lambda: not processes.is_alive(pid), timeout=5, what="the pushgateway to die")
    assert not COMPONENT.ready(stack.settings, stack.port)
    stack.pids["pushgateway"] = stand_ins.start(stack.settings, COMPONENT)
    kept = stack.group(job=JOB, **SANDBOX_DB)
    assert kept is not None and kept["varai_backup_last_verified_timestamp_seconds"][0] == 1700000000.0


def test_the_generated_rules_and_config_pass_promtool(tmp_path):
    if not os.access(PROMTOOL, os.X_OK):
        pytest.skip(f"{PROMTOOL} is not installed (Debian ships it with prometheus)")
    s = free_settings(tmp_path / "sandbox")
    config = prometheus.write_config(s)
    rules = prometheus.rules_file(s)
    assert rules == s.home / "prometheus" / "rules" / "backups.yml"
    checked = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and "SUCCESS: 3 rules found" in checked.stdout, checked.stdout + checked.stderr
    services = prometheus.service_rules_file(s)
    checked = subprocess.run([PROMTOOL, "check", "rules", str(services)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and "SUCCESS: 4 rules found" in checked.stdout, checked.stdout + checked.stderr
    checked = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and "SUCCESS: 2 rule files found" in checked.stdout, checked.stderr


def test_the_scrape_target_follows_the_pushgateways_port_and_is_left_out_without_it(tmp_path):
    s = free_settings(tmp_path / "sandbox")
    moved = dataclasses.replace(s, component_port_base=s.component_port_base + 1)
    for settings in (s, moved):
        text = prometheus.config_text(settings)
        job = text[text.index("job_name: varai-pushgateway") :]
        assert f'targets: ["127.0.0.1:{settings.component_port("pushgateway")}"]' in job
        assert "honor_labels: true" in job
    assert "varai-pushgateway" not in prometheus.config_text(dataclasses.replace(s, components=()))


def test_up_starts_it_prometheus_scrapes_it_with_the_pushed_labels_and_down_stops_it(tmp_path):
    box = Sandbox(free_settings(tmp_path / "sandbox"))
    s = box.settings
    port = s.component_port("pushgateway")
    try:
        endpoints = box.up()["endpoints"]
        assert endpoints["pushgateway"] == f"http://127.0.0.1:{port}"
        lines = s.connections_env_file.read_text().splitlines()[1:]
        exports = dict(line.removeprefix("export ").split("=", 1) for line in lines)
        assert (
            json.loads(shlex.split(exports["AIRFLOW_CONN_VARAI_PUSHGATEWAY"])[0])
            == COMPONENT.connections(s, port)["varai_pushgateway"]
        )
        status = run_cli(s, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["endpoints"]["pushgateway"] == endpoints["pushgateway"]

        push(endpoints["pushgateway"], JOB, SANDBOX_DB, varai_backup_rpo_seconds=900)
        found = wait_for(
            lambda: prometheus_api(s, "/api/v1/query", query="varai_backup_rpo_seconds")["result"],
            timeout=20,
            interval=0.2,
            what="Prometheus to scrape the pushed gauge",
        )
        # honor_labels: the pusher's job and grouping labels, not the scrape job's.
        assert [r["metric"] for r in found] == [{"__name__": "varai_backup_rpo_seconds", "job": JOB, **SANDBOX_DB}]
        assert found[0]["value"][1] == "900"
        assert scrape_urls(s) == {"varai-pushgateway": f"http://127.0.0.1:{port}/metrics"}
    finally:
        box.down()
    assert processes.find_ours(s.home, [COMPONENT.marker(s, port)]) == []
    assert "pushgateway" not in box.status()["endpoints"]


def test_an_up_applies_new_config_and_rules_to_the_running_prometheus_without_a_restart(tmp_path):
    """An older sandbox (no Pushgateway, other rules) brought up by this code: same Prometheus, reloaded."""
    with_pushgateway = free_settings(tmp_path / "sandbox")
    old = Sandbox(dataclasses.replace(with_pushgateway, components=()))
    s = old.settings
    port = with_pushgateway.component_port("pushgateway")
    try:
        old.up()
        pid = old.store.read()["components"]["prometheus"]["pid"]
        assert loaded_rules(s) == {
            "varai-backups": ["DatabaseBackupTooOld", "DatabaseBackupFailed", "BackupMetricsUnreachable"],
            "varai-services": [a["alert"] for a in prometheus.SERVICE_ALERTS],
        }
        # Alerts that say what to do, evaluated without error by this Prometheus; the backups' are critical.
        rules = wait_for(lambda: evaluated_rules(s), timeout=10, what="the rules' first evaluation")
        for rule in rules:
            assert rule["labels"]["severity"] in ("critical", "warning")
            assert {"summary", "description"} <= set(rule["annotations"])
            if rule["name"].startswith(("Database", "Backup")):
                assert rule["labels"] == {"severity": "critical"}
        assert scrape_urls(s) == {}
        prometheus.rules_file(s).write_text("groups: []\n")
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: "varai-backups" not in loaded_rules(s), timeout=10, what="Prometheus to load the edited rules")

        Sandbox(with_pushgateway).up()
        wait_for(lambda: len(loaded_rules(s).get("varai-backups", [])) == 3, timeout=10, what="the rules again")
        wait_for(lambda: scrape_urls(s) == {"varai-pushgateway": f"http://127.0.0.1:{port}/metrics"}, timeout=10)
        assert old.store.read()["components"]["prometheus"]["pid"] == pid and processes.is_alive(pid)
    finally:
        Sandbox(with_pushgateway).down()
    assert processes.find_ours(s.home, [COMPONENT.marker(with_pushgateway, port)]) == []


def test_a_backup_older_than_its_rpo_fires_until_a_fresh_one_is_verified(box):
    url = box.status()["endpoints"]["pushgateway"]
    now = time.time()
    push(url, JOB, SANDBOX_DB, varai_backup_rpo_seconds=60, varai_backup_last_verified_timestamp_seconds=now - 3600)
    [alert] = wait_for(
        lambda: firing(box, "DatabaseBackupTooOld"), timeout=20, interval=0.2, what="DatabaseBackupTooOld"
    )
    assert alert["labels"] == {"alertname": "DatabaseBackupTooOld", "severity": "critical", **SANDBOX_DB}
    assert 3600 <= float(alert["value"]) < 3700  # the backup's age
    assert "app_db in sandbox" in alert["annotations"]["description"]
    assert firing(box, "DatabaseBackupFailed") == []

    push(url, JOB, SANDBOX_DB, varai_backup_last_verified_timestamp_seconds=time.time())
    wait_for(lambda: not firing(box, "DatabaseBackupTooOld"), timeout=20, interval=0.2, what="the alert to stop")


def test_a_failure_after_the_last_verified_backup_fires_and_so_does_one_before_any(box):
    url = box.status()["endpoints"]["pushgateway"]
    now = time.time()
    push(url, JOB, SANDBOX_DB, varai_backup_rpo_seconds=3600, varai_backup_last_verified_timestamp_seconds=now - 120)
    push(url, JOB, SANDBOX_DB, varai_backup_last_failure_timestamp_seconds=now - 600)  # an older failure: fine
    # A database whose backups have only ever failed.
    never = {"environment": "sandbox", "database": "new_db"}
    push(url, JOB, never, varai_backup_last_failure_timestamp_seconds=now - 5)
    alerts = wait_for(lambda: firing(box, "DatabaseBackupFailed"), timeout=20, interval=0.2, what="the alert")
    assert [a["labels"]["database"] for a in alerts] == ["new_db"]

    push(url, JOB, SANDBOX_DB, varai_backup_last_failure_timestamp_seconds=now)
    wait_for(
        lambda: {a["labels"]["database"] for a in firing(box, "DatabaseBackupFailed")} == {"new_db", "app_db"},
        timeout=20,
        interval=0.2,
        what="DatabaseBackupFailed for app_db",
    )
    [alert] = [a for a in firing(box, "DatabaseBackupFailed") if a["labels"]["database"] == "app_db"]
    assert alert["labels"] == {"alertname": "DatabaseBackupFailed", "severity": "critical", **SANDBOX_DB}
    assert float(alert["value"]) == pytest.approx(now, abs=0.01)  # when it failed

    push(url, JOB, SANDBOX_DB, varai_backup_last_verified_timestamp_seconds=time.time())
    wait_for(
        lambda: {a["labels"]["database"] for a in firing(box, "DatabaseBackupFailed")} == {"new_db"},
        timeout=20,
        interval=0.2,
        what="the app_db alert to stop once a newer backup is verified",
    )
    assert firing(box, "DatabaseBackupTooOld") == []


def test_a_pushgateway_prometheus_cannot_reach_is_an_alert_of_its_own_until_it_is_back(box):
    """Without it the backup alerts would be silent: that silence is told, and ends with its restart."""
    record = box.store.read()["components"]["pushgateway"]
    os.kill(record["pid"], signal.SIGKILL)
    [alert] = wait_for(
        lambda: firing(box, "BackupMetricsUnreachable"), timeout=40, interval=0.5, what="BackupMetricsUnreachable"
    )
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["job"] == "varai-pushgateway"
    assert "backup alerts are blind" in alert["annotations"]["summary"]
    box.up()  # starts it again
    wait_for(lambda: not firing(box, "BackupMetricsUnreachable"), timeout=20, interval=0.5, what="the alert to stop")
