"""What emergency maintenance tells, at each step: a status page incident (public, so it names no
vulnerability before the fix is out) and the notifiers (internal: the reason, the CVE, the services)."""

from __future__ import annotations

from typing import Any

PUBLIC = {
    "investigating": "We are applying an urgent security fix to the AI Discovery platform. No downtime is expected.",
    "identified": "The fix is approved and being rolled out service by service.",
    "monitoring": "The fix is live; we are watching error rates and latency.",
}


def _why(params: dict[str, Any]) -> str:
    cve = params.get("cve")
    return f"{params['severity']}{f', {cve}' if cve else ''}: {params['reason']}"


def tell_step(context: Any, params: dict[str, Any], status: str) -> None:
    """The incident moves to ``status``; once the fix is live the team hears it too (the request and
    the answer are told by the approval itself)."""
    from varai_deploy.config import load_environment
    from varai_deploy.maintenance.report import best_effort
    from varai_deploy.maintenance.status_page import emergency_update
    from varai_deploy.notifiers import notify
    from varai_deploy.notifiers.runs import run_event

    env = load_environment(params["environment"])
    if status == "monitoring":
        from airflow.sdk.exceptions import AirflowSkipException

        # The analysis task succeeds with whatever verdict it reached: only a pass is a live fix.
        verdict = context["ti"].xcom_pull(task_ids="fix.analysis") or {}
        if verdict.get("verdict") != "pass":
            raise AirflowSkipException(f"the fix's analysis did not pass ({verdict.get('verdict')}): it rolls back")
    best_effort("status page", emergency_update, env, context["dag_run"].run_id, status, PUBLIC[status])
    if status == "monitoring":
        versions = context["ti"].xcom_pull(task_ids="fix.changed_versions") or {}
        live = ", ".join(f"{s} {v}" for s, v in sorted(versions.items()))
        message = f"The fix ({_why(params)}) is live and passed its checks: {live}. Watching."
        notify(env, run_event(context, "emergency_update", env.name, message, services=sorted(versions)), context)


def resolve_run(context: Any, params: dict[str, Any]) -> dict[str, Any]:
    """How the emergency ended, told once; raises unless the fix stands."""
    from airflow.sdk.exceptions import AirflowFailException

    from varai_deploy.config import load_environment
    from varai_deploy.maintenance.report import FAILED_STATES, best_effort
    from varai_deploy.maintenance.status_page import emergency_update
    from varai_deploy.notifiers import notify
    from varai_deploy.notifiers.runs import run_event

    env = load_environment(params["environment"])
    ti, dag_run = context["ti"], context["dag_run"]
    states = ti.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id]).get(dag_run.run_id, {})
    failed = sorted(t for t, s in states.items() if s in FAILED_STATES and t != "resolve")
    versions = ti.xcom_pull(task_ids="fix.changed_versions") or {}
    rollback = ti.xcom_pull(task_ids="fix.rollback_on_failure", key="rollback")
    if states.get("approval") != "success":
        best_effort("status page", emergency_update, env, dag_run.run_id, "resolved", "No change was made.")
        raise AirflowFailException(f"emergency maintenance not approved ({states.get('approval')}): nothing changed")
    if rollback or failed:
        where = "; ".join(f"{s}: {text}" for s, text in sorted((rollback or {}).get("services", {}).items()))
        message = (
            f"The fix ({_why(params)}) did not pass its checks and was rolled back at once"
            + (f": {where}" if where else "")
            + (f". Failed: {', '.join(failed)}" if failed else "")
            + "."
        )
        public = "The fix was withdrawn after our checks; the platform runs its previous version."
        best_effort("status page", emergency_update, env, dag_run.run_id, "resolved", public)
        notify(env, run_event(context, "emergency_rolled_back", env.name, message, services=sorted(versions)), context)
        raise AirflowFailException(message)
    best_effort("status page", emergency_update, env, dag_run.run_id, "resolved", "The fix is in place.")
    live = ", ".join(f"{s} {v}" for s, v in sorted(versions.items()))
    message = f"Emergency maintenance done ({_why(params)}): {live}."
    notify(env, run_event(context, "emergency_succeeded", env.name, message, services=sorted(versions)), context)
    return {"outcome": "fixed", "versions": versions}
