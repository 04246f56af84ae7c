"""The sandbox's email notification endpoint: started like ``sandbox up`` does, held to its documented
contract (``email_endpoint_fake``), and reached through the HTTP provider's ``HttpHook`` as the notifier does."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.notification_stack import NotificationStack, notification_stack
from varai_deploy.sandbox import credentials
from varai_deploy.sandbox.components import load
from varai_deploy.sandbox.email_endpoint import COMPONENT

VALID = {
    "to": ["devops@varai.ai", "oncall+release@ops.varai.co.uk"],
    "subject": "[VarAI sandbox][critical] Rollback of v1.2.3",
    "severity": "critical",
    "text": "Rolled back.\n\nrule: error_rate 7.5% > 5%",
    "html": "<h2>Rolled back</h2>",
    "event": {"kind": "rollback", "version": "v1.2.3"},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotificationStack]:
    with notification_stack(tmp_path_factory.mktemp("email") / "sandbox", ("email",)) as running:
        yield running


@pytest.fixture(autouse=True)
def no_fault(stack: NotificationStack) -> Iterator[None]:
    yield
    requests.delete(f"{stack.url('email')}/__sandbox/fail", timeout=5)


def test_the_component_serves_its_connection_and_keeps_its_token_off_the_command_line(stack: NotificationStack):
    assert load("email") is COMPONENT and COMPONENT.offset == 8
    token = credentials.secret(stack.settings, "email_endpoint_token")
    assert stack.email_connection == {
        "conn_type": "http",
        "host": "127.0.0.1",
        "port": stack.settings.component_port("email"),
        "schema": "http",
        "password": token,
    }
    assert stat.S_IMODE((stack.settings.home / "notifications" / "email.config.json").stat().st_mode) == 0o600
    argv = Path(f"/proc/{stack.pids['email']}/cmdline").read_bytes().decode()
    assert token not in argv and f"--home\0{stack.settings.home}" in argv


def test_a_valid_notification_is_accepted_and_recorded_without_the_token(stack: NotificationStack):
    answer = stack.post_email(VALID)
    assert answer.status_code == 202
    body = answer.json()
    assert set(body) == {"id", "accepted"} and body["accepted"] == 2
    assert uuid.UUID(body["id"]).version == 4
    record = stack.records("email")[-1]
    assert set(record) == {"received_at", "status", "answer", "body"}
    assert (record["status"], record["answer"], record["body"]) == (202, body, VALID)
    minimal = {k: VALID[k] for k in ("to", "subject", "severity", "text")}
    assert stack.post_email({**minimal, "to": ["a@b.io"], "severity": "info"}).json()["accepted"] == 1
    log = stack.settings.home / "notifications" / "email.jsonl"
    assert stack.email_token not in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "{token}"}, {"Authorization": "Basic {token}"}],
    ids=["none", "wrong", "no-bearer", "basic"],
)
def test_without_its_bearer_token_it_is_401(stack: NotificationStack, headers: dict[str, str]):
    headers = {k: v.format(token=stack.email_token) for k, v in headers.items()}
    answer = requests.post(f"{stack.url('email')}/notify", json=VALID, headers=headers, timeout=5)
    assert (answer.status_code, answer.json()) == (401, {"error": "unauthorized"})


def test_another_path_is_404_and_another_method_405(stack: NotificationStack):
    assert stack.post_email(VALID, path="/api/notify").status_code == 404
    assert stack.post_email(VALID, path="/").status_code == 404
    answer = requests.get(f"{stack.url('email')}/notify", timeout=5)
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    assert requests.put(f"{stack.url('email')}/notify", json=VALID, timeout=5).status_code == 405


CONTRACT = [
    ({**VALID, "to": []}, "to must be a list"),
    ({**VALID, "to": "devops@varai.ai"}, "to must be a list"),
    ({**VALID, "to": ["x@varai.ai"] * 51}, "to must be a list of 1 to 50"),
    ({**VALID, "to": ["devops@varai.ai", "devops"]}, "to[1] is not an email address"),
    ({**VALID, "to": ["devops@localhost"]}, "to[0] is not an email address"),
    ({**VALID, "to": ["dev ops@varai.ai"]}, "to[0] is not an email address"),
    ({**VALID, "to": [7]}, "to[0] is not an email address"),
    ({**VALID, "subject": ""}, "subject must be a non-empty string"),
    ({**VALID, "subject": "s" * 201}, "at most 200 characters"),
    ({**VALID, "subject": "two\nlines"}, "subject must be one line"),
    ({**VALID, "subject": ["list"]}, "subject must be a non-empty string"),
    ({**VALID, "severity": "error"}, "severity must be one of critical, warning, info"),
    ({**VALID, "severity": None}, "severity must be one of"),
    ({**VALID, "text": ""}, "text must be a non-empty string"),
    ({**VALID, "text": "t" * 100_001}, "at most 100000 characters"),
    ({**VALID, "html": 5}, "html must be a string"),
    ({**VALID, "event": "rollback"}, "event must be a JSON object"),
    ({**VALID, "cc": ["boss@varai.ai"]}, "unknown field(s): cc"),
    ({k: v for k, v in VALID.items() if k != "severity"}, "missing field(s): severity"),
    ([VALID], "invalid JSON: the body must be an object"),
]


@pytest.mark.parametrize(("body", "error"), CONTRACT, ids=[str(i) for i in range(len(CONTRACT))])
def test_a_notification_against_the_contract_gets_400_saying_what_is_wrong(
    stack: NotificationStack, body: object, error: str
):
    answer = stack.post_email(body)
    assert answer.status_code == 400
    assert error in answer.json()["error"]
    assert stack.records("email")[-1]["status"] == 400


def test_a_body_that_is_not_json_is_400(stack: NotificationStack):
    broken = stack.post_email(None, data=b'{"to": ', headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"].startswith("invalid JSON")
    form = stack.post_email(None, data={"to": "devops@varai.ai"})
    assert form.status_code == 400 and form.json()["error"].startswith("invalid JSON")


def test_the_http_providers_hook_delivers_and_a_fault_raises(stack: NotificationStack, monkeypatch):
    from airflow.providers.http.hooks.http import HttpHook

    monkeypatch.setenv("AIRFLOW_CONN_VARAI_EMAIL_ENDPOINT", json.dumps(stack.email_connection))
    hook = HttpHook(method="POST", http_conn_id="varai_email_endpoint")
    headers = {"Authorization": f"Bearer {stack.email_token}"}
    response = hook.run("notify", json=VALID, headers=headers)
    assert response.status_code == 202 and response.json()["accepted"] == 2
    assert stack.records("email")[-1]["body"] == VALID

    control = f"{stack.url('email')}/__sandbox/fail"
    assert requests.post(control, json={"status": 500, "count": 1}, timeout=5).status_code == 200
    with pytest.raises(Exception, match="500"):
        hook.run("notify", json=VALID, headers=headers)
    assert stack.records("email")[-1]["status"] == 500
    assert stack.records("email")[-1]["answer"] == {"error": "unavailable"}
    assert hook.run("notify", json=VALID, headers=headers).status_code == 202  # count 1: used up

    with pytest.raises(Exception, match="400"):
        hook.run("notify", json={**VALID, "severity": "fatal"}, headers=headers)


def test_a_fault_applies_only_to_valid_notifications(stack: NotificationStack):
    control = f"{stack.url('email')}/__sandbox/fail"
    requests.post(control, json={"status": 429, "count": 1}, timeout=5)
    assert stack.post_email(VALID, token="wrong").status_code == 401  # refused first: uses up nothing
    assert stack.post_email({**VALID, "to": []}).status_code == 400
    limited = stack.post_email(VALID)
    assert (limited.status_code, limited.json(), limited.headers["Retry-After"]) == (
        429,
        {"error": "rate limited"},
        "1",
    )
    assert stack.post_email(VALID).status_code == 202
