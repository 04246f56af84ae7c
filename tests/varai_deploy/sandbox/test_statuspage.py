"""The sandbox's status page: the Statuspage API stand-in started as ``sandbox up`` starts it, held to the
API's contract (``statuspage_fake``), its incidents kept across restarts, read back through
``varai_deploy.sandbox.statuspage`` and the CLI, and run by ``up`` / ``status`` / ``down``."""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.support import stand_ins
from tests.support.sandbox import run_cli
from tests.support.statuspage_stack import StatusPageStack, free_port, statuspage_stack
from varai_deploy.sandbox import Sandbox, SandboxSettings, credentials, processes, statuspage
from varai_deploy.sandbox.components import COMPONENT_NAMES, load
from varai_deploy.sandbox.statuspage import COMPONENT

WINDOW = {
    "name": "Monthly maintenance",
    "status": "scheduled",
    "impact_override": "maintenance",
    "scheduled_for": "2031-01-05T02:00:00Z",
    "scheduled_until": "2031-01-05T04:00:00+00:00",
    "body": "Security updates and database maintenance.",
}
OUTAGE = {"name": "Elevated error rates", "status": "investigating", "impact_override": "major", "body": "Looking."}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[StatusPageStack]:
    with statuspage_stack(tmp_path / "sandbox") as running:
        yield running


