"""StatusPageHook against the sandbox's Statuspage stand-in (a real process, reached through the
``AIRFLOW_CONN_VARAI_STATUSPAGE`` connection as a task reaches it): idempotent writes, both status paths,
the API's refusals and faults as clear errors, and the key kept out of logs and headers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.statuspage_stack import StatusPageStack, statuspage_stack
from varai_deploy.hooks.statuspage import StatusPageError, StatusPageHook

CONN_ID = "varai_statuspage"
START = datetime(2031, 1, 5, 2, 0, tzinfo=UTC)
END = START + timedelta(hours=2)
NAME = "Monthly maintenance 2031-01-05"
BODY = "Security updates and database maintenance, 02:00-04:00 UTC."


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusPageStack]:
    with statuspage_stack(tmp_path / "sandbox") as running:
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_STATUSPAGE", json.dumps(running.connection))
        yield running


@pytest.fixture
def hook(stack: StatusPageStack) -> StatusPageHook:
    return StatusPageHook(CONN_ID)


def posts(stack: StatusPageStack) -> list[dict]:
    return [r for r in stack.received() if r["method"] in ("POST", "PATCH")]


def test_scheduling_twice_gives_the_one_maintenance(stack, hook):
    first = hook.schedule_maintenance(NAME, BODY, START, END)
    assert (first["name"], first["status"], first["impact"]) == (NAME, "scheduled", "maintenance")
    assert (first["scheduled_for"], first["scheduled_until"]) == (
        "2031-01-05T02:00:00.000Z",
        "2031-01-05T04:00:00.000Z",
    )
    assert [(u["status"], u["body"]) for u in first["incident_updates"]] == [("scheduled", BODY)]

    # An Airflow retry: a new hook, the same window given as a string and a naive datetime.
    again = StatusPageHook(CONN_ID).schedule_maintenance(NAME, BODY, "2031-01-05T02:00:00Z", END.replace(tzinfo=None))
    assert again["id"] == first["id"]
    assert hook.schedule_maintenance(NAME, BODY, START.replace(tzinfo=None), END)["id"] == first["id"]
    assert [i["id"] for i in stack.incidents()] == [first["id"]]
    assert len(posts(stack)) == 1
    sent = posts(stack)[0]["body"]["incident"]
    assert sent["impact_override"] == "maintenance" and sent["scheduled_auto_in_progress"] is False

    # Another window (or another name) is another maintenance.
    later = hook.schedule_maintenance(NAME, BODY, START + timedelta(days=28), END + timedelta(days=28))
    other = hook.schedule_maintenance("Database upgrade", BODY, START, END, impact="major", auto_transitions=True)
    assert len({first["id"], later["id"], other["id"]}) == 3
    assert other["impact"] == "major" and other["scheduled_auto_completed"] is True
    assert [i["id"] for i in hook.incidents("scheduled")] == [other["id"], later["id"], first["id"]]


def test_a_maintenance_goes_scheduled_in_progress_verifying_completed(stack, hook):
    window = hook.schedule_maintenance(NAME, BODY, START, END)
    for status, body in [
        ("in_progress", "Maintenance has started."),
        ("verifying", "Checking the services."),
        ("completed", "Maintenance is complete."),
    ]:
        moved = hook.update(window["id"], status, body)
        assert moved["status"] == status and moved["incident_updates"][0]["body"] == body
    done = hook.get(window["id"])
    assert [u["status"] for u in done["incident_updates"]] == ["completed", "verifying", "in_progress", "scheduled"]
    assert done["resolved_at"] is not None
    assert hook.schedule_maintenance(NAME, BODY, START, END)["id"] == window["id"]  # found, even completed


def test_a_retried_update_posts_nothing(stack, hook):
    window = hook.schedule_maintenance(NAME, BODY, START, END)
    started = hook.update(window["id"], "in_progress", "Maintenance has started.")
    count = len(posts(stack))
    again = StatusPageHook(CONN_ID).update(window["id"], "in_progress", "Maintenance has started.")
    assert again == started and len(posts(stack)) == count
    # Same status, a new message: that is a new update, not a retry.
    noted = hook.update(window["id"], "in_progress", "Database maintenance is taking longer.")
    assert len(noted["incident_updates"]) == 3 and len(posts(stack)) == count + 1


def test_a_realtime_incident_is_opened_once_and_goes_to_resolved(stack, hook):
    opened = hook.open_incident("Elevated error rates", "We are investigating.")
    assert (opened["status"], opened["impact"], opened["scheduled_for"]) == ("investigating", "major", None)
    assert hook.open_incident("Elevated error rates", "We are investigating.")["id"] == opened["id"]
    assert StatusPageHook(CONN_ID).open_incident("Elevated error rates", "Still looking.")["id"] == opened["id"]
    assert len(posts(stack)) == 1
    for status in ("identified", "monitoring", "resolved"):
        assert hook.update(opened["id"], status, f"Now {status}.")["status"] == status
    assert hook.incidents("unresolved") == []
    # Once resolved, the same trouble again is a new incident.
    second = hook.open_incident("Elevated error rates", "It is back.", status="identified", impact="critical")
    assert second["id"] != opened["id"] and (second["status"], second["impact"]) == ("identified", "critical")
    assert [i["id"] for i in hook.incidents()] == [second["id"], opened["id"]]
    with pytest.raises(ValueError, match="open an incident as one of investigating, identified, monitoring"):
        hook.open_incident("Something", "body", status="resolved")


def test_the_apis_refusals_raise_naming_status_and_message(stack, hook):
    window = hook.schedule_maintenance(NAME, BODY, START, END)
    with pytest.raises(
        StatusPageError,
        match=r"PATCH .*failed with HTTP 422: status 'investigating' is not a status "
        r"of a scheduled maintenance",
    ) as wrong_family:
        hook.update(window["id"], "investigating", "Oops.")
    assert wrong_family.value.status_code == 422
    hook.update(window["id"], "completed", "Cancelled.")
    with pytest.raises(StatusPageError, match="HTTP 422: status cannot go back from completed to in_progress"):
        hook.update(window["id"], "in_progress", "Again?")
    with pytest.raises(StatusPageError, match="HTTP 422: scheduled_until .* must be after scheduled_for"):
        hook.schedule_maintenance("Backwards", BODY, END, START)
    with pytest.raises(StatusPageError, match="HTTP 422: impact_override 'severe' is not one of"):
        hook.schedule_maintenance("Severe", BODY, START, END, impact="severe")
    with pytest.raises(StatusPageError, match="HTTP 400: unknown incident field.s.: severity") as unknown:
        hook._call("POST", "incidents", incident={"name": "x", "severity": "high"})  # the hook's one request path
    assert unknown.value.api_error.startswith("unknown incident field(s): severity")
    with pytest.raises(StatusPageError, match="GET /v1/pages/varaisandbox/incidents/nosuchid failed with HTTP 404"):
        hook.get("nosuchid")
    assert [i["id"] for i in stack.incidents()] == [window["id"]]


def test_a_wrong_key_is_401_and_an_incomplete_connection_says_what_to_set(stack, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_STATUSPAGE", json.dumps({**stack.connection, "password": "not-the-key"}))
    with pytest.raises(StatusPageError, match="HTTP 401: Could not authenticate") as refused:
        StatusPageHook(CONN_ID).schedule_maintenance(NAME, BODY, START, END)
    assert refused.value.status_code == 401 and stack.incidents() == []

    monkeypatch.setenv("AIRFLOW_CONN_VARAI_STATUSPAGE", json.dumps({**stack.connection, "extra": {}}))
    with pytest.raises(StatusPageError, match=r'names no page: set its extra to \{"page_id": "..."\}'):
        StatusPageHook(CONN_ID).incidents()
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_STATUSPAGE", json.dumps({**stack.connection, "password": None}))
    with pytest.raises(StatusPageError, match="has no API key: set its password"):
        StatusPageHook(CONN_ID).incidents()
    with pytest.raises(StatusPageError, match="'varai_statuspage_eu' is not defined"):
        StatusPageHook("varai_statuspage_eu").incidents()
    monkeypatch.setenv(
        "AIRFLOW_CONN_VARAI_STATUSPAGE", json.dumps({**stack.connection, "extra": {"page_id": "other1"}})
    )
    with pytest.raises(StatusPageError, match="HTTP 404"):
        StatusPageHook(CONN_ID).incidents()


def test_a_500_from_the_api_raises_and_the_retry_converges(stack, hook):
    stack.fail(500, count=1)
    with pytest.raises(StatusPageError, match="failed with HTTP 500: Internal server error") as failed:
        hook.schedule_maintenance(NAME, BODY, START, END)
    assert failed.value.status_code == 500 and stack.incidents() == []
    retried = StatusPageHook(CONN_ID).schedule_maintenance(NAME, BODY, START, END)
    assert [i["id"] for i in stack.incidents()] == [retried["id"]]

    stack.fail(503, count=1)
    with pytest.raises(StatusPageError, match="HTTP 503"):
        hook.update(retried["id"], "in_progress", "Started.")
    assert hook.update(retried["id"], "in_progress", "Started.")["status"] == "in_progress"
    assert len(hook.get(retried["id"])["incident_updates"]) == 2


def test_lists_are_read_page_by_page(stack):
    hook = StatusPageHook(CONN_ID, page_size=2)
    made = [hook.open_incident(f"Incident {n}", "Looking.")["id"] for n in range(5)]
    assert [i["id"] for i in hook.incidents()] == made[::-1]
    assert [i["id"] for i in hook.incidents("unresolved")] == made[::-1]
    assert hook.incidents("scheduled") == []
    pages = [r["path"] for r in stack.received() if r["path"].endswith(("page=1", "page=2", "page=3"))]
    assert any("incidents?limit=2&page=3" in p for p in pages)
    assert [i["id"] for i in hook.incidents(q="incident 3")] == [made[3]]
    with pytest.raises(ValueError, match="kind must be one of all, scheduled, unresolved"):
        hook.incidents("upcoming")
    with pytest.raises(ValueError, match="searches .q. only the list of all incidents"):
        hook.incidents("unresolved", q="Incident")


def test_the_key_is_never_logged_nor_the_page_id_sent_as_a_header(stack, hook, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    window = hook.schedule_maintenance(NAME, BODY, START, END)
    hook.update(window["id"], "in_progress", "Started.")
    stack.fail(500, count=1)
    with pytest.raises(StatusPageError) as failed:
        hook.update(window["id"], "verifying", "Checking.")
    logged = caplog.text + capsys.readouterr().out  # the task logger writes to stdout, urllib3 to logging
    assert "Statuspage: scheduled maintenance 'Monthly maintenance 2031-01-05'" in logged
    assert stack.api_key not in logged and stack.api_key not in str(failed.value)
    session = hook.get_conn()
    assert "page_id" not in session.headers
    assert hook.page_id == "varaisandbox"
