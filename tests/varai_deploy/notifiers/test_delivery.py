"""Routing by severity and delivery that never breaks the operation, against the sandbox's real
Slack-webhook and email-endpoint stand-ins (started here as `sandbox up` starts them)."""

import dataclasses
import json
import logging

import pytest

from tests.support.notification_stack import notification_stack
from varai_deploy.config import load_environment
from varai_deploy.notifiers import DELIVERED, Event, notify


@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    with notification_stack(tmp_path / "home") as stack:
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_SLACK", json.dumps(stack.slack_connection))
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_EMAIL_ENDPOINT", json.dumps(stack.email_connection))
        yield stack


@pytest.fixture
def env():
    sandbox = load_environment("sandbox")
    return dataclasses.replace(
        sandbox, notifications=dataclasses.replace(sandbox.notifications, retry_delay_seconds=0.05)
    )


def event(kind: str) -> Event:
    return Event(kind=kind, environment="sandbox", message="what happened", version="v1.2.3", run_id="r1")


def test_each_severity_goes_where_the_environment_routes_it(stand_ins, env):
    assert notify(env, event("release_rolled_back")) == {"slack": DELIVERED, "email": DELIVERED}
    assert notify(env, event("release_succeeded")) == {"slack": DELIVERED}
    slack, email = stand_ins.records("slack"), stand_ins.records("email")
    assert [r["status"] for r in slack] == [200, 200]
    assert [r["body"]["blocks"][0]["block_id"] for r in slack] == [
        "varai:release_rolled_back:critical",
        "varai:release_succeeded:info",
    ]
    assert [(r["status"], r["body"]["severity"], r["body"]["to"]) for r in email] == [
        (202, "critical", ["devops@varai.ai"])
    ]


def test_a_refusing_channel_is_retried_then_reported_and_the_others_still_hear(stand_ins, env, caplog):
    from varai_deploy.sandbox import notifications

    notifications.fail(stand_ins.settings, "slack", 500)  # until cleared
    with caplog.at_level(logging.INFO, logger="varai_deploy.notifiers.delivery"):
        results = notify(env, event("release_rolled_back"))
    assert results["email"] == DELIVERED
    assert "500" in results["slack"], results
    assert [r["status"] for r in stand_ins.records("slack")] == [500, 500, 500]  # attempts: 3
    assert "NOT delivered to slack after 3 attempts" in caplog.text
    token = stand_ins.slack_connection["password"].rsplit("/", 1)[-1]
    assert token not in caplog.text and token not in json.dumps(results)


def test_an_unreachable_or_unconfigured_channel_never_raises(stand_ins, env, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_VARAI_EMAIL_ENDPOINT")
    conn = dict(stand_ins.slack_connection, host="http://127.0.0.1:9/services")  # nothing listens on :9
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_SLACK", json.dumps(conn))
    results = notify(env, event("release_rolled_back"))
    assert set(results) == {"slack", "email"} and DELIVERED not in results.values()
    assert "varai_email_endpoint" in results["email"], results
    assert conn["password"] not in json.dumps(results)
