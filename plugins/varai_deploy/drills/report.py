"""What a drill measured against the objectives, told once: in the reports bucket (JSON and an HTML
page), to the notifiers, and in the run's state.

From the drill's own timestamps and the data itself:
  * time to detect: from the break until the steady-state check saw the outage;
  * RTO: from the break until the steady state was back, through the gateway;
  * RPO: from the break back to the newest write that was there after the recovery;
  * MTTR: the mean recovery time of this drill and every earlier one in the reports bucket.
Objectives: ``backups.rto_minutes``, ``backups.rpo_minutes``, ``dr_drills.mttr_minutes``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)
OBJECTIVES = ("rto", "rpo", "mttr")


def _since(start: str | datetime, end: str | datetime | None) -> float | None:
    if end is None:
        return None
    start, end = (datetime.fromisoformat(t) if isinstance(t, str) else t for t in (start, end))
    return round((end - start).total_seconds(), 1)


def measure(env: Any, steps: dict[str, dict], newest_kept: datetime | None, earlier: list[float]) -> dict[str, Any]:
    """``steps``: the XComs of inject_failure, detect, recover and steady_state_after."""
    broken = steps["inject_failure"]["broken_at"]
    rto = _since(broken, steps["steady_state_after"]["at"])
    rpo = _since(newest_kept, broken) if newest_kept else float("inf")
    recoveries = [*earlier, rto]
    measured = {"rto": rto, "rpo": rpo, "mttr": round(sum(recoveries) / len(recoveries), 1)}
    limits = {
        "rto": env.backups.rto_minutes * 60,
        "rpo": env.backups.rpo_minutes * 60,
        "mttr": env.dr_drills.mttr_minutes * 60,
    }
    return {
        "objectives": {
            name: {
                "measured_seconds": measured[name],
                "objective_seconds": limits[name],
                "met": measured[name] <= limits[name],
            }
            for name in OBJECTIVES
        },
        "recovery_seconds": rto,
        "time_to_detect_seconds": _since(broken, steps["detect"]["at"]),
        "timeline": {
            "broken_at": 0.0,
            "detected_at": _since(broken, steps["detect"]["at"]),
            "restored_at": _since(broken, steps["recover"]["restored_at"]),
            "recovered_at": rto,
        },
        "drills_in_mttr": len(recoveries),
    }


def _outcome(ti: Any, states: dict[str, str]) -> tuple[str, str]:
    """(kind, what happened) from the run's task states; kind "" when it recovered."""
    if states.get("inject_failure") != "success":
        steps = ("plan", "lock", "approval", "steady_state_before", "backup_ready", "inject_failure")
        failed = [t for t in steps if states.get(t) == "failed"]
        return "dr_drill_not_started", f"nothing was broken ({', '.join(failed) or 'not reached'} failed)"
    if states.get("steady_state_after") != "success":
        aborted = (ti.xcom_pull(task_ids="abort") or {}).get("outcome", "did not run")
        return "dr_drill_aborted", f"the recovery did not bring the steady state back in time; abort: {aborted}"
    return "", "recovered"


def _earlier(store: Any, environment: str) -> list[dict[str, Any]]:
    """The reports of earlier drills that recovered, oldest first."""
    reports = [store.read_json(name) for name in store.names(f"drills/{environment}/") if name.endswith(".json")]
    return [r for r in reports if r and r.get("recovery_seconds") is not None]


def report_drill(context: Any, environment: str, scenario: str) -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowFailException

    from varai_deploy.config import load_environment
    from varai_deploy.drills.data_loss import newest_before
    from varai_deploy.drills.report_page import render
    from varai_deploy.drills.scenarios import scenario as scenario_named
    from varai_deploy.hooks.backup_store import BackupStoreError, ReportStoreHook
    from varai_deploy.notifiers import notify
    from varai_deploy.notifiers.runs import run_event

    env = load_environment(environment)
    drill = scenario_named(scenario)
    ti, dag_run = context["ti"], context["dag_run"]
    states = ti.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id]).get(dag_run.run_id, {})
    store = ReportStoreHook(env.connections["reports"])
    earlier = [r for r in _earlier(store, env.name) if r["run_id"] != dag_run.run_id]
    kind, what = _outcome(ti, states)
    result: dict[str, Any] = {"environment": env.name, "scenario": scenario, "run_id": dag_run.run_id, "outcome": what}
    if not kind:
        steps = {t: ti.xcom_pull(task_ids=t) for t in ("inject_failure", "detect", "recover", "steady_state_after")}
        kept = newest_before(env, env.dr_drills, datetime.fromisoformat(steps["inject_failure"]["broken_at"]))
        result |= measure(env, steps, kept, [r["recovery_seconds"] for r in earlier])
        result |= drill.findings(steps)
        missed = [name for name in OBJECTIVES if not result["objectives"][name]["met"]]
        kind = "dr_drill_missed" if missed else "dr_drill_passed"
        result["passed"] = not missed
        result["outcome"] = f"recovered; missed: {', '.join(missed)}" if missed else "recovered within every objective"
    details = {
        name.upper(): f"{o['measured_seconds']:g} s (objective {o['objective_seconds']:g} s)"
        for name, o in result.get("objectives", {}).items()
    }
    if "timeline" in result:
        details["Time to detect"] = f"{result['time_to_detect_seconds']:g} s"
        if "lost_rows" in result:
            details["Lost rows"] = ", ".join(f"{t}: {n}" for t, n in result["lost_rows"].items())
        if "redeployed" in result:
            details["Redeployed"] = ", ".join(f"{s} {v}" for s, v in result["redeployed"].items())
            tf = result["terraform"]
            details["Terraform"] = (
                f"{tf['release']}, {'applied' if tf['applied'] else 'no changes'}"
                f"{' by ' + tf['applied_by'] if tf.get('applied_by') else ''} in {tf['seconds']:g} s"
            )
        if "killed" in result:
            killed = result["killed"]
            details["Killed"] = (
                f"{killed['service']} {killed['version']} ({killed['colour']}) instance {killed['instance']}, "
                f"pid {killed['pid']}; {result['instances_before']} instance(s) were serving"
            )
        if "failed_over" in result:
            moved = result["failed_over"]
            details["Failed over"] = f"{moved['from']} to {moved['to']}; {moved['killed']} process(es) lost"
    base = f"drills/{env.name}/{dag_run.run_id}"
    try:
        store.put_json(f"{base}.json", result)
        store.put_text(f"{base}.html", render(result, earlier), "text/html; charset=utf-8")
        details["Report"] = f"gs://{store.bucket}/{base}.html"
    except BackupStoreError as exc:  # a retried report: the first one's is there already
        log.info("%s", exc)
    message = f"DR drill {scenario} in {env.name}: {result['outcome']}."
    notify(env, run_event(context, kind, env.name, message, details=details), context)
    log.info("%s\n%s", message, "\n".join(f"  {k}: {v}" for k, v in details.items()))
    if kind != "dr_drill_passed":
        raise AirflowFailException(message + " " + "; ".join(f"{k}: {v}" for k, v in details.items()))
    return result
