"""The monthly maintenance window: security updates and database maintenance, never past its end.

Scheduled at each window's start by the rule in the environment config (``maintenance:``, the
guide's first Sunday 02:00-04:00 UTC; the environment named by ``VARAI_SCHEDULED_ENVIRONMENT``);
the run's data interval is the window. Triggered by hand, a window opens now for the configured
length, or the shorter ``length_minutes``.

lock (the environment, until the window's end: releases and rollbacks are refused with that time;
a release or rollback still running is waited for up to ``wait_for_operation_minutes``, then the
window is skipped and that is reported) -> status page "in progress" -> the steps, each started
only if its budget fits before the window closes:

- backup: a run of ``database_backup`` (dump, verified by a restore), waited for: nothing changes
  before there is a proven backup to go back to;
- security_updates: every live service's release rebuilt on its patched image
  (``v1.4.2+sec.20261206``), through the release's blue-green path: health streak, checked switch,
  analysis on real metrics, retire, or every switched service back on its last good revision;
- database: ``VACUUM (ANALYZE)`` and reindexing of bloated indexes, with before/after figures, never
  starting a table after the window's end;

-> the lock let go, whatever happened -> report (status page "verifying", then "completed"; what
ran, what did not fit, what rolled back, to the notifiers; the run fails if a step failed).
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, TaskGroup, dag, task

from varai_deploy.blue_green_group import blue_green_tasks
from varai_deploy.dag_params import FAIL_FAST, default_args, environment_param, scheduled_dag, scheduled_environment
from varai_deploy.operators.environment import FinishOperationOperator, LockEnvironmentOperator


@dag(
    dag_id="maintenance_window",
    **scheduled_dag(),
    tags=["varai", "maintenance"],
    doc_md=__doc__,
    default_args=default_args(),
    params={
        "environment": environment_param("Which environment to maintain", default=scheduled_environment() or "sandbox"),
        "length_minutes": Param(
            None,
            type=["null", "number"],
            minimum=1,
            maximum=1440,
            title="Window length (minutes)",
            description="A manual window's length; empty: the configured window (never longer than it)",
        ),
    },
)
def maintenance_window():
    @task(**FAIL_FAST, multiple_outputs=True)
    def window(params=None, data_interval_start=None, dag_run=None) -> dict:
        """The window's bounds, and how long a running release or rollback may hold it up."""
        from datetime import UTC, datetime

        from airflow.sdk.exceptions import AirflowSkipException

        from varai_deploy.config import load_environment
        from varai_deploy.maintenance.window_steps import opened_at, policy_of, window_of

        env = load_environment(params["environment"])
        policy = policy_of(env)
        bounds = window_of(policy, opened_at(data_interval_start, dag_run.run_after), params.get("length_minutes"))
        left = (bounds.end - datetime.now(UTC)).total_seconds()
        if left <= 0:
            raise AirflowSkipException(f"the window {bounds.describe()} closed before it could start")
        print(f"Maintenance window of {env.name}: {bounds.describe()}")
        return {**bounds.as_dict(), "wait_seconds": max(0.0, min(policy.wait_for_operation_minutes * 60, left))}

    bounds = window()
    lock = LockEnvironmentOperator(
        task_id="lock",
        operation="maintenance",
        until=bounds["end"],
        wait_seconds=bounds["wait_seconds"],
        on_busy="skip",
    )
    bounds >> lock

    @task
    def open_window(start: str, end: str, params=None, **context) -> None:
        """The status page says it is under way; the team hears it started."""
        from varai_deploy.config import load_environment
        from varai_deploy.maintenance.report import best_effort, started_event
        from varai_deploy.maintenance.status_page import move_window
        from varai_deploy.maintenance.window_steps import Window
        from varai_deploy.notifiers import notify

        env = load_environment(params["environment"])
        current = Window.from_dict({"start": start, "end": end})
        best_effort("status page", move_window, env, current, "in_progress", "Maintenance is in progress.")
        notify(env, started_event(context, env, current), context)

    @task(trigger_rule="all_done")
    def fits(step: str, start: str, end: str, params=None, ti=None) -> str:
        """Starts ``step`` only while this run holds the environment and its budget fits the window."""
        from airflow.sdk.exceptions import AirflowSkipException

        from varai_deploy.config import load_environment
        from varai_deploy.maintenance.window_steps import StepDoesNotFit, Window, check_fits, policy_of

        if not ti.xcom_pull(task_ids="lock"):
            raise AirflowSkipException("the window did not get the environment: no step runs")
        policy = policy_of(load_environment(params["environment"]))
        try:
            decision = check_fits(policy, step, Window.from_dict({"start": start, "end": end}))
        except StepDoesNotFit as exc:
            ti.xcom_push(key="not_started", value=str(exc))
            raise AirflowSkipException(str(exc)) from exc
        print(decision)
        return decision

    opened = open_window(bounds["start"], bounds["end"])
    lock >> opened

    with TaskGroup("backup", tooltip="A verified backup before anything changes") as backup:
        # A run of database_backup, waited for without holding a worker; a retry takes the backup again.
        take_backup = TriggerDagRunOperator(
            task_id="take_backup",
            trigger_dag_id="database_backup",
            trigger_run_id="maintenance__{{ run_id }}",
            conf={"environment": "{{ params.environment }}"},
            reset_dag_run=True,
            wait_for_completion=True,
            deferrable=True,
            poke_interval=2,
            allowed_states=["success"],
            failed_states=["failed"],
        )
        fits("backup", bounds["start"], bounds["end"]) >> take_backup

    with TaskGroup(
        "security_updates", tooltip="Each live release rebuilt on its patched image, through blue-green"
    ) as security_updates:

        @task
        def targets(start: str, end: str, params=None) -> list[dict]:
            """What each service gets: its live release on this window's patched image."""
            from airflow.sdk.exceptions import AirflowSkipException

            from varai_deploy.config import load_environment
            from varai_deploy.maintenance.window_steps import Window, patch_targets, policy_of, window_label
            from varai_deploy.platforms import get_platform

            env = load_environment(params["environment"])
            label = window_label(policy_of(env), Window.from_dict({"start": start, "end": end}))
            chosen = patch_targets(env, get_platform(env), label)
            if not chosen:
                raise AirflowSkipException(f"nothing serves in {env.name}: nothing to update")
            for target in chosen:
                print(f"{target['service']}: {target['version']} on {target['infra']['images'][target['service']]}")
            return chosen

        chosen = targets(bounds["start"], bounds["end"])
        fits("security_updates", bounds["start"], bounds["end"]) >> chosen
        blue_green_tasks("security_updates", chosen)

    with TaskGroup("database", tooltip="VACUUM (ANALYZE) and reindexing, never past the window") as database:

        @task
        def maintain(end: str, params=None) -> dict:
            from datetime import datetime

            from varai_deploy.config import load_environment
            from varai_deploy.maintenance.database import maintain_database
            from varai_deploy.maintenance.window_steps import policy_of

            env = load_environment(params["environment"])
            policy = policy_of(env)
            results = {}
            for role in policy.databases:
                result = maintain_database(
                    env.connections[role],
                    deadline=datetime.fromisoformat(end),
                    reindex_bloat_ratio=policy.reindex_bloat_ratio,
                )
                print(f"{role}: {result['summary']}")
                results[role] = result
            return results

        fits("database", bounds["start"], bounds["end"]) >> maintain(bounds["end"])

    @task(trigger_rule="all_done")
    def report(params=None, **context) -> dict:
        """What ran, what did not fit, what rolled back: to the status page and the notifiers.
        Fails the run when a step failed, so the grid shows it."""
        from varai_deploy.maintenance.report import report_window

        return report_window(context, params["environment"])

    finish = FinishOperationOperator(task_id="finish", operation="maintenance")
    opened >> backup >> security_updates >> database >> finish
    finish.as_teardown(setups=lock)
    # After the teardown, outside the lock's scope: it also runs (and says why) when the lock was not had.
    finish >> report()


maintenance_window()
