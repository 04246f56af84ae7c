"""Put traffic back on the previous (or a named) revision, verify it, and record who, when and why.

Triggered from the UI form, the REST API, or an Alertmanager webhook (``POST /varai/alerts`` on
the API server, see plugins/varai_deploy_plugin.py). A target that is not known to the platform
is refused before anything moves; one that does not come up healthy is refused before traffic
moves. Traffic moves only once every target passed its health streak.
"""

from __future__ import annotations

from airflow.sdk import Param, TaskGroup, dag, task

from varai_deploy.dag_params import (
    BY_CANDIDATE,
    BY_SWITCH,
    BY_TARGET,
    FAIL_FAST,
    OPERATIONS_DAG,
    default_args,
    environment_param,
    services_param,
)
from varai_deploy.operators.blue_green import SwitchTrafficOperator, VerifyGatewayOperator
from varai_deploy.operators.environment import FinishOperationOperator, LockEnvironmentOperator
from varai_deploy.operators.rollback import RecordRollbackOperator, RestoreRevisionOperator
from varai_deploy.rollback import REASON_PATTERN, TARGET_PATTERN
from varai_deploy.sensors.health import HealthStreakSensor


@dag(
    dag_id="ai_discovery_rollback",
    **OPERATIONS_DAG,
    tags=["varai", "rollback"],
    doc_md=__doc__,
    default_args=default_args(retry_delay_seconds=5),
    params={
        "environment": environment_param("Where to roll back"),
        "reason": Param(
            type="string",
            minLength=1,
            pattern=REASON_PATTERN,
            title="Reason",
            description="Why you roll back (required; recorded with who and when)",
        ),
        "target": Param(
            "previous",
            type="string",
            pattern=TARGET_PATTERN,
            title="Target",
            description=(
                "'previous', or a release tag the platform still knows, e.g. v1.4.1 "
                "(or a maintenance rebuild, v1.4.1+sec.20261206)"
            ),
        ),
        "services": services_param("Which services to roll back (default: all five)"),
    },
)
def ai_discovery_rollback():
    with TaskGroup("validate", tooltip="Refuse before anything moves") as validate:

        @task(**FAIL_FAST)
        def targets(params=None) -> list[dict]:
            """Each service's target revision; refuses an unknown target or a missing reason."""
            from varai_deploy.config import check_services, load_environment
            from varai_deploy.ledger import ledger_for
            from varai_deploy.platforms import get_platform
            from varai_deploy.rollback import check_reason, resolve_targets

            check_reason(params["reason"])
            env = load_environment(params["environment"])
            services = list(check_services(params["services"], allowed=env.services))
            return resolve_targets(get_platform(env), ledger_for(env), services, params["target"])

        @task(**FAIL_FAST)
        def credentials(params=None) -> dict:
            from varai_deploy.config import load_environment
            from varai_deploy.validation import check_credentials

            return check_credentials(load_environment(params["environment"]))

        # The targets are read under the environment's lock, so nothing moves between the look and
        # the switch; from here to the end it is ours, and the teardown records how it ended
        # (a refused target too) and lets go.
        lock = LockEnvironmentOperator(task_id="lock", operation="rollback")
        chosen = targets()
        credentials() >> lock >> chosen

    with TaskGroup("restore", tooltip="Each target up and healthy, with no traffic yet") as restore:
        ready = RestoreRevisionOperator.partial(task_id="prepare_target", map_index_template=BY_TARGET).expand(
            target=chosen
        )
        healthy = HealthStreakSensor.partial(task_id="wait_healthy", map_index_template=BY_CANDIDATE).expand(
            candidate=ready.output
        )

        @task
        def all_targets_healthy(targets: list[dict]) -> list[dict]:
            candidates = [targets] if isinstance(targets, dict) else list(targets)
            return [t for t in candidates if not t.get("noop")]

        to_switch = all_targets_healthy(healthy.output)

    with TaskGroup("traffic", tooltip="Switch back and verify through the gateway") as traffic:
        switched = SwitchTrafficOperator.partial(task_id="switch_traffic", map_index_template=BY_CANDIDATE).expand(
            candidate=to_switch
        )
        verified = VerifyGatewayOperator.partial(task_id="verify_gateway", map_index_template=BY_SWITCH).expand(
            switch=switched.output
        )

    record = RecordRollbackOperator(task_id="record", switched=verified.output, trigger_rule="none_failed")
    finish = FinishOperationOperator(task_id="finish", operation="rollback")
    validate >> restore >> traffic >> record >> finish
    finish.as_teardown(setups=lock)


ai_discovery_rollback()
