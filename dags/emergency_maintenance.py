"""Emergency maintenance: a critical fix, approved by the CTO, told as it happens, undone at once if it hurts.

Triggered from the UI form or the REST API with a reason, a severity and, where there is one, the
CVE. Each chosen service's live release is rebuilt with the fix (``v1.4.2+cve-2026-12345``, or
``+hotfix.<minute>`` without a CVE) and goes out through the release's blue-green path.

validate -> lock (refused at once while a release, rollback or maintenance holds the environment)
-> status page incident "investigating" -> the CTO's approval (``maintenance.emergency_approvers``;
nobody else's answer counts; no answer in ``emergency_timeout_minutes`` rejects) -> "identified"
-> the fix: each candidate's health streak, a checked switch, the gateway check after each switch,
the analysis on real metrics -> "monitoring" -> "resolved", or every switched service back on its
last good revision at once, and the incident says so. Every step goes to the notifiers too.
"""

from __future__ import annotations

from airflow.sdk import Param, TaskGroup, dag, task

from varai_deploy.blue_green_group import blue_green_tasks
from varai_deploy.dag_params import FAIL_FAST, OPERATIONS_DAG, default_args, environment_param, services_param
from varai_deploy.operators.emergency import EmergencyApprovalOperator
from varai_deploy.operators.environment import FinishOperationOperator, LockEnvironmentOperator

CVE_PATTERN = r"^CVE-\d{4}-\d{4,7}$"


@dag(
    dag_id="emergency_maintenance",
    **OPERATIONS_DAG,
    tags=["varai", "maintenance"],
    doc_md=__doc__,
    default_args=default_args(),
    params={
        "environment": environment_param("Where the fix goes"),
        "reason": Param(
            type="string",
            minLength=10,
            maxLength=500,
            title="Reason",
            description="What is wrong and what the fix does (required; on the status page and in the ledger)",
        ),
        "severity": Param(
            "critical",
            type="string",
            enum=["critical", "high"],
            title="Severity",
            description="critical: exploited or exploitable now; high: fix before the next window",
        ),
        "cve": Param(
            None,
            type=["null", "string"],
            pattern=CVE_PATTERN,
            title="CVE",
            description="The vulnerability fixed, e.g. CVE-2026-12345 (empty if none)",
        ),
        "services": services_param("Which services get the fix (default: all five)"),
    },
)
def emergency_maintenance():
    @task(**FAIL_FAST)
    def validate(params=None) -> list[str]:
        """Who may approve and which services, checked before anything is touched."""
        from varai_deploy.config import check_services, load_environment
        from varai_deploy.maintenance.window_steps import policy_of

        env = load_environment(params["environment"])
        policy = policy_of(env)
        if not policy.emergency_approvers:
            raise ValueError(f"{env.name}: maintenance.emergency_approvers names nobody (the CTO) who may approve")
        return list(check_services(params["services"], allowed=env.services))

    services = validate()
    lock = LockEnvironmentOperator(task_id="lock", operation="emergency_maintenance", services=services)

    @task
    def tell(status: str, params=None, **context) -> None:
        """The status page incident and the notifiers, at each step of the fix."""
        from varai_deploy.maintenance.emergency import tell_step

        tell_step(context, params, status)

    approval = EmergencyApprovalOperator(task_id="approval", services=services)

    with TaskGroup("fix", tooltip="Each service's release rebuilt with the fix, through blue-green") as fix:

        @task
        def targets(chosen: list[str], params=None, dag_run=None) -> list[dict]:
            from varai_deploy.config import load_environment
            from varai_deploy.maintenance.window_steps import emergency_label, patch_targets
            from varai_deploy.platforms import get_platform

            env = load_environment(params["environment"])
            label = emergency_label(params.get("cve"), dag_run.run_after)
            found = patch_targets(env, get_platform(env), label, chosen)
            if not found:
                raise ValueError(f"none of {', '.join(chosen)} serves anything in {env.name}: nothing to fix")
            return found

        analysis, _ = blue_green_tasks("fix", targets(services))
        analysis >> tell.override(task_id="monitoring")("monitoring")

    @task(trigger_rule="all_done")
    def resolve(params=None, **context) -> dict:
        """How it ended, on the status page and to the notifiers; fails the run unless the fix stands."""
        from varai_deploy.maintenance.emergency import resolve_run

        return resolve_run(context, params)

    finish = FinishOperationOperator(task_id="finish", operation="emergency_maintenance")
    lock >> tell.override(task_id="investigating")("investigating") >> approval
    approval >> tell.override(task_id="identified")("identified") >> fix >> resolve() >> finish
    finish.as_teardown(setups=lock)


emergency_maintenance()