def create(stack: StatusPageStack, **fields) -> dict:
    answer = stack.api("POST", body={"incident": fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def patch(stack: StatusPageStack, incident_id: str, **fields):
    return stack.api("PATCH", f"/{incident_id}", body={"incident": fields})


def test_it_keeps_its_place_and_serves_its_connection_without_the_key_on_its_command_line(stack):
    assert COMPONENT_NAMES[9] == "statuspage" and load("statuspage") is COMPONENT and COMPONENT.offset == 9
    key = credentials.secret(stack.settings, "statuspage_api_key")
    assert stack.connection == {
        "conn_type": "http",
        "host": "127.0.0.1",
        "port": stack.port,
        "schema": "http",
        "password": key,
        "extra": {"page_id": "varaisandbox"},
    }
    config = stack.settings.home / "notifications" / "statuspage.config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"api_key": key, "page_id": "varaisandbox"}
    argv = Path(f"/proc/{stack.pids['statuspage']}/cmdline").read_bytes().decode()
    assert key not in argv and f"--home\0{stack.settings.home}" in argv


def test_a_scheduled_maintenance_is_created_as_the_api_shows_it_and_kept_in_its_file(stack):
    before = datetime.now(UTC) - timedelta(seconds=1)
    incident = create(stack, **WINDOW)
    assert len(incident["id"]) == 12 and incident["id"].isalnum()
    assert {k: incident[k] for k in ("name", "status", "impact", "impact_override", "page_id")} == {
        "name": "Monthly maintenance",
        "status": "scheduled",
        "impact": "maintenance",
        "impact_override": "maintenance",
        "page_id": "varaisandbox",
    }
    assert (incident["scheduled_for"], incident["scheduled_until"]) == (
        "2031-01-05T02:00:00.000Z",
        "2031-01-05T04:00:00.000Z",
    )
    assert datetime.fromisoformat(incident["created_at"]) >= before
    assert incident["updated_at"] == incident["created_at"]
    assert (incident["started_at"], incident["resolved_at"]) == (None, None)
    assert incident["shortlink"] == f"{stack.url}/s/{incident['id']}"
    [update] = incident["incident_updates"]
    assert (update["status"], update["body"], update["incident_id"]) == ("scheduled", WINDOW["body"], incident["id"])

    assert stack.api("GET", f"/{incident['id']}").json() == incident
    assert stack.api("GET", f"/{incident['id']}.json").json() == incident
    assert stack.incidents() == [incident]
    kept = stack.settings.home / "notifications" / "statuspage.incidents.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert requests.get(incident["shortlink"], timeout=5).json() == incident  # the public page: no key


def test_lists_are_newest_first_and_filtered_as_the_api_filters_them(stack):
    window = create(stack, **WINDOW)
    outage = create(stack, **OUTAGE)
    minor = create(stack, name="Slow searches", impact_override="minor")
    assert minor["status"] == "investigating" and minor["impact"] == "minor"
    patch(stack, minor["id"], status="resolved", body="Fixed.")

    def ids(path: str, **params) -> list[str]:
        answer = stack.api("GET", path, params=params)
        assert answer.status_code == 200, answer.text
        return [i["id"] for i in answer.json()]

    assert ids("") == [minor["id"], outage["id"], window["id"]]
    assert ids("/scheduled") == [window["id"]]
    assert ids("/upcoming.json") == [window["id"]]
    assert ids("/unresolved") == [outage["id"]]
    assert ids("/active_maintenance") == []
    assert ids("", q="ERROR RATES") == [outage["id"]]
    assert ids("", q="fixed") == [minor["id"]]  # an update's body
    assert ids("", limit=2) == [minor["id"], outage["id"]]
    assert ids("", limit=2, page=2) == [window["id"]]
    assert ids("/scheduled", per_page=1, page=2) == []
    for path, params in (("", {"limit": 101}), ("", {"limit": "ten"}), ("/unresolved", {"per_page": 0})):
        answer = stack.api("GET", path, params=params)
        assert answer.status_code == 400 and "must be a whole number" in answer.json()["error"]


def test_a_maintenance_goes_scheduled_in_progress_verifying_completed_with_its_history(stack):
    window = create(stack, **WINDOW)
    steps = [("in_progress", "Started."), ("verifying", "Checking."), ("completed", "Done.")]
    for status, body in steps:
        answer = patch(stack, window["id"], status=status, body=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == status
    done = stack.api("GET", f"/{window['id']}").json()
    assert [(u["status"], u["body"]) for u in done["incident_updates"]] == [
        ("completed", "Done."),
        ("verifying", "Checking."),
        ("in_progress", "Started."),
        ("scheduled", WINDOW["body"]),
    ]
    assert done["started_at"] == done["incident_updates"][2]["created_at"]
    assert done["resolved_at"] == done["updated_at"] == done["incident_updates"][0]["created_at"]
    assert statuspage.history(done)[0][1:] == ("scheduled", WINDOW["body"])
    assert stack.api("GET", "/active_maintenance").json() == []


def test_a_realtime_incident_goes_investigating_identified_monitoring_resolved(stack):
    outage = create(stack, **OUTAGE)
    assert outage["started_at"] == outage["created_at"] and outage["scheduled_for"] is None
    assert patch(stack, outage["id"], status="identified", body="Bad config.").status_code == 200
    assert patch(stack, outage["id"], body="Rolling back.").status_code == 200  # same status: one more update
    assert patch(stack, outage["id"], status="monitoring", body="Rolled back.").json()["monitoring_at"]
    resolved = patch(stack, outage["id"], status="resolved", body="Resolved.").json()
    assert [u["status"] for u in resolved["incident_updates"]] == [
        "resolved",
        "monitoring",
        "identified",
        "identified",
        "investigating",
    ]
    assert resolved["resolved_at"] is not None and stack.api("GET", "/unresolved").json() == []
    renamed = patch(stack, outage["id"], name="Elevated error rates (EU)").json()
    assert renamed["name"] == "Elevated error rates (EU)" and len(renamed["incident_updates"]) == 5


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "OAuth wrong"}, {"Authorization": "{key}"}, {"Authorization": "Bearer {key}"}],
    ids=["none", "wrong", "no-scheme", "bearer"],
)
def test_without_its_oauth_key_it_is_401(stack, headers):
    headers = {k: v.format(key=stack.api_key) for k, v in headers.items()}
    url = f"{stack.url}/v1/pages/{stack.page_id}/incidents"
    for method in ("GET", "POST"):
        answer = requests.request(method, url, json={"incident": OUTAGE}, headers=headers, timeout=5)
        assert (answer.status_code, answer.json()) == (401, {"error": "Could not authenticate"})
    assert stack.incidents() == []


def test_another_page_incident_or_path_is_404_and_another_method_405(stack):
    auth = {"Authorization": f"OAuth {stack.api_key}"}
    for path in ("/v1/pages/otherpage000/incidents", "/v1/pages/varaisandbox/components", "/v1/incidents", "/"):
        answer = requests.get(f"{stack.url}{path}", headers=auth, timeout=5)
        assert answer.status_code == 404, path
    assert stack.api("GET", "/nosuchincident").status_code == 404
    assert patch(stack, "nosuchincident", status="resolved").status_code == 404
    deleted = stack.api("DELETE")
    assert (deleted.status_code, deleted.headers["Allow"]) == (405, "GET, POST")
    assert stack.api("POST", "/unresolved", body={"incident": OUTAGE}).headers["Allow"] == "GET"


