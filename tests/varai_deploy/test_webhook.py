"""The Alertmanager webhook over HTTP (FastAPI's TestClient on ``create_app()``), with no Airflow DB.

The token comes from a real ``AIRFLOW_CONN_VARAI_ALERT_WEBHOOK`` connection in the environment;
Airflow's ``trigger_dag`` is replaced by a recorder that refuses a run id it has seen, as the
metadata DB does. The end-to-end path through a real API server is in tests/integration.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from varai_deploy import webhook
from varai_deploy.webhook import AlertmanagerPayload, rollback_conf

TOKEN = "s3cret-token-for-tests"
GOOD = {"Authorization": f"Bearer {TOKEN}"}


def payload(*alerts, common=None):
    return AlertmanagerPayload.model_validate(
        {"status": "firing", "groupKey": "g", "commonLabels": common or {}, "alerts": list(alerts)}
    )


def alert(status="firing", starts="2026-11-29T02:00:00Z", **labels):
    return {"status": status, "labels": labels, "annotations": {"summary": "5xx above 5%"}, "startsAt": starts}


def body(*alerts, common=None, group='{}:{alertname="HighErrorRate"}'):
    return {"version": "4", "status": "firing", "groupKey": group, "commonLabels": common or {}, "alerts": list(alerts)}


class Recorder:
    """Stands in for airflow.api.common.trigger_dag.trigger_dag: records calls, refuses a known run id."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, dag_id: str, **kwargs: Any) -> Any:
        from airflow.exceptions import DagRunAlreadyExists

        run_ids = [c["run_id"] for c in self.calls]
        self.calls.append({"dag_id": dag_id, **kwargs})
        if kwargs["run_id"] in run_ids:
            raise DagRunAlreadyExists(SimpleNamespace(dag_id=dag_id, run_id=kwargs["run_id"]))
        return SimpleNamespace(run_id=kwargs["run_id"])


@pytest.fixture
def triggered(monkeypatch) -> Recorder:
    from airflow.api.common import trigger_dag

    recorder = Recorder()
    monkeypatch.setattr(trigger_dag, "trigger_dag", recorder)
    return recorder


@pytest.fixture
def client(monkeypatch, triggered) -> TestClient:
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_ALERT_WEBHOOK", json.dumps({"conn_type": "generic", "password": TOKEN}))
    return TestClient(webhook.create_app())


