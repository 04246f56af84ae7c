"""One event model for everything an operation tells people, rendered alike for Slack and email.

An event says what happened (``kind``), how bad it is (``severity``, fixed per kind), where and what
(environment, version, services), where to click (the run, and the approval page when someone must
act), and, as they apply, the rollback's rule with its measured value and threshold, where traffic is
now, the failing task with its message, and who approved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CRITICAL, WARNING, INFO = "critical", "warning", "info"

#: kind -> (severity, headline template). Severity follows the guide: critical when a service is or was
#: down or erroring (a rollback), warning when a release stopped or waits for a person, info otherwise.
KINDS: dict[str, tuple[str, str]] = {
    "release_started": (INFO, "Release {version} to {environment} started"),
    "release_refused": (WARNING, "Release {version} to {environment} refused"),
    "approval_requested": (WARNING, "Release {version} to {environment} waits for approval"),
    "approved": (INFO, "Release {version} to {environment} approved"),
    "rejected": (WARNING, "Release {version} to {environment} rejected"),
    "release_succeeded": (INFO, "Release {version} to {environment} succeeded"),
    "release_failed": (WARNING, "Release {version} to {environment} failed"),
    "release_rolled_back": (CRITICAL, "Release {version} to {environment} rolled back"),
    "rollback_done": (WARNING, "Rollback of {environment} done"),
    "rollback_failed": (CRITICAL, "Rollback of {environment} failed"),
    # The maintenance window: announced, opened, a step left out, how it ended.
    "maintenance_announced": (INFO, "Maintenance of {environment} scheduled"),
    "maintenance_started": (INFO, "Maintenance of {environment} started"),
    "maintenance_step_skipped": (WARNING, "Maintenance of {environment}: a step did not fit the window"),
    "maintenance_skipped": (WARNING, "Maintenance of {environment} skipped"),
    "maintenance_succeeded": (INFO, "Maintenance of {environment} completed"),
    "maintenance_failed": (WARNING, "Maintenance of {environment} failed"),
    "maintenance_rolled_back": (CRITICAL, "Maintenance of {environment} rolled back"),
    # Emergency maintenance: every step, as it happens.
    "emergency_requested": (CRITICAL, "Emergency maintenance of {environment} waits for the CTO"),
    "emergency_update": (CRITICAL, "Emergency maintenance of {environment}"),
    "emergency_rejected": (WARNING, "Emergency maintenance of {environment} not approved"),
    "emergency_succeeded": (INFO, "Emergency maintenance of {environment} completed"),
    "emergency_rolled_back": (CRITICAL, "Emergency maintenance of {environment} rolled back"),
    # Backups: only a failure is told (a backup that cannot be proven by a restore is not a backup).
    "backup_failed": (CRITICAL, "Backup of {environment} failed"),
    # Disaster-recovery drills: the approval where one is required, how each ended against the objectives.
    "dr_drill_approval_requested": (WARNING, "DR drill in {environment} waits for approval"),
    "dr_drill_approved": (INFO, "DR drill in {environment} approved"),
    "dr_drill_rejected": (WARNING, "DR drill in {environment} not approved"),
    "dr_drill_passed": (INFO, "DR drill in {environment} met its objectives"),
    "dr_drill_missed": (WARNING, "DR drill in {environment} missed an objective"),
    "dr_drill_not_started": (WARNING, "DR drill in {environment} did not start"),
    "dr_drill_aborted": (CRITICAL, "DR drill in {environment} aborted"),
}
#: Kinds that are critical whatever their default: traffic is not on a revision known to be good.
UNSAFE_SEVERITY = CRITICAL


@dataclass(frozen=True)
class Event:
    kind: str
    environment: str
    #: One or two sentences: what happened and what it means for traffic.
    message: str
    version: str = ""
    services: tuple[str, ...] = ()
    run_id: str = ""
    dag_id: str = ""
    run_url: str = ""
    #: Who triggered the run (a user name, or the run type such as "scheduled").
    triggered_by: str = ""
    #: Where someone must act (the approval page), if anywhere.
    action_url: str = ""
    action_label: str = ""
    #: A rollback's rule, its measured value and threshold, as the analysis judged them.
    rule: str = ""
    value: str = ""
    threshold: str = ""
    #: service -> what serves it now, e.g. "v1.4.1 (blue)".
    traffic: dict[str, str] = field(default_factory=dict)
    failed_task: str = ""
    error: str = ""
    #: The approval: answer ("approved", "rejected", "timed out"), by whom, when.
    approval: dict[str, str] = field(default_factory=dict)
    #: Further label -> text lines (changes per service, the plan summary, evidence).
    details: dict[str, str] = field(default_factory=dict)
    #: Raise the severity (e.g. a failed release that left a service on an unjudged revision).
    escalate: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown notification kind {self.kind!r}: one of {', '.join(KINDS)}")

    @property
    def severity(self) -> str:
        return UNSAFE_SEVERITY if self.escalate else KINDS[self.kind][0]

    @property
    def title(self) -> str:
        return KINDS[self.kind][1].format(version=self.version or "(no version)", environment=self.environment)

    def facts(self) -> list[tuple[str, str]]:
        """The short label/value pairs every rendering shows, in a fixed order, empty ones left out."""
        facts = [
            ("Environment", self.environment),
            ("Version", self.version),
            ("Severity", self.severity),
            ("Services", ", ".join(self.services)),
            ("Triggered by", self.triggered_by),
        ]
        if self.rule:
            facts.append(("Rule", f"{self.rule}: {self.value} (threshold {self.threshold})"))
        if self.failed_task:
            facts.append(("Failed task", self.failed_task))
        if self.approval:
            facts.append(("Approval", describe_approval(self.approval)))
        return [(label, value) for label, value in facts if value]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(severity=self.severity, title=self.title, services=list(self.services))
        data.pop("escalate")
        return data


def describe_approval(approval: dict[str, str]) -> str:
    answer, by, at = approval.get("answer", ""), approval.get("by", ""), approval.get("at", "")
    if answer == "not required":
        return "not required here"
    who = f" by {by}" if by else ""
    when = f" at {at}" if at else ""
    return f"{answer}{who}{when}"
