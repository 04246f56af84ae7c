"""The sandbox's Slack incoming-webhook stand-in: started like ``sandbox up`` does, held to the webhook's
contract and Block Kit's limits, answering as Slack does, and reached through the Slack provider's own hook."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.notification_stack import NotificationStack, notification_stack
from varai_deploy.sandbox import credentials
from varai_deploy.sandbox.components import load
from varai_deploy.sandbox.notifications import Inbox
from varai_deploy.sandbox.slack import COMPONENT


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotificationStack]:
    with notification_stack(tmp_path_factory.mktemp("slack") / "sandbox", ("slack",)) as running:
        yield running


@pytest.fixture(autouse=True)
def no_fault(stack: NotificationStack) -> Iterator[None]:
    yield
    requests.delete(f"{stack.url('slack')}/__sandbox/fail", timeout=5)


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(**fields) -> dict:
    return {"type": "button", "text": {"type": "plain_text", "text": "Open the run"}, **fields}


#: What the release notifier sends: every block type it uses, at Block Kit's limits.
FULL_MESSAGE = {
    "text": "[CRITICAL] Rollback of v1.2.3",
    "unfurl_links": False,
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150, "emoji": True}},
        section("s" * 3000),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2000}] * 10},
        {"type": "divider", "block_id": "b" * 255},
        {
            "type": "actions",
            "elements": [
                button(url="https://example.com/" + "u" * 2980, action_id="a" * 255, style="primary"),
                *[button(action_id=f"run{i}") for i in range(24)],
            ],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "ai_discovery_release run manual__1"}] * 10},
        {"type": "image", "image_url": "https://example.com/chart.png", "alt_text": "error rate"},
        {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": []}]},
    ],
}


def test_the_component_serves_its_connection_and_keeps_its_secret_off_the_command_line(stack: NotificationStack):
    assert load("slack") is COMPONENT and COMPONENT.offset == 7
    secret = credentials.secret(stack.settings, "slack_webhook_token")
    assert stack.slack_connection == {
        "conn_type": "slackwebhook",
        "host": f"http://127.0.0.1:{stack.settings.component_port('slack')}/services",
        "password": f"T0SANDBOX/B0SANDBOX/{secret}",
    }
    config = stack.settings.home / "notifications" / "slack.config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    argv = Path(f"/proc/{stack.pids['slack']}/cmdline").read_bytes().decode()
    assert secret not in argv and f"--home\0{stack.settings.home}" in argv


def test_a_valid_message_gets_slacks_ok_and_is_recorded(stack: NotificationStack):
    answer = stack.post_slack(FULL_MESSAGE)
    assert (answer.status_code, answer.text) == (200, "ok")
    assert answer.headers["Content-Type"].startswith("text/html")
    record = stack.records("slack")[-1]
    assert set(record) == {"received_at", "status", "answer", "body"}
    assert (record["status"], record["answer"], record["body"]) == (200, "ok", FULL_MESSAGE)
    assert record["received_at"].endswith("+00:00")
    assert stack.post_slack({"blocks": [section("only blocks")]}).text == "ok"
    assert stack.post_slack({"text": "only text"}).text == "ok"


TOO_MANY = [section("x")] * 51
CONTRACT = [
    ({}, "no_text"),
    ({"text": ""}, "no_text"),
    ({"text": "", "blocks": []}, "no_text"),
    ({"text": "x" * 40001}, "msg_too_long"),
    ({"text": 5}, "invalid_payload"),
    ({"blocks": TOO_MANY}, "invalid_blocks"),
    ({"blocks": "not a list"}, "invalid_blocks"),
    ({"blocks": [{"type": "table"}]}, "invalid_blocks"),
    ({"blocks": ["section"]}, "invalid_blocks"),
    ({"blocks": [section("x" * 3001)]}, "invalid_blocks"),
    ({"blocks": [section("")]}, "invalid_blocks"),
    ({"blocks": [{"type": "section", "text": {"type": "markdown", "text": "x"}}]}, "invalid_blocks"),
    ({"blocks": [{"type": "section", "text": "plain string"}]}, "invalid_blocks"),
    ({"blocks": [{"type": "section"}]}, "invalid_blocks"),
    ({"blocks": [{"type": "section", "txt": {"type": "mrkdwn", "text": "typo"}}]}, "invalid_blocks"),
    ({"blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}]}, "invalid_blocks"),
    ({"blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}]}, "invalid_blocks"),
    ({"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "*bold*"}}]}, "invalid_blocks"),
    ({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]}, "invalid_blocks"),
    ({"blocks": [{"type": "context", "elements": []}]}, "invalid_blocks"),
    ({"blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}]}, "invalid_blocks"),
    ({"blocks": [{"type": "actions", "elements": []}]}, "invalid_blocks"),
    ({"blocks": [{"type": "actions", "elements": [button()] * 26}]}, "invalid_blocks"),
    ({"blocks": [{"type": "actions", "elements": [button(text={"type": "mrkdwn", "text": "b"})]}]}, "invalid_blocks"),
    (
        {"blocks": [{"type": "actions", "elements": [button(text={"type": "plain_text", "text": "b" * 76})]}]},
        "invalid_blocks",
    ),
    ({"blocks": [{"type": "actions", "elements": [button(url="u" * 3001)]}]}, "invalid_blocks"),
    ({"blocks": [{"type": "actions", "elements": [button(action_id="a" * 256)]}]}, "invalid_blocks"),
    ({"blocks": [{"type": "actions", "elements": [button(style="green")]}]}, "invalid_blocks"),
    ({"blocks": [{"type": "divider", "block_id": "b" * 256}]}, "invalid_blocks"),
    ({"blocks": [{"type": "image", "image_url": "https://example.com/i.png"}]}, "invalid_blocks"),
]


@pytest.mark.parametrize(("body", "error"), CONTRACT, ids=[f"{i}-{e}" for i, (_, e) in enumerate(CONTRACT)])
def test_a_message_against_the_contract_gets_slacks_400(stack: NotificationStack, body: dict, error: str):
    answer = stack.post_slack(body)
    assert (answer.status_code, answer.text) == (400, error)
    assert answer.headers["Content-Type"].startswith("text/html")
    assert stack.records("slack")[-1]["answer"] == error


def test_payloads_that_are_not_a_json_object_are_invalid(stack: NotificationStack):
    form = stack.post_slack(None, data={"payload": json.dumps({"text": "form-encoded"})})
    assert (form.status_code, form.text) == (400, "invalid_payload")
    broken = stack.post_slack(None, data=b'{"text": ', headers={"Content-Type": "application/json"})
    assert (broken.status_code, broken.text) == (400, "invalid_payload")
    assert stack.records("slack")[-1]["body"] == '{"text": '  # the raw text, as received
    assert stack.post_slack(["text"]).text == "invalid_payload"


def test_another_webhook_path_or_method_is_refused_and_the_secret_never_recorded(stack: NotificationStack):
    base = stack.url("slack")
    for path in ("/services/T0SANDBOX/B0SANDBOX/wrong", "/services", "/", f"/x{stack.webhook_url[len(base) :]}"):
        answer = stack.post_slack({"text": "hi"}, url=f"{base}{path}")
        assert (answer.status_code, answer.text) == (404, "no_service"), path
    answer = requests.get(stack.webhook_url, timeout=5)
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    assert requests.request("PURGE", stack.webhook_url, timeout=5).status_code == 405
    assert [r["status"] for r in stack.records("slack")[-6:]] == [404, 404, 404, 404, 405, 405]
    log = (stack.settings.home / "notifications" / "slack.jsonl").read_text()
    assert stack.slack_connection["password"].rsplit("/", 1)[1] not in log
    assert stat.S_IMODE((stack.settings.home / "notifications" / "slack.jsonl").stat().st_mode) == 0o600


def test_a_fault_fails_the_next_valid_messages_with_slacks_rollup_error(stack: NotificationStack):
    control = f"{stack.url('slack')}/__sandbox/fail"
    set_fault = requests.post(control, json={"status": 500, "count": 2}, timeout=5)
    assert set_fault.json() == {"channel": "slack", "fault": {"status": 500, "remaining": 2}}
    assert stack.post_slack({"blocks": TOO_MANY}).text == "invalid_blocks"  # refused first: uses up nothing
    for _ in range(2):
        answer = stack.post_slack({"text": "deploy finished"})
        assert (answer.status_code, answer.text) == (500, "rollup_error")
    assert stack.post_slack({"text": "deploy finished"}).text == "ok"
    assert [r["status"] for r in stack.records("slack")[-4:]] == [400, 500, 500, 200]

    assert requests.post(control, json={"status": 503}, timeout=5).json()["fault"] == {"status": 503, "remaining": None}
    for _ in range(3):
        assert stack.post_slack({"text": "x"}).status_code == 503
    assert requests.delete(control, timeout=5).json()["cleared"] is True
    assert stack.post_slack({"text": "x"}).status_code == 200
    assert requests.get(control, timeout=5).json() == {"channel": "slack", "fault": None}
    assert requests.post(control, json={"status": 200}, timeout=5).status_code == 400
    assert requests.post(control, json={"count": 0}, timeout=5).status_code == 400
    assert requests.post(control, json={"status": 500, "oops": 1}, timeout=5).status_code == 400


def test_fault_control_answers_loopback_only(tmp_path: Path):
    inbox = Inbox(tmp_path, "slack", "secret")
    assert inbox.control("POST", "10.1.2.3", b'{"status": 500}')[0] == 403
    assert inbox.control("POST", "::1", b'{"status": 500}')[0] == 200
    assert inbox.take_fault() == 500


def test_the_slack_providers_hook_delivers_and_raises_on_a_contract_violation(
    stack: NotificationStack, monkeypatch: pytest.MonkeyPatch
):
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    monkeypatch.setenv("AIRFLOW_CONN_VARAI_SLACK", json.dumps(stack.slack_connection))
    hook = SlackWebhookHook(slack_webhook_conn_id="varai_slack")
    blocks = FULL_MESSAGE["blocks"]
    response = hook.send(text="v1.2.3 is live", blocks=blocks, unfurl_links=False)
    assert (response.status_code, response.body) == (200, "ok")
    record = stack.records("slack")[-1]
    assert record["body"] == {"text": "v1.2.3 is live", "blocks": blocks, "unfurl_links": False}

    with pytest.raises(Exception, match="invalid_blocks") as raised:
        hook.send(text="too many", blocks=TOO_MANY)
    assert "400" in str(raised.value)
    assert stack.records("slack")[-1]["status"] == 400