REFUSED_BODIES = [
    (OUTAGE, 400, "param is missing or the value is empty: incident"),
    ({"incident": {}}, 400, "param is missing"),
    ({"incident": "down"}, 400, "param is missing"),
    ({"incident": OUTAGE, "page": "x"}, 400, "unknown parameter(s) beside incident: page"),
    ({"incident": {**OUTAGE, "severity": "high"}}, 400, "unknown incident field(s): severity"),
    ({"incident": {**OUTAGE, "name": ""}}, 422, "name can't be blank"),
    ({"incident": {**OUTAGE, "name": 7}}, 422, "name must be a string"),
    ({"incident": {**OUTAGE, "status": "down"}}, 422, "status 'down' is not one of investigating"),
    ({"incident": {**OUTAGE, "impact_override": "severe"}}, 422, "impact_override 'severe' is not one of none"),
    ({"incident": {**OUTAGE, "deliver_notifications": "yes"}}, 422, "deliver_notifications must be true or false"),
    ({"incident": {**OUTAGE, "metadata": {"a": 1}}}, 422, "metadata must be an object whose top-level values"),
    ({"incident": {**OUTAGE, "component_ids": ["abc"]}}, 422, "component(s) abc not found"),
    ({"incident": {**OUTAGE, "components": {"abc": "broken"}}}, 422, "components must map component ids"),
    ({"incident": {**WINDOW, "scheduled_for": "next sunday"}}, 422, "scheduled_for must be an ISO 8601 time"),
    ({"incident": {**WINDOW, "scheduled_until": 1767225600}}, 422, "scheduled_until must be an ISO 8601 time"),
    ({"incident": {**WINDOW, "scheduled_until": WINDOW["scheduled_for"]}}, 422, "must be after scheduled_for"),
    ({"incident": {**WINDOW, "scheduled_until": None}}, 422, "scheduled_until can't be blank"),
    ({"incident": {**WINDOW, "status": "investigating"}}, 422, "not a status of a scheduled maintenance"),
    ({"incident": {**OUTAGE, "status": "in_progress"}}, 422, "can't be blank for a scheduled maintenance"),
]


@pytest.mark.parametrize(("body", "status", "error"), REFUSED_BODIES, ids=[str(i) for i in range(len(REFUSED_BODIES))])
def test_a_create_against_the_contract_is_refused_saying_why(stack, body, status, error):
    answer = stack.api("POST", body=body)
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]
    assert isinstance(message, str if status == 400 else list)
    assert error in (message if status == 400 else "; ".join(message))
    assert stack.incidents() == []
    assert stack.received()[-1]["status"] == status


