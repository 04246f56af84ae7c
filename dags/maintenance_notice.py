"""Announce the next maintenance window, 48 hours ahead: on the status page and to the team.

Scheduled by the maintenance window's rule in the environment config (``maintenance:``; the
environment named by ``VARAI_SCHEDULED_ENVIRONMENT``, default sandbox), ``notice_hours`` before each
window, so a first Sunday on the 1st or 2nd is announced in the month before. The run's data
interval ends where the window it announces starts. Triggered by hand, it announces the next
window of the chosen environment. A retry finds the status page's entry again rather than posting
a second one.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from varai_deploy.dag_params import default_args, environment_param, scheduled_dag, scheduled_environment


@dag(
    dag_id="maintenance_notice",
    **scheduled_dag(announce=True),
    tags=["varai", "maintenance"],
    doc_md=__doc__,
    default_args=default_args(retry_delay_seconds=60),
    params={
        "environment": environment_param("Whose next window to announce", default=scheduled_environment() or "sandbox")
    },
)
def maintenance_notice():
    @task
    def announce(params=None, data_interval_end=None, dag_run=None, **context) -> dict:
        """The window on the status page (scheduled), then the notifiers; returns what was announced."""
        from varai_deploy.config import load_environment
        from varai_deploy.maintenance.status_page import announce_window
        from varai_deploy.maintenance.window import WindowRule
        from varai_deploy.maintenance.window_steps import policy_of, window_of
        from varai_deploy.notifiers import notify
        from varai_deploy.notifiers.runs import run_event

        env = load_environment(params["environment"])
        policy = policy_of(env)
        rule = WindowRule.parse(policy.rule, policy.start, policy.length_minutes, policy.notice_hours)
        # A manual run without a logical date has no data interval: the next window from now.
        window = window_of(policy, rule.next_start(data_interval_end or dag_run.run_after))
        entry = announce_window(env, window)
        where = f"status page entry {entry['id']} ({entry['status']})" if entry else "no status page configured"
        message = (
            f"Maintenance of {env.name} {window.describe()}: security updates of every service and database "
            f"maintenance. Releases and rollbacks are refused during the window."
        )
        context["dag_run"] = dag_run
        notify(
            env,
            run_event(context, "maintenance_announced", env.name, message, details={"Status page": where}),
            context,
        )
        print(f"Announced {window.describe()} for {env.name}: {where}")
        return {**window.as_dict(), "status_page": entry and entry["id"]}

    announce()


maintenance_notice()
