"""Alertmanager webhook -> ``ai_discovery_rollback``: the guide's "manual trigger via monitoring".

Served by the Airflow API server (registered in plugins/varai_deploy_plugin.py) at
``POST /varai/alerts``. Alertmanager authenticates with ``Authorization: Bearer <token>``; the
token is the password of the Airflow Connection ``varai_alert_webhook``. Without that
connection the webhook refuses everything (fails closed).

Order of checks, so nobody learns anything without the token:

1. the bearer token, before the body is read: ``503`` when the connection is missing, ``401``
   when the token is missing or wrong;
2. the body: ``422`` when it is not JSON or not an Alertmanager payload;
3. every *firing* alert (its own labels, falling back to ``commonLabels``) must name one known
   ``environment`` (all the same) and one known ``service`` (one of ``SERVICE_NAMES``; there is
   no ``service="all"``: an alert rolls back the service it is about, nothing else). One bad
   alert refuses the whole delivery with ``422`` naming the alert and the label, and nothing is
   triggered (Alertmanager does not retry a 4xx, so fix the alerting rule).

4. the environment: while a release (or another rollback) holds its lock in the ledger, ``503``
   with ``Retry-After`` naming the holder, and nothing is triggered: Alertmanager delivers the
   alert again later, so it is neither lost nor run against a release in flight. (The rollback
   run's own lock task is the real gate; this check only keeps alerts from being used up.)

Then one rollback of the named services is triggered. A re-delivered alert group starts no
second rollback: the run id is derived from the group key and its firing alerts' earliest
start time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

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


def parse_payload(body: bytes) -> AlertmanagerPayload:
    """The body as an Alertmanager payload, or 422 with a one-line reason (never the whole body)."""
    try:
        data = json.loads(body)
    except ValueError as exc:  # also UnicodeDecodeError
        raise HTTPException(422, f"body is not JSON: {exc}") from None
    try:
        return AlertmanagerPayload.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise HTTPException(422, f"not an Alertmanager payload: {where}: {first['msg']}{more}") from None


def _labels(payload: AlertmanagerPayload, alert: Alert) -> dict[str, str]:
    return {**payload.commonLabels, **alert.labels}


def _shown(value: str, limit: int = 64) -> str:
    """A label value for an error message: quoted, and cut short if someone sent a novel."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _name(index: int, labels: dict[str, str]) -> str:
    return f"alert {_shown(labels['alertname'])}" if labels.get("alertname") else f"alert #{index} (no alertname)"


def rollback_conf(payload: AlertmanagerPayload) -> dict[str, Any]:
    """The rollback DAG's params from the firing alerts' labels; 422 naming the first bad alert."""
    firing = [(i, _labels(payload, a), a) for i, a in enumerate(payload.alerts) if a.status == "firing"]
    if not firing:
        raise HTTPException(422, "no firing alert")
    environment: str | None = None
    first_named: str | None = None
    services: set[str] = set()
    reasons = []
    for index, labels, alert in firing:
        name = _name(index, labels)
        env = labels.get("environment")
        if not env:
            raise HTTPException(422, f"{name} has no 'environment' label: expected one of {', '.join(ENVIRONMENTS)}")
        if env not in ENVIRONMENTS:
            raise HTTPException(422, f"{name} has environment={_shown(env)}: expected one of {', '.join(ENVIRONMENTS)}")
        if environment is None:
            environment, first_named = env, name
        elif env != environment:
            raise HTTPException(
                422,
                f"{name} has environment={_shown(env)} but {first_named} has environment={environment!r}: "
                "one delivery rolls back one environment (group alerts by environment)",
            )
        service = labels.get("service")
        if not service:
            raise HTTPException(422, f"{name} has no 'service' label: expected one of {', '.join(SERVICE_NAMES)}")
        if service not in SERVICE_NAMES:
            raise HTTPException(
                422, f"{name} has service={_shown(service)}: expected one of {', '.join(SERVICE_NAMES)}"
            )
        services.add(service)
        shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
        summary = alert.annotations.get("summary", "")
        reasons.append(f"{labels.get('alertname', 'alert')} [{shown}]{': ' + summary if summary else ''}")
    return {
        "environment": environment,
        "reason": "alertmanager: " + "; ".join(reasons),
        "target": "previous",
        "services": sorted(services),
    }


def rollback_run_id(payload: AlertmanagerPayload) -> str:
    """Stable per alert group and firing episode: a re-delivery maps to the same run id."""
    starts = sorted(a.startsAt for a in payload.alerts if a.status == "firing")
    digest = hashlib.sha256(f"{payload.groupKey}|{starts[0] if starts else ''}".encode()).hexdigest()[:16]
    return f"alert__{digest}"


#: Seconds Alertmanager is asked to wait before delivering an alert for a busy environment again.
BUSY_RETRY_AFTER_SECONDS = 30


def _run_is_active(dag_id: str, run_id: str) -> bool:
    """The lock holder's run is still queued or running (the API server reads the metadata DB)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return state in ("queued", "running")


def refuse_if_busy(environment: str) -> None:
    """503 while a live operation holds the environment; anything unknown lets the run's lock decide."""
    from varai_deploy.config import ConfigError, load_environment
    from varai_deploy.ledger import LedgerError, ledger_for

    try:
        holder = ledger_for(load_environment(environment)).holder()
    except (ConfigError, LedgerError):
        return
    if holder and _run_is_active(holder.dag_id, holder.run_id):
        raise HTTPException(
            503,
            f"{holder.describe()}: deliver this alert again once it is done",
            headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
        )


def trigger_rollback(run_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    """Create the rollback run (blocking: the metadata DB); the webhook's answer."""
    from airflow.api.common import trigger_dag as trigger_module
    from airflow.exceptions import DagRunAlreadyExists
    from airflow.sdk.exceptions import ParamValidationError
    from airflow.utils.types import DagRunTriggeredByType

    try:
        run = trigger_module.trigger_dag(
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


def create_app() -> FastAPI:
    app = FastAPI(title="VarAI alert webhook", description=__doc__)

    @app.post("/alerts")
    async def alerts(request: Request) -> dict[str, Any]:
        # The raw request, so the token is checked before a byte of the body is parsed.
        await run_in_threadpool(authenticate, request.headers.get("authorization"))
        payload = parse_payload(await request.body())
        if not any(a.status == "firing" for a in payload.alerts):
            return {"status": "ignored", "reason": "no firing alert"}
        conf = rollback_conf(payload)
        await run_in_threadpool(refuse_if_busy, conf["environment"])
        return await run_in_threadpool(trigger_rollback, rollback_run_id(payload), conf)

    return app
