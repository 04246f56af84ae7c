"""Alertmanager webhook -> ``ai_discovery_rollback``: the guide's "manual trigger via monitoring".

Served by the Airflow API server (registered in plugins/varai_deploy_plugin.py) at
``POST /varai/alerts``. Alertmanager authenticates with ``Authorization: Bearer <token>``; the
token is the password of the Airflow Connection ``varai_alert_webhook``. Without that
connection the webhook refuses everything (fails closed). A re-delivered alert group starts no
second rollback: the run id is derived from the group and its start time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

from varai_deploy.config import ENVIRONMENTS
from varai_deploy.services import SERVICE_NAMES

TOKEN_CONN_ID = "varai_alert_webhook"  # noqa: S105 (a connection id, not a secret)
ROLLBACK_DAG_ID = "ai_discovery_rollback"


class Alert(BaseModel):
    status: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""


class AlertmanagerPayload(BaseModel):
    """Alertmanager's webhook body (version 4)."""

    status: str
    groupKey: str = ""
    commonLabels: dict[str, str] = Field(default_factory=dict)
    alerts: list[Alert] = Field(default_factory=list)


def _expected_token() -> str | None:
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        return Connection.get_connection_from_secrets(TOKEN_CONN_ID).password or None
    except AirflowNotFoundException:
        return None


def authenticate(authorization: str | None) -> None:
    expected = _expected_token()
    if expected is None:
        raise HTTPException(503, f"webhook not configured: define the Airflow Connection {TOKEN_CONN_ID!r}")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(401, "invalid or missing bearer token", headers={"WWW-Authenticate": "Bearer"})


def rollback_conf(payload: AlertmanagerPayload) -> dict[str, Any]:
    """The rollback DAG's params from the firing alerts' labels."""
    firing = [a for a in payload.alerts if a.status == "firing"]
    environments = {a.labels.get("environment") or payload.commonLabels.get("environment") for a in firing}
    if len(environments) != 1 or next(iter(environments)) not in ENVIRONMENTS:
        raise HTTPException(422, f"firing alerts must carry one 'environment' label out of {', '.join(ENVIRONMENTS)}")
    services = sorted({a.labels["service"] for a in firing if a.labels.get("service") in SERVICE_NAMES})
    reasons = []
    for alert in firing:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname")
        summary = alert.annotations.get("summary", "")
        reasons.append(f"{alert.labels.get('alertname', 'alert')} [{labels}]{': ' + summary if summary else ''}")
    return {
        "environment": environments.pop(),
        "reason": "alertmanager: " + "; ".join(reasons),
        "target": "previous",
        "services": services or list(SERVICE_NAMES),
    }


def create_app() -> FastAPI:
    app = FastAPI(title="VarAI alert webhook", description=__doc__)

    @app.post("/alerts")
    def alerts(payload: AlertmanagerPayload, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        authenticate(authorization)
        if not any(a.status == "firing" for a in payload.alerts):
            return {"status": "ignored", "reason": "no firing alert"}
        conf = rollback_conf(payload)
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.exceptions import DagRunAlreadyExists
        from airflow.sdk.exceptions import ParamValidationError
        from airflow.utils.types import DagRunTriggeredByType

        starts = sorted(a.startsAt for a in payload.alerts if a.status == "firing")
        digest = hashlib.sha256(f"{payload.groupKey}|{starts[0]}".encode()).hexdigest()[:16]
        run_id = f"alert__{digest}"
        try:
            run = trigger_dag(
                ROLLBACK_DAG_ID,
                triggered_by=DagRunTriggeredByType.REST_API,
                triggering_user_name="alertmanager",
                run_id=run_id,
                conf=conf,
            )
        except DagRunAlreadyExists:
            return {"status": "already_triggered", "dag_run_id": run_id}
        except ParamValidationError as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"status": "triggered", "dag_run_id": run.run_id if run else run_id, "conf": conf}

    return app
