"""What the operations DAGs share: their defaults and the params every form asks for.

Params are JSON-schema validated when a run is created (UI form, REST API, CLI), so bad input
never starts a run; the same rules are checked again at run time by ``varai_deploy.config``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Param

from varai_deploy.config import ENVIRONMENTS
from varai_deploy.services import SERVICE_NAMES

#: Keyword arguments of every operations DAG: triggered on demand and unpaused (paused-at-creation
#: would leave CI's API-triggered runs queued). Runs for different environments go side by side;
#: the environment's lock in the ledger keeps two operations off the same one.
OPERATIONS_DAG = {
    "schedule": None,
    "start_date": datetime(2025, 1, 1),
    "catchup": False,
    "is_paused_upon_creation": False,
}


def default_args(retry_delay_seconds: float = 10) -> dict:
    """Every task retries once, and a task that fails for good writes its error to the ledger (for
    the outcome notification)."""
    from varai_deploy.callbacks import record_task_failure

    return {
        "owner": "platform",
        "retries": 1,
        "retry_delay": timedelta(seconds=retry_delay_seconds),
        "on_failure_callback": record_task_failure,
    }


#: Mapped tasks are labelled by the service they handle (the grid and logs show "analytics", not 3).
BY_SERVICE = "{{ task.service }}"
BY_CANDIDATE = "{{ task.candidate['service'] }}"
BY_SWITCH = "{{ task.switch['service'] }}"
BY_TARGET = "{{ task.target['service'] }}"

#: Checks that must fail at once rather than be retried.
FAIL_FAST = {"retries": 0}


def dry_run_param() -> Param:
    return Param(
        False,
        type="boolean",
        title="Dry run",
        description="Validate and plan, then report per service and marketplace what would change; change nothing",
    )


def environment_param(description: str, default: str = "sandbox") -> Param:
    return Param(default, type="string", enum=list(ENVIRONMENTS), title="Environment", description=description)


#: The environment this Airflow's schedules (maintenance windows) operate; forms may pick another.
#: ``none``: nothing is scheduled (the DAGs run on demand only), e.g. an Airflow that only tests.
SCHEDULED_ENVIRONMENT_ENV = "VARAI_SCHEDULED_ENVIRONMENT"
NO_SCHEDULE = "none"


def scheduled_environment() -> str | None:
    """``VARAI_SCHEDULED_ENVIRONMENT`` (default: sandbox), whose config the schedules are drawn from;
    None for ``none``."""
    from varai_deploy.config import check_environment

    name = os.environ.get(SCHEDULED_ENVIRONMENT_ENV) or "sandbox"
    return None if name == NO_SCHEDULE else check_environment(name)


def scheduled_dag(announce: bool = False) -> dict:
    """Keyword arguments of a DAG scheduled by the maintenance window of the scheduled environment."""
    from varai_deploy.config import load_environment
    from varai_deploy.timetables import MaintenanceTimetable

    name = scheduled_environment()
    if name is None:
        return {**OPERATIONS_DAG, "max_active_runs": 1}
    env = load_environment(name)
    if env.maintenance is None:
        raise ValueError(f"{env.name} has no maintenance section: the maintenance DAGs have nothing to schedule")
    return {
        **OPERATIONS_DAG,
        "schedule": MaintenanceTimetable.from_policy(env.maintenance, announce=announce),
        # One window at a time, and no window announced or run twice.
        "max_active_runs": 1,
    }


def backup_schedule() -> dict:
    """Keyword arguments of ``database_backup``: every ``backups.every_minutes`` of the scheduled
    environment (so the RPO holds), one run at a time."""
    from varai_deploy.config import load_environment

    name = scheduled_environment()
    policy = load_environment(name).backups if name else None
    schedule = timedelta(minutes=policy.every_minutes) if policy else None
    return {**OPERATIONS_DAG, "schedule": schedule, "max_active_runs": 1}


def drill_schedule() -> dict:
    """Keyword arguments of ``dr_drill``: ``dr_drills.schedule`` (cron, UTC) of the scheduled environment.

    Only at its times: without a start date, a new Airflow waits for the next one instead of running
    the latest past one at once (catchup off runs that one: a drill breaking things unannounced on
    someone's first ``make airflow``)."""
    from airflow.sdk import CronTriggerTimetable

    from varai_deploy.config import load_environment

    name = scheduled_environment()
    policy = load_environment(name).dr_drills if name else None
    if policy is None or policy.schedule is None:
        return {**OPERATIONS_DAG, "max_active_runs": 1}
    timetable = CronTriggerTimetable(policy.schedule, timezone="UTC", run_immediately=False)
    return {**OPERATIONS_DAG, "start_date": None, "schedule": timetable, "max_active_runs": 1}


#: How the form names each marketplace (the values stay the channel names).
MARKETPLACE_LABELS = {
    "html": "HTML snippet (CDN and npm)",
    "shopify": "Shopify app",
    "woocommerce": "WooCommerce plugin (WordPress.org)",
    "magento": "Magento 2 module (Composer, Marketplace)",
}


def services_param(description: str) -> Param:
    # ``examples`` makes the form a multi-select of the allowed values (JSON schema has no enum of
    # arrays); ``items.enum`` is what the REST API and the CLI are held to.
    return Param(
        list(SERVICE_NAMES),
        type="array",
        items={"type": "string", "enum": list(SERVICE_NAMES)},
        examples=list(SERVICE_NAMES),
        minItems=1,
        uniqueItems=True,
        title="Services",
        description=description,
    )


def marketplaces_param(description: str) -> Param:
    """The widget channels; an empty selection (which the form sends as null) or ``[]`` means a
    backend-only release. Left out of a request, it is all four."""
    from varai_deploy.widgets.channels import CHANNELS

    return Param(
        list(CHANNELS),
        type=["array", "null"],
        items={"type": "string", "enum": list(CHANNELS)},
        examples=list(CHANNELS),
        values_display={c: MARKETPLACE_LABELS[c] for c in CHANNELS},
        uniqueItems=True,
        title="Marketplaces",
        description=description,
    )
