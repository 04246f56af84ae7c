"""Alertmanager payloads -> rollback params (the HTTP side is tested in tests/integration)."""

import pytest
from fastapi import HTTPException

from varai_deploy.services import SERVICE_NAMES
from varai_deploy.webhook import AlertmanagerPayload, rollback_conf


def payload(*alerts, common=None):
    return AlertmanagerPayload.model_validate(
        {"status": "firing", "groupKey": "g", "commonLabels": common or {}, "alerts": list(alerts)}
    )


def alert(status="firing", **labels):
    return {"status": status, "labels": labels, "annotations": {"summary": "5xx above 5%"}, "startsAt": "t"}


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


def test_an_alert_without_a_known_service_rolls_back_everything():
    conf = rollback_conf(payload(alert(alertname="GatewayDown", service="billing"), common={"environment": "sandbox"}))
    assert conf["services"] == list(SERVICE_NAMES)


@pytest.mark.parametrize(
    "alerts",
    [
        [alert(alertname="x")],
        [alert(alertname="x", environment="moon")],
        [alert(alertname="x", environment="sandbox"), alert(alertname="y", environment="production")],
    ],
)
def test_the_environment_must_be_one_known_label(alerts):
    with pytest.raises(HTTPException) as refused:
        rollback_conf(payload(*alerts))
    assert refused.value.status_code == 422
