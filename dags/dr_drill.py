"""A disaster-recovery drill: break the environment for real, recover through the automation that is
meant to recover it, and measure the recovery against the objectives (RTO, RPO, MTTR).

On demand (params: scenario, environment) and periodically (``dr_drills.schedule`` of the
environment named by ``VARAI_SCHEDULED_ENVIRONMENT``). Only scenarios the environment's config lists
may run there. *data_loss*: the services' tables are destroyed, and the newest verified backup is
restored into the live database. *service_failure*: the live process of ``dr_drills.service`` is
killed; the platform fails over to its other instance and replaces it by itself. *region_failure*: every
process of the region users are served from is killed and kept down; the front end is failed over
to the standby region once its services answer there. *complete_outage*:
every service removed, the database dropped and the Terraform state deleted; Terraform, the newest
verified backup and the ledger's last known good revisions recreate everything.

plan -> lock (the environment: no release, rollback or maintenance meanwhile) -> approval (where
``dr_drills.requires_approval`` says so, production always: one of ``dr_drills.approvers``) -> the steady-state
hypothesis (every service healthy through the gateway, a low error ratio, the services' newest rows
fresh; if it does not hold, nothing is broken) -> where a backup is restored, a verified one within the RPO
(else nothing is broken: the drill would only prove the backups are late) -> inject_failure ->
detect (the break noticed: the time to detect) -> recover -> the steady state back and staying back
for ``settle_seconds``; every wait deferred until ``limit_minutes`` after the break -> abort (only
when the recovery did not bring it back: undo the break, whatever it takes) -> lift_failure (what
the break left in place ended: a lost region back, as the standby) -> the lock let go ->
report (measured against the objectives, JSON and an HTML page with a timeline and the trend of past
drills in the reports bucket, and to the notifiers; the run fails unless every objective was met).
A drill against production runs only with ``break_production`` ticked.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from varai_deploy.config import DRILL_SCENARIOS
from varai_deploy.dag_params import FAIL_FAST, default_args, drill_schedule, environment_param, scheduled_environment
from varai_deploy.operators.drill import DrillStepOperator, SteadyStateOperator
from varai_deploy.operators.drill_approval import DrillApprovalOperator
from varai_deploy.operators.environment import FinishOperationOperator, LockEnvironmentOperator


@dag(
    dag_id="dr_drill",
    **drill_schedule(),
    tags=["varai", "dr"],
    doc_md=__doc__,
    default_args=default_args(),
    params={
        "environment": environment_param(
            "Where to break things on purpose", default=scheduled_environment() or "sandbox"
        ),
        "scenario": Param(
            DRILL_SCENARIOS[0],
            type="string",
            enum=list(DRILL_SCENARIOS),
            title="Scenario",
            description=(
                "data_loss: the services' tables destroyed, restored from the newest verified backup; "
                "service_failure: a live service process killed, the platform failing over and replacing it; "
                "region_failure: the serving region lost, the front end failed over to the standby region; "
                "complete_outage: every service, the database and the Terraform state gone, all recreated"
            ),
        ),
        "break_production": Param(
            False,
            type="boolean",
            title="Yes, break production",
            description="A drill against production breaks it for real: it runs only when this is ticked",
        ),
    },
)
def dr_drill():
    @task(**FAIL_FAST)
    def plan(params=None) -> dict:
        """The scenario must be one the environment allows; what it breaks, and by when it must be back."""
        from varai_deploy.config import load_environment

        if params["environment"] == "production" and params.get("break_production") is not True:
            raise ValueError("a drill against production breaks it for real: tick break_production to mean it")
        env = load_environment(params["environment"])
        policy = env.dr_drills
        if policy is None:
            raise ValueError(f"{env.name} has no dr_drills section in its config: no drill may break it")
        if params["scenario"] not in policy.scenarios:
            raise ValueError(f"{env.name} allows the drills {', '.join(policy.scenarios)}, not {params['scenario']}")
        target = {
            "service_failure": policy.service,
            "region_failure": "the region users are served from",
            "complete_outage": f"every service, {policy.database} and the Terraform state",
        }.get(params["scenario"], ", ".join(policy.tables))
        print(f"DR drill {params['scenario']} in {env.name} on {target}; back within {policy.limit_minutes:g} min")
        return {"database": policy.database, "limit_seconds": policy.limit_minutes * 60}

    planned = plan()
    lock = LockEnvironmentOperator(task_id="lock", operation="dr_drill")
    approval = DrillApprovalOperator(task_id="approval")
    before = SteadyStateOperator(task_id="steady_state_before")

    @task(**FAIL_FAST)
    def backup_ready(database: str, params=None) -> dict:
        """A verified backup within the RPO: what a real data loss would be recovered from."""
        from datetime import UTC, datetime

        from varai_deploy.backups.catalog import list_backups, newest_verified
        from varai_deploy.config import load_environment
        from varai_deploy.drills.scenarios import scenario
        from varai_deploy.hooks.backup_store import BackupStoreHook

        if not scenario(params["scenario"]).needs_backup:
            print(f"{params['scenario']} is recovered without a backup: none needed")
            return {"needed": False}
        env = load_environment(params["environment"])
        newest = newest_verified(list_backups(BackupStoreHook(env.connections["backups"]), env.name, database))
        if newest is None:
            raise ValueError(f"{database} has no verified backup: run database_backup first; nothing was broken")
        age = (datetime.now(UTC) - newest.taken_at).total_seconds()
        if age > env.backups.rpo_minutes * 60:
            raise ValueError(
                f"{database}'s newest verified backup ({newest.stamp}) is {age / 60:.0f} min old, beyond the "
                f"{env.backups.rpo_minutes:g} min RPO: the backups are late, which is the finding; nothing was broken"
            )
        print(f"Newest verified backup of {database}: {newest.stamp}, {age:.0f} s old")
        return {"stamp": newest.stamp, "age_seconds": round(age, 1)}

    ready = backup_ready(planned["database"])
    inject = DrillStepOperator(task_id="inject_failure", step="inject")
    deadline = "{{ ti.xcom_pull(task_ids='inject_failure')['deadline'] }}"
    detect = DrillStepOperator(task_id="detect", step="detected", broken=inject.output, until=deadline)
    recover = DrillStepOperator(task_id="recover", step="recover", broken=inject.output, until=deadline)
    after = SteadyStateOperator(task_id="steady_state_after", until=deadline)

    @task(trigger_rule="one_failed", retries=2)
    def abort(params=None, ti=None) -> dict:
        """Only if something was broken and is not back: the scenario undoes its break. A break whose
        task died before it could say what it broke (no XCom) may have happened: undone all the same."""
        from airflow.sdk.exceptions import AirflowSkipException

        from varai_deploy.config import load_environment
        from varai_deploy.drills.scenarios import scenario

        broken = ti.xcom_pull(task_ids="inject_failure")
        if not broken:
            run = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
            if run.get("inject_failure") != "failed":
                raise AirflowSkipException("nothing was broken: nothing to undo")
            print("inject_failure failed without saying what it broke: undoing whatever it may have broken")
        env = load_environment(params["environment"])
        undone = scenario(params["scenario"]).abort(env, env.dr_drills, broken or {})
        print(f"Aborted: {undone['outcome']}")
        return undone

    @task(trigger_rule="all_done", retries=2)
    def lift_failure(params=None, ti=None) -> dict:
        """The drill is over, recovered or aborted: what its break left in place ends (a lost region
        comes back as the standby); most breaks leave nothing."""
        from airflow.sdk.exceptions import AirflowSkipException

        from varai_deploy.config import load_environment
        from varai_deploy.drills.scenarios import scenario

        broken = ti.xcom_pull(task_ids="inject_failure")
        if not broken:
            raise AirflowSkipException("nothing was broken (or the abort undid all of it)")
        env = load_environment(params["environment"])
        lifted = scenario(params["scenario"]).lift(env, env.dr_drills, broken)
        if lifted is None:
            raise AirflowSkipException("nothing the break did outlasts the drill")
        print(f"Lifted: {lifted}")
        return lifted

    finish = FinishOperationOperator(task_id="finish", operation="dr_drill")

    @task(trigger_rule="all_done")
    def report(params=None, **context) -> dict:
        from varai_deploy.drills.report import report_drill

        return report_drill(context, params["environment"], params["scenario"])

    planned >> lock >> approval >> before >> ready >> inject >> detect >> recover >> after
    aborted = abort()
    lifted = lift_failure()
    [inject, detect, recover, after] >> aborted >> lifted >> finish
    after >> lifted
    finish.as_teardown(setups=lock)
    finish >> report()


dr_drill()