# -- authentication comes first ---------------------------------------------------------------
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer ", TOKEN])
@pytest.mark.parametrize("content", [b"{not json", b'{"alerts": "nope"}', b""])
def test_no_or_bad_token_is_401_whatever_the_body(client, triggered, auth, content):
    headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}
    resp = client.post("/alerts", content=content, headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.json() == {"detail": "invalid or missing bearer token"}
    assert resp.headers["www-authenticate"] == "Bearer"
    assert triggered.calls == []


def test_without_the_connection_everything_is_refused(client, triggered, monkeypatch):
    monkeypatch.setattr(webhook, "_expected_token", lambda: None)
    resp = client.post("/alerts", content=b"{not json", headers=GOOD)
    assert resp.status_code == 503
    assert resp.json()["detail"] == "webhook not configured: define the Airflow Connection 'varai_alert_webhook'"
    assert triggered.calls == []


# -- then the body ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"{not json", "body is not JSON: "),
        (b"", "body is not JSON: "),
        (b"\xff\xfe\x00", "body is not JSON: "),
        (b"[]", "not an Alertmanager payload: body: Input should be a valid dictionary"),
        (b'{"alerts": []}', "not an Alertmanager payload: status: Field required"),
        (b'{"status": "firing", "alerts": [{"labels": {}}]}', "not an Alertmanager payload: alerts.0.status: "),
        (
            b'{"status": "firing", "alerts": "nope"}',
            "not an Alertmanager payload: alerts: Input should be a valid list",
        ),
    ],
)
def test_good_token_and_a_malformed_body_is_422_with_a_short_reason(client, triggered, content, detail):
    resp = client.post("/alerts", content=content, headers={**GOOD, "Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"].startswith(detail)
    assert len(resp.json()["detail"]) < 200
    assert triggered.calls == []


# -- one bad alert refuses the delivery -------------------------------------------------------
@pytest.mark.parametrize(
    ("alerts", "common", "detail"),
    [
        (
            [alert(alertname="GatewayDown", environment="sandbox", service="billing")],
            None,
            "alert 'GatewayDown' has service='billing': expected one of "
            "ai-discovery, face-analysis, recommendation, analytics, api-gateway",
        ),
        (
            [alert(alertname="GatewayDown", environment="sandbox", service="all")],
            None,
            "alert 'GatewayDown' has service='all': expected one of ",
        ),
        (
            [alert(alertname="GatewayDown", environment="sandbox")],
            None,
            "alert 'GatewayDown' has no 'service' label: expected one of ai-discovery, ",
        ),
        (
            [alert(alertname="GatewayDown", environment="sandbox", service="")],
            None,
            "alert 'GatewayDown' has no 'service' label",
        ),
        (
            # A good alert does not carry a bad one through: nothing is triggered at all.
            [
                alert(alertname="HighErrorRate", service="analytics"),
                alert(alertname="DiskFull", service="billing"),
            ],
            {"environment": "staging"},
            "alert 'DiskFull' has service='billing'",
        ),
        ([alert(alertname="X", service="analytics")], None, "alert 'X' has no 'environment' label: expected one of "),
        (
            [alert(alertname="X", service="analytics", environment="moon")],
            None,
            "alert 'X' has environment='moon': expected one of sandbox, staging, production",
        ),
        (
            [
                alert(alertname="X", service="analytics", environment="sandbox"),
                alert(alertname="Y", service="analytics", environment="production"),
            ],
            None,
            "alert 'Y' has environment='production' but alert 'X' has environment='sandbox'",
        ),
    ],
)
def test_an_alert_without_a_known_service_or_environment_is_422_and_triggers_nothing(
    client, triggered, alerts, common, detail
):
    resp = client.post("/alerts", json=body(*alerts, common=common), headers=GOOD)
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"].startswith(detail)
    assert triggered.calls == []


def test_an_alert_without_alertname_is_named_by_position(client, triggered):
    good = alert(alertname="HighErrorRate", environment="sandbox", service="analytics")
    bad = alert(environment="sandbox", service="billing")
    resp = client.post("/alerts", json=body(good, bad), headers=GOOD)
    assert resp.status_code == 422
    assert resp.json()["detail"].startswith("alert #1 (no alertname) has service='billing'")
    assert triggered.calls == []


def test_resolved_alerts_are_not_checked_and_a_resolved_group_is_ignored(client, triggered):
    resolved = alert(status="resolved", alertname="Old", service="billing")
    resp = client.post("/alerts", json={**body(resolved), "status": "resolved"}, headers=GOOD)
    assert resp.json() == {"status": "ignored", "reason": "no firing alert"}
    good = alert(alertname="HighErrorRate", environment="sandbox", service="analytics")
    resp = client.post("/alerts", json=body(good, resolved), headers=GOOD)
    assert resp.status_code == 200
    assert resp.json()["conf"]["services"] == ["analytics"]
    assert [c["conf"]["services"] for c in triggered.calls] == [["analytics"]]


# -- a good alert rolls back its service, once ------------------------------------------------
def test_a_good_alert_triggers_a_rollback_of_only_its_service(client, triggered):
    good = alert(alertname="HighErrorRate", environment="sandbox", service="analytics")
    resp = client.post("/alerts", json=body(good, common={"alertname": "HighErrorRate"}), headers=GOOD)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    conf = {
        "environment": "sandbox",
        "reason": "alertmanager: HighErrorRate [environment=sandbox, service=analytics]: 5xx above 5%",
        "target": "previous",
        "services": ["analytics"],
    }
    assert answer == {"status": "triggered", "dag_run_id": answer["dag_run_id"], "conf": conf}
    assert answer["dag_run_id"].startswith("alert__")
    (call,) = triggered.calls
    assert call["dag_id"] == "ai_discovery_rollback"
    assert call["run_id"] == answer["dag_run_id"]
    assert call["conf"] == conf
    assert call["triggering_user_name"] == "alertmanager"
    assert str(call["triggered_by"].value) == "rest_api"


def test_a_redelivery_of_the_same_group_is_already_triggered(client, triggered):
    first = alert(alertname="HighErrorRate", environment="sandbox", service="analytics")
    resp = client.post("/alerts", json=body(first), headers=GOOD).json()
    assert resp["status"] == "triggered"
    # Alertmanager re-sends while the alert fires (the order of alerts may change): same run id.
    later = alert(alertname="HighLatency", environment="sandbox", service="analytics", starts="2026-11-29T02:03:00Z")
    again = client.post("/alerts", json=body(later, first), headers=GOOD)
    assert again.status_code == 200
    assert again.json() == {"status": "already_triggered", "dag_run_id": resp["dag_run_id"]}
    # The same alert firing again later (a new episode, new startsAt) or another group: a new run.
    episode = alert(
        alertname="HighErrorRate", environment="sandbox", service="analytics", starts="2026-11-30T00:00:00Z"
    )
    assert client.post("/alerts", json=body(episode), headers=GOOD).json()["status"] == "triggered"
    other = client.post("/alerts", json=body(first, group='{}:{alertname="Other"}'), headers=GOOD).json()
    assert other["status"] == "triggered"
    assert len({c["run_id"] for c in triggered.calls}) == 3


def test_refused_params_are_422(client, monkeypatch):
    from airflow.api.common import trigger_dag
    from airflow.sdk.exceptions import ParamValidationError

    def refuse(dag_id, **kwargs):
        raise ParamValidationError("Invalid input for param services")

    monkeypatch.setattr(trigger_dag, "trigger_dag", refuse)
    good = alert(alertname="HighErrorRate", environment="sandbox", service="analytics")
    resp = client.post("/alerts", json=body(good), headers=GOOD)
    assert (resp.status_code, resp.json()) == (422, {"detail": "Invalid input for param services"})


# -- the params, without HTTP -----------------------------------------------------------------
def test_firing_alerts_name_the_services_and_the_reason():
    conf = rollback_conf(
        payload(
            alert(alertname="HighErrorRate", environment="staging", service="analytics"),
            alert(alertname="HighLatency", environment="staging", service="recommendation"),
            alert(status="resolved", alertname="Old", environment="staging", service="face-analysis"),
        )
    )
    assert conf["environment"] == "staging"
    assert conf["services"] == ["analytics", "recommendation"]
    assert conf["target"] == "previous"
    assert conf["reason"] == (
        "alertmanager: HighErrorRate [environment=staging, service=analytics]: 5xx above 5%; "
        "HighLatency [environment=staging, service=recommendation]: 5xx above 5%"
    )


def test_common_labels_stand_in_for_missing_alert_labels():
    conf = rollback_conf(
        payload(alert(alertname="GatewayDown"), common={"environment": "sandbox", "service": "api-gateway"})
    )
    assert (conf["environment"], conf["services"]) == ("sandbox", ["api-gateway"])
    assert conf["reason"] == "alertmanager: GatewayDown [environment=sandbox, service=api-gateway]: 5xx above 5%"


def test_an_alert_without_a_known_service_rolls_back_nothing():
    with pytest.raises(HTTPException) as refused:
        rollback_conf(payload(alert(alertname="GatewayDown", service="billing"), common={"environment": "sandbox"}))
    assert refused.value.status_code == 422
    assert "service='billing'" in refused.value.detail


@pytest.mark.parametrize(
    "alerts",
    [
        [alert(alertname="x", service="analytics")],
        [alert(alertname="x", environment="moon", service="analytics")],
        [
            alert(alertname="x", environment="sandbox", service="analytics"),
            alert(alertname="y", environment="production", service="analytics"),
        ],
    ],
)
def test_the_environment_must_be_one_known_label(alerts):
    with pytest.raises(HTTPException) as refused:
        rollback_conf(payload(*alerts))
    assert refused.value.status_code == 422
    assert "environment" in refused.value.detail


def test_a_huge_label_value_is_cut_short_in_the_answer(client, triggered):
    huge = alert(alertname="A" * 5000, environment="sandbox", service="b" * 5000)
    resp = client.post("/alerts", json=body(huge), headers=GOOD)
    assert resp.status_code == 422
    assert resp.json()["detail"].startswith(f"alert {'A' * 64 + '...'!r} has service={'b' * 64 + '...'!r}: ")
    assert len(resp.json()["detail"]) < 300


def test_an_alert_for_an_environment_under_release_is_503_until_it_is_free(client, triggered, ledger_conn, monkeypatch):
    """Alertmanager delivers again on a 5xx: the alert is neither lost nor run against a release in flight."""
    from varai_deploy.ledger import Actor, Ledger

    release = Actor(dag_id="ai_discovery_release", run_id="manual__release", who="ci")
    Ledger("sandbox").acquire(release, "release", lambda d, r: True)
    monkeypatch.setattr(webhook, "_run_is_active", lambda dag_id, run_id: run_id == "manual__release")
    good = body(alert(alertname="HighErrorRate", environment="sandbox", service="analytics"))
    busy = client.post("/alerts", json=good, headers={"Authorization": f"Bearer {TOKEN}"})
    assert busy.status_code == 503
    assert "release run 'manual__release' of ai_discovery_release holds it" in busy.json()["detail"]
    assert busy.headers["Retry-After"] == "30"
    assert triggered.calls == []
    Ledger("sandbox").release(release)
    again = client.post("/alerts", json=good, headers={"Authorization": f"Bearer {TOKEN}"})
    assert again.status_code == 200 and again.json()["status"] == "triggered"


def test_a_stale_lock_does_not_hold_alerts_back(client, triggered, ledger_conn, monkeypatch):
    from varai_deploy.ledger import Actor, Ledger

    Ledger("sandbox").acquire(Actor("ai_discovery_release", "manual__crashed", "ci"), "release", lambda d, r: True)
    monkeypatch.setattr(webhook, "_run_is_active", lambda dag_id, run_id: False)
    good = body(alert(alertname="HighErrorRate", environment="sandbox", service="analytics"))
    answer = client.post("/alerts", json=good, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json()["status"] == "triggered"
