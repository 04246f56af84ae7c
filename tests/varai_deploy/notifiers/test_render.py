"""One event, rendered for Slack and for the email endpoint, within each one's contract (checked by the
sandbox stand-ins' own validators, the ones their servers answer with)."""

import json

import pytest

from varai_deploy.notifiers import CRITICAL, INFO, WARNING, Event
from varai_deploy.notifiers.email_endpoint import render_payload
from varai_deploy.notifiers.slack import render_blocks, render_text
from varai_deploy.sandbox.email_endpoint_fake import check_notification
from varai_deploy.sandbox.slack_fake import check_message
from varai_deploy.services import SERVICE_NAMES


def rolled_back(**overrides) -> Event:
    fields = {
        "kind": "release_rolled_back",
        "environment": "production",
        "message": "error rate of analytics v1.4.2 was 12.0% for 300s (threshold 5.0%). Rolled back.",
        "version": "v1.4.2",
        "services": SERVICE_NAMES,
        "run_id": "manual__2026-12-02T01:00:00+00:00",
        "dag_id": "ai_discovery_release",
        "run_url": "http://airflow.example/dags/ai_discovery_release/runs/manual__2026",
        "triggered_by": "carol",
        "rule": "error rate of analytics",
        "value": "12.0% for 300s",
        "threshold": "5.0%",
        "traffic": {s: "v1.4.1 (blue)" for s in SERVICE_NAMES},
        "approval": {"answer": "approved", "by": "alice", "at": "2026-12-02T01:02:00+00:00"},
    }
    return Event(**{**fields, **overrides})


def slack_body(event: Event) -> dict:
    return {"text": render_text(event), "blocks": render_blocks(event), "unfurl_links": False, "unfurl_media": False}


def test_severity_follows_the_kind_and_an_unsafe_outcome_is_critical():
    assert rolled_back().severity == CRITICAL
    assert rolled_back(kind="release_succeeded").severity == INFO
    assert rolled_back(kind="release_failed").severity == WARNING
    assert rolled_back(kind="release_failed", escalate=True).severity == CRITICAL
    with pytest.raises(ValueError, match="unknown notification kind 'release_exploded'"):
        rolled_back(kind="release_exploded")


def test_the_phone_sees_how_bad_what_happened_and_where_to_click():
    event = rolled_back()
    text = render_text(event)
    assert text.startswith("[CRITICAL] Release v1.4.2 to production rolled back: error rate of analytics")
    blocks = render_blocks(event)
    assert blocks[0] == {
        "type": "header",
        "block_id": "varai:release_rolled_back:critical",
        "text": {"type": "plain_text", "text": event.title},
    }
    facts = next(b for b in blocks if "fields" in b)["fields"]
    assert {"type": "mrkdwn", "text": "*Rule*\nerror rate of analytics: 12.0% for 300s (threshold 5.0%)"} in facts
    assert any("approved by alice" in f["text"] for f in facts)
    buttons = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert [b["url"] for b in buttons] == [event.run_url]
    assert "v1.4.1 (blue)" in json.dumps(blocks)


def test_an_approval_request_has_its_button_first():
    event = rolled_back(kind="approval_requested", action_url="http://a/required_actions", action_label="Approve")
    buttons = next(b for b in render_blocks(event) if b["type"] == "actions")["elements"]
    assert [(b["text"]["text"], b["url"]) for b in buttons] == [
        ("Approve", "http://a/required_actions"),
        ("Open the run", event.run_url),
    ]


def test_the_worst_case_stays_within_block_kit_limits():
    huge = "x" * 20_000
    event = rolled_back(
        kind="release_failed",
        message=huge,
        error="Traceback " + huge,
        failed_task="backend.traffic.switch_traffic[3]",
        traffic={f"service-{i}": huge for i in range(60)},
        details={f"detail {i}": huge for i in range(60)},
        version="v1.0.0-" + "a" * 200,
    )
    check_message("application/json", json.dumps(slack_body(event)).encode())  # raises when Slack would refuse
    assert len(render_blocks(event)) <= 50


def test_text_from_a_task_cannot_forge_slack_links_or_mentions_nor_be_rendered_as_jinja():
    event = rolled_back(kind="release_failed", error="<!channel> <http://evil|click> {{ conn.password }}")
    blocks = json.dumps(render_blocks(event))
    assert "&lt;!channel&gt;" in blocks and "<!channel>" not in blocks
    assert "{{ conn.password }}" in blocks


def test_the_email_payload_is_what_the_endpoint_accepts():
    event = rolled_back()
    payload = render_payload(event, ("devops@varai.ai", "oncall@varai.ai"))
    assert check_notification("application/json", json.dumps(payload).encode()) == 2
    assert payload["subject"] == "[VarAI production][critical] Release v1.4.2 to production rolled back"
    assert payload["severity"] == "critical"
    assert "Rule: error rate of analytics: 12.0% for 300s (threshold 5.0%)" in payload["text"]
    assert "analytics: v1.4.1 (blue)" in payload["text"]
    assert f"The run: {event.run_url}" in payload["text"]
    assert payload["event"]["kind"] == "release_rolled_back" and payload["event"]["run_id"] == event.run_id


def test_an_email_subject_stays_one_line_whatever_the_version_says():
    payload = render_payload(rolled_back(version="v1.0.0\nBcc: x"), ("devops@varai.ai",))
    check_notification("application/json", json.dumps(payload).encode())
    assert "\n" not in payload["subject"]
