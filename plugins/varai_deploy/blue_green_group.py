"""The blue-green path every change to the services takes, as tasks for a DAG's task group.

A release, the maintenance window's security updates and an emergency fix all put new revisions
live the same way: each candidate beside its live revision until it passed its health streak;
traffic only once every candidate did (never half-switched), each switch checked and verified
through the gateway; the analysis on real metrics; then the replaced revisions retired, or every
switched service put back on its last good revision.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import task, task_group

from varai_deploy.dag_params import BY_CANDIDATE, BY_SERVICE, BY_SWITCH
from varai_deploy.operators.analysis import ReleaseAnalysisOperator
from varai_deploy.operators.blue_green import (
    DeployCandidateOperator,
    RetireRevisionOperator,
    SwitchTrafficOperator,
    VerifyGatewayOperator,
)
from varai_deploy.operators.rollback import RollbackOnFailureOperator
from varai_deploy.sensors.health import HealthStreakSensor


def blue_green_tasks(group_id: str, targets: Any, services: Any = None, versions: Any = None):
    """Build the path inside the caller's task group ``group_id``; returns (analysis, rollback).

    ``targets``: a list of ``{"service", "version", "infra": {"images": {service: image}}}``, one per
    service to change. What the rollback undoes: ``services`` and ``versions`` (a release: the
    requested services and its one version), or by default the targets' own, each service its
    version (tasks ``changed_services`` and ``changed_versions``, which later tasks may read).
    """
    if services is None:

        @task
        def changed_services(chosen: list[dict]) -> list[str]:
            return [t["service"] for t in chosen]

        @task
        def changed_versions(chosen: list[dict]) -> dict[str, str]:
            return {t["service"]: t["version"] for t in chosen}

        services, versions = changed_services(targets), changed_versions(targets)

    @task_group(group_id="candidates", tooltip="Start each new revision beside the live one, no traffic")
    def candidates(service: str, version: str, infra: dict):
        candidate = DeployCandidateOperator(
            task_id="deploy_candidate", service=service, version=version, infra=infra, map_index_template=BY_SERVICE
        )
        return HealthStreakSensor(
            task_id="wait_healthy", candidate=candidate.output, map_index_template=BY_CANDIDATE
        ).output

    @task
    def all_candidates_healthy(healthy: list[dict]) -> list[dict]:
        """Traffic moves only once every candidate passed its streak: never half-switched."""
        # Airflow hands over a lone mapped result unwrapped (one service).
        candidates = [healthy] if isinstance(healthy, dict) else list(healthy)
        return [candidate for candidate in candidates if not candidate.get("noop")]

    @task_group(group_id="traffic", tooltip="Switch each service, verify through the gateway")
    def traffic(candidate: dict):
        switch = SwitchTrafficOperator(task_id="switch_traffic", candidate=candidate, map_index_template=BY_CANDIDATE)
        return VerifyGatewayOperator(
            task_id="verify_gateway", switch=switch.output, map_index_template=BY_SWITCH
        ).output

    healthy = candidates.expand_kwargs(targets)
    verified = traffic.expand(candidate=all_candidates_healthy(healthy))
    # The old revisions stay warm until the analysis has passed: a rollback is one atomic switch.
    analysis = ReleaseAnalysisOperator(task_id="analysis", switched=verified)

    @task
    def passed_switches(verdict: dict) -> list[dict]:
        """What to retire: every switch, once the analysis passed; nothing otherwise."""
        return verdict["switches"] if verdict["verdict"] == "pass" else []

    RetireRevisionOperator.partial(task_id="retire_previous", map_index_template=BY_SWITCH).expand(
        switch=passed_switches(analysis.output)
    )
    # Decides from the ledger and the platform what to undo, whichever tasks failed before it.
    rollback = RollbackOnFailureOperator(
        task_id="rollback_on_failure",
        trigger_rule="all_done",
        services=services,
        version=versions,
        analysis_task_id=f"{group_id}.analysis",
    )
    analysis >> rollback
    return analysis, rollback
