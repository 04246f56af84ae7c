"""How a maintenance window ended, told once: on the status page, to the notifiers, in the run's state.

Built from what the run left (task states, the steps' XComs, the ledger's verdicts), never from
which tasks happened to reach this one, so a window that did not get the environment, a step that
did not fit and a security update that rolled back are each reported as what they were.
"""

from __future__ import annotations

import logging
from typing import Any

from varai_deploy.config import MAINTENANCE_STEPS
from varai_deploy.maintenance.window_steps import Window

log = logging.getLogger(__name__)

FAILED_STATES = ("failed", "upstream_failed")


def best_effort(what: str, func, *args) -> Any:
    """The status page must not stop maintenance: a failure is logged and reported, not raised."""
    try:
        return func(*args)
    except Exception as exc:
        log.warning("%s: %s: %s", what, type(exc).__name__, exc)
        return None


def started_event(context: Any, env: Any, window: Window):
    from varai_deploy.notifiers.runs import run_event

    message = f"Maintenance of {env.name} is under way until {window.end:%H:%M} UTC; releases and rollbacks wait."
    return run_event(context, "maintenance_started", env.name, message, services=env.services)


def _security_lines(ti: Any, ledger: Any) -> tuple[list[str], dict | None]:
    versions = ti.xcom_pull(task_ids="security_updates.changed_versions") or {}
    lines = []
    for service, version in sorted(versions.items()):
        record = ledger.revision(service, version)
        lines.append(f"{service} {version}: {record.verdict if record else 'not deployed'}")
    return lines, ti.xcom_pull(task_ids="security_updates.rollback_on_failure", key="rollback")


def report_window(context: Any, environment: str) -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowFailException

    from varai_deploy.config import load_environment
    from varai_deploy.ledger import ledger_for
    from varai_deploy.maintenance.status_page import move_window
    from varai_deploy.maintenance.window_steps import Window, opened_at, policy_of, window_of
    from varai_deploy.notifiers import notify
    from varai_deploy.notifiers.runs import run_event

    env = load_environment(environment)
    ti, dag_run = context["ti"], context["dag_run"]
    bounds = ti.xcom_pull(task_ids="window", key="start"), ti.xcom_pull(task_ids="window", key="end")
    if all(bounds):
        window = Window.from_dict({"start": bounds[0], "end": bounds[1]})
    else:  # the window closed before it could start
        opened = opened_at(context.get("data_interval_start"), dag_run.run_after)
        window = window_of(policy_of(env), opened, context["params"].get("length_minutes"))
    states = ti.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id]).get(dag_run.run_id, {})
    if not ti.xcom_pull(task_ids="lock"):
        why = ti.xcom_pull(task_ids="lock", key="refused") or f"the window {window.describe()} had closed"
        message = f"Maintenance of {env.name} ({window.describe()}) did not take place: {why}."
        best_effort("status page", move_window, env, window, "completed", message)
        notify(env, run_event(context, "maintenance_skipped", env.name, message), context)
        return {"outcome": "skipped", "reason": why}

    not_started = {
        step: reason
        for step in MAINTENANCE_STEPS
        if (reason := ti.xcom_pull(task_ids=f"{step}.fits", key="not_started"))
    }
    failed = sorted(task for task, state in states.items() if state in FAILED_STATES and task != "report")
    security, rollback = _security_lines(ti, ledger_for(env))
    databases = ti.xcom_pull(task_ids="database.maintain") or {}
    details = {
        "Window": window.describe(),
        "Security updates": "; ".join(security) or "none",
        "Database": "; ".join(f"{role}: {r['summary']}" for role, r in databases.items()) or "not run",
    }
    if not_started:
        details["Did not fit"] = "; ".join(not_started.values())
    if states.get("backup.take_backup") == "success":
        backup_run = ti.xcom_pull(task_ids="backup.take_backup", key="trigger_run_id")
        details["Backup"] = f"taken and verified (database_backup run {backup_run})"
    if rollback:
        kind, outcome = "maintenance_rolled_back", "rolled back"
        details["Rolled back"] = "; ".join(f"{s}: {text}" for s, text in sorted(rollback["services"].items()))
    elif failed:
        kind, outcome = "maintenance_failed", "failed"
    elif not_started:
        kind, outcome = "maintenance_step_skipped", "completed, with steps left out"
    else:
        kind, outcome = "maintenance_succeeded", "completed"
    message = f"Maintenance of {env.name} {outcome}."
    if failed:
        message += f" Failed: {', '.join(failed)}."
    best_effort("status page", move_window, env, window, "verifying", "Maintenance is done; verifying the services.")
    page = "Maintenance completed." if not (rollback or failed) else f"Maintenance ended: {outcome}."
    best_effort("status page", move_window, env, window, "completed", page)
    notify(env, run_event(context, kind, env.name, message, details=details, services=env.services), context)
    log.info("%s\n%s", message, "\n".join(f"  {k}: {v}" for k, v in details.items()))
    if rollback or failed:
        raise AirflowFailException(message + " " + "; ".join(f"{k}: {v}" for k, v in details.items()))
    return {"outcome": outcome, **details}
