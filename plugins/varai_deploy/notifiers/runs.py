"""Events about the running operation: its run, its link, who started it, and where traffic is now."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from varai_deploy.notifiers.events import Event
    from varai_deploy.platforms import Platform


def airflow_url() -> str:
    """The UI's address, as ``[api] base_url`` has it (what Airflow's own links use)."""
    from airflow.sdk.configuration import conf

    return (conf.get("api", "base_url", fallback=None) or "http://localhost:8080/").rstrip("/")


def run_url(dag_id: str, run_id: str) -> str:
    return f"{airflow_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def run_event(context: Any, kind: str, environment: str, message: str, **fields: Any) -> Event:
    """An :class:`Event` about the run in ``context``."""
    from varai_deploy.notifiers.events import Event

    dag_run = context["dag_run"]
    triggered_by = getattr(dag_run, "triggering_user_name", None) or str(getattr(dag_run, "run_type", "") or "")
    services = fields.pop("services", ()) or ()
    return Event(
        kind=kind,
        environment=environment,
        message=message,
        services=tuple([services] if isinstance(services, str) else services),
        run_id=dag_run.run_id,
        dag_id=dag_run.dag_id,
        run_url=run_url(dag_run.dag_id, dag_run.run_id),
        triggered_by=triggered_by,
        **fields,
    )


def traffic_now(platform: Platform, services: list[str]) -> dict[str, str]:
    """What serves each service now, as the platform says (never raises: a report, not a check)."""
    traffic = {}
    for service in services:
        try:
            live = platform.current_revision(service)
        except Exception as exc:
            traffic[service] = f"unknown ({type(exc).__name__})"
            continue
        traffic[service] = f"{live['version']} ({live.get('name', '?')})" if live else "nothing serving"
    return traffic