def test_a_body_that_is_not_json_is_400(stack):
    form = stack.api("POST", data={"incident[name]": "x"})
    assert form.status_code == 400 and "Content-Type: application/json" in form.json()["error"]
    broken = stack.api("POST", data=b'{"incident": ', headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"].startswith("the body is not JSON")


def test_updates_keep_to_the_incidents_family_and_never_go_back(stack):
    window = create(stack, **WINDOW)
    outage = create(stack, **OUTAGE)

    def refused(incident_id: str, error: str, **fields) -> None:
        answer = patch(stack, incident_id, **fields)
        assert answer.status_code == 422, answer.text
        assert error in "; ".join(answer.json()["error"])

    refused(window["id"], "status 'investigating' is not a status of a scheduled maintenance", status="investigating")
    refused(outage["id"], "status 'in_progress' is not a status of a realtime incident", status="in_progress")
    refused(outage["id"], "a realtime incident has no maintenance window", scheduled_for="2031-01-05T02:00:00Z")
    refused(window["id"], "must be after scheduled_for", scheduled_until="2031-01-05T01:00:00Z")
    refused(window["id"], "name can't be blank", name=" ")
    assert patch(stack, window["id"], status="completed", body="Cancelled: nothing to do.").status_code == 200
    refused(window["id"], "status cannot go back from completed to in_progress", status="in_progress")
    assert patch(stack, outage["id"], status="monitoring").status_code == 200
    refused(outage["id"], "status cannot go back from monitoring to identified", status="identified")
    moved = patch(stack, window["id"], scheduled_until="2031-01-05T06:00:00Z")
    assert moved.status_code == 200 and moved.json()["scheduled_until"] == "2031-01-05T06:00:00.000Z"
    kept = {i["id"]: i for i in stack.incidents()}
    assert kept[window["id"]]["status"] == "completed" and kept[outage["id"]]["status"] == "monitoring"
    assert len(kept[window["id"]]["incident_updates"]) == 2  # a window change is no update


def test_auto_transitions_move_a_maintenance_at_its_window_edges(stack):
    now = datetime.now(UTC)

    def window(name: str, start: timedelta, end: timedelta, auto: bool = True) -> dict:
        times = {"scheduled_for": (now + start).isoformat(), "scheduled_until": (now + end).isoformat()}
        flags = {"scheduled_auto_in_progress": auto, "scheduled_auto_completed": auto}
        return create(stack, **{**WINDOW, "name": name, **times, **flags})

    running = window("Running", timedelta(hours=-1), timedelta(hours=1))
    assert running["status"] == "in_progress"
    # Created after its start: moved at once, dated then (never before the incident itself).
    assert running["incident_updates"][0]["created_at"] == running["created_at"] == running["started_at"]
    assert running["incident_updates"][0]["body"].startswith("Scheduled maintenance is currently in progress")
    over = window("Over", timedelta(hours=-2), timedelta(hours=-1))
    assert [u["status"] for u in over["incident_updates"]] == ["completed", "in_progress", "scheduled"]
    assert over["resolved_at"] == over["created_at"]
    manual = window("Manual", timedelta(hours=-2), timedelta(hours=-1), auto=False)
    assert manual["status"] == "scheduled"  # without the flags, nobody moves it but the caller
    assert [i["id"] for i in stack.api("GET", "/active_maintenance").json()] == [running["id"]]

    soon = window("Soon", timedelta(seconds=0.5), timedelta(hours=1))
    assert soon["status"] == "scheduled"
    time.sleep(0.6)
    started = stack.api("GET", f"/{soon['id']}").json()  # seen on the next request, dated at the window's start
    assert started["status"] == "in_progress" and started["started_at"] == started["scheduled_for"]
    assert started["incident_updates"][0]["created_at"] == started["scheduled_for"]


def test_incidents_survive_a_restart_of_the_stand_in(stack):
    window = create(stack, **WINDOW)
    pid = stack.pids["statuspage"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while processes.is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    stack.pids["statuspage"] = stand_ins.start(stack.settings, COMPONENT)
    assert stack.api("GET", f"/{window['id']}").json() == window
    assert patch(stack, window["id"], status="in_progress", body="Started.").status_code == 200


def test_a_fault_fails_valid_requests_only_and_changes_nothing(stack):
    window = create(stack, **WINDOW)
    stack.fail(500, count=2)
    assert stack.api("GET", "", key="wrong").status_code == 401  # refused first: uses up nothing
    assert patch(stack, window["id"], status="investigating").status_code == 422
    failed = patch(stack, window["id"], status="in_progress", body="Started.")
    assert (failed.status_code, failed.json()) == (500, {"error": "Internal server error"})
    assert stack.api("GET").status_code == 500
    assert stack.api("GET").status_code == 200  # count 2: used up
    assert stack.incidents()[0]["status"] == "scheduled" and len(stack.incidents()[0]["incident_updates"]) == 1

    statuspage.fail(stack.settings, 429)
    limited = stack.api("POST", body={"incident": OUTAGE})
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    assert statuspage.clear_fault(stack.settings) is True
    assert statuspage.clear_fault(stack.settings) is False
    assert stack.api("POST", body={"incident": OUTAGE}).status_code == 201


def test_what_it_received_is_recorded_without_the_key(stack):
    window = create(stack, **WINDOW)
    stack.api("GET", "/scheduled", key="wrong")
    stack.api("GET", "/scheduled", params={"per_page": 5})
    records = stack.received()
    assert [(r["method"], r["status"]) for r in records] == [("POST", 201), ("GET", 401), ("GET", 200)]
    assert records[0]["body"] == {"incident": WINDOW}
    assert records[0]["answer"] == {"id": window["id"], "status": "scheduled"}
    assert records[1]["answer"] == {"error": "Could not authenticate"}
    assert records[2]["path"] == "/v1/pages/varaisandbox/incidents/scheduled?per_page=5"
    assert records[2]["answer"] == {"count": 1}
    assert statuspage.received(stack.settings, since=datetime.fromisoformat(records[1]["received_at"])) == records[1:]
    log = stack.settings.home / "notifications" / "statuspage.jsonl"
    assert stack.api_key not in log.read_text() and stat.S_IMODE(log.stat().st_mode) == 0o600


def test_the_statuspage_command(stack, monkeypatch):
    monkeypatch.setenv("VARAI_SANDBOX_COMPONENT_PORT_BASE", str(stack.settings.component_port_base))
    monkeypatch.setenv("VARAI_SANDBOX_COMPONENTS", "statuspage")
    s = stack.settings
    empty = run_cli(s, "statuspage")
    assert (empty.returncode, empty.stdout.strip()) == (0, "no incidents or maintenances on the status page")
    window = create(stack, **WINDOW)
    patch(stack, window["id"], status="in_progress", body="Started.\nsecond line")
    outage = create(stack, **OUTAGE)

    listed = run_cli(s, "statuspage", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == statuspage.incidents(s)
    assert [i["id"] for i in json.loads(listed.stdout)] == [outage["id"], window["id"]]
    plain = run_cli(s, "statuspage").stdout.splitlines()
    assert plain[0].split() == [outage["id"], "incident", "investigating", "major", "Elevated", "error", "rates"]
    assert plain[1].split()[1:] == ["investigating", "Looking."]
    assert plain[2].split() == [window["id"], "maintenance", "in_progress", "maintenance", "Monthly", "maintenance"]
    assert plain[3].split() == ["window", "2031-01-05T02:00:00.000Z", "..", "2031-01-05T04:00:00.000Z"]
    assert [line.split()[1:] for line in plain[4:]] == [
        ["scheduled", "Security", "updates", "and", "database", "maintenance."],
        ["in_progress", "Started."],
    ]

    fail = run_cli(s, "statuspage", "fail", "--count", "1")
    assert (fail.returncode, fail.stdout.strip()) == (0, "statuspage: the next 1 gets 500")
    assert stack.api("GET").status_code == 500
    cleared = run_cli(s, "statuspage", "clear-faults")
    assert (cleared.returncode, cleared.stdout.strip()) == (0, "statuspage: no fault was set")
    bad = run_cli(s, "statuspage", "fail", "--status", "302")
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def _free_settings(home: Path) -> SandboxSettings:
    """The sandbox on ports the kernel picks (gateway, Prometheus, the status page); no service is deployed,
    so the service range is only checked, never bound."""
    gateway, prom, page = free_port(), free_port(), free_port()
    while len({gateway, prom, page}) < 3:
        prom, page = free_port(), free_port()
    return SandboxSettings(
        home=home,
        gateway_port=gateway,
        service_port_base=65000,
        prometheus_port=prom,
        component_port_base=page - COMPONENT.offset,
        components=("statuspage",),
        traffic_rps=0,
    )


def test_up_starts_it_status_lists_it_its_connection_goes_to_airflow_and_down_stops_it(tmp_path, monkeypatch):
    s = _free_settings(tmp_path / "sandbox")
    monkeypatch.setenv("VARAI_SANDBOX_COMPONENT_PORT_BASE", str(s.component_port_base))
    monkeypatch.setenv("VARAI_SANDBOX_COMPONENTS", "statuspage")
    sandbox = Sandbox(s)
    try:
        endpoints = sandbox.up()["endpoints"]
        assert endpoints["statuspage"] == f"http://127.0.0.1:{s.component_port('statuspage')}"
        status = run_cli(s, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["endpoints"] == endpoints
        assert f"statuspage {endpoints['statuspage']}" in run_cli(s, "status").stdout
        lines = s.connections_env_file.read_text().splitlines()[1:]
        exports = {
            k: json.loads(shlex.split(v)[0]) for k, v in (ln.removeprefix("export ").split("=", 1) for ln in lines)
        }
        assert exports.pop("AIRFLOW_CONN_VARAI_GATEWAY")["port"] == s.gateway_port  # always there
        assert exports == {
            "AIRFLOW_CONN_VARAI_STATUSPAGE": COMPONENT.connections(s, s.component_port("statuspage"))[
                "varai_statuspage"
            ]
        }
        assert COMPONENT.ready(s, s.component_port("statuspage"))
    finally:
        sandbox.down()
    assert processes.find_ours(s.home, [COMPONENT.marker(s, s.component_port("statuspage"))]) == []
    assert "statuspage" not in Sandbox(s).status()["endpoints"]
