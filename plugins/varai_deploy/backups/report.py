"""How a backup run ended, for people and for Prometheus.

Per database: the newest verified backup and its age against the RPO, pushed to the Pushgateway
(``connections.metrics_push``) as ``varai_backup_last_verified_timestamp_seconds`` beside
``varai_backup_rpo_seconds``, so Prometheus' ``DatabaseBackupTooOld`` alert fires when backups stop
being proven, whatever the reason, even when this DAG stops running at all. A database whose backup
failed this run pushes ``varai_backup_last_failure_timestamp_seconds`` and is told as critical.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

JOB = "varai_backup"
FAILED_STATES = ("failed", "upstream_failed")
STEPS = ("backup", "verify")


def _age(moment: datetime, now: datetime) -> str:
    minutes = (now - moment).total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _this_runs_failure(backups: list, run_id: str) -> str:
    for backup in reversed(backups):
        if backup.failed and (backup.manifest or {}).get("run_id") == run_id:
            return backup.failed["reason"]
    return "the dump did not complete (see the backup task's log)"


def publish(env: Any, database: str, gauges: dict[str, tuple[float, str]]) -> None:
    """Best effort: a Pushgateway that is down must not fail a good backup (the age alert then
    fires on the stale figure, which is the safe side)."""
    conn_id = env.connections.get("metrics_push")
    if not conn_id:
        log.warning("%s has no connections.metrics_push: the backup age is not published", env.name)
        return
    from varai_deploy.hooks.pushgateway import PushgatewayHook

    try:
        PushgatewayHook(conn_id).push(JOB, {"environment": env.name, "database": database}, gauges)
    except Exception as exc:
        log.warning("pushing the backup metrics of %s failed: %s: %s", database, type(exc).__name__, exc)


def report_backups(context: Any, environment: str) -> dict[str, str]:
    from airflow.sdk.exceptions import AirflowFailException

    from varai_deploy.backups.catalog import list_backups, newest_verified
    from varai_deploy.config import load_environment
    from varai_deploy.hooks.backup_store import BackupStoreHook
    from varai_deploy.notifiers import notify
    from varai_deploy.notifiers.runs import run_event

    env = load_environment(environment)
    ti, dag_run = context["ti"], context["dag_run"]
    roles = ti.xcom_pull(task_ids="databases") or []
    states = ti.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id]).get(dag_run.run_id, {})
    store = BackupStoreHook(env.connections["backups"])
    now = datetime.now(UTC)
    rpo = env.backups.rpo_minutes * 60
    lines, failures = {}, {}
    for index, role in enumerate(roles):
        backups = list_backups(store, env.name, role)
        newest = newest_verified(backups)
        gauges = {
            "varai_backup_rpo_seconds": (rpo, "The recovery point objective the newest verified backup is held to")
        }
        if newest is None:
            lines[role] = "no verified backup"
        else:
            gauges["varai_backup_last_verified_timestamp_seconds"] = (
                newest.taken_at.timestamp(),
                "Snapshot time of the newest backup proven by a restore",
            )
            gauges["varai_backup_restore_seconds"] = (
                float(newest.verified.get("restore_seconds", 0)),
                "How long restoring the newest verified backup took",
            )
            late = " (older than the RPO)" if (now - newest.taken_at).total_seconds() > rpo else ""
            lines[role] = f"newest verified {newest.stamp}, {_age(newest.taken_at, now)} old{late}"
        if any(states.get(f"database.{step}_{index}") in FAILED_STATES for step in STEPS):
            failures[role] = _this_runs_failure(backups, dag_run.run_id)
            lines[role] += f"; this run's backup failed: {failures[role]}"
            gauges["varai_backup_last_failure_timestamp_seconds"] = (now.timestamp(), "When a backup last failed")
        publish(env, role, gauges)
        log.info("%s: %s", role, lines[role])
    if failures:
        message = f"Backup of {', '.join(failures)} in {env.name} failed: it is not counted as a backup."
        notify(env, run_event(context, "backup_failed", env.name, message, details=lines), context)
        raise AirflowFailException(message + " " + "; ".join(f"{k}: {v}" for k, v in lines.items()))
    return lines
