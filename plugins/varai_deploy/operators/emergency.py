"""Emergency maintenance waits for the CTO: the guide's "CTO approval" as Airflow's Human-in-the-loop.

Only ``maintenance.emergency_approvers`` are assigned (the API refuses anyone else with 403, and an
answer from anyone else is a rejection); no answer within ``emergency_timeout_minutes`` rejects.
Unlike a release, the CTO may approve the fix they asked for: the approval is about authority.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from varai_deploy.operators.approval import ReleaseApprovalOperator


class EmergencyApprovalOperator(ReleaseApprovalOperator):
    template_fields = (*ReleaseApprovalOperator.template_fields, "reason", "severity", "cve")
    event_kinds = ("emergency_requested", "emergency_update", "emergency_rejected")
    self_approval = True

    def __init__(
        self,
        *,
        reason: str = "{{ params.reason }}",
        severity: str = "{{ params.severity }}",
        cve: str = "{{ params.cve or '' }}",
        **kwargs: Any,
    ):
        kwargs.setdefault("subject", "Emergency maintenance of {{ params.environment }} ({{ params.severity }})")
        super().__init__(version=None, **kwargs)
        self.reason, self.severity, self.cve = reason, severity, cve

    def _policy(self):
        from varai_deploy.maintenance.window_steps import policy_of

        return policy_of(self.env_config)

    def _required(self) -> bool:
        return True

    def _approver_names(self) -> tuple[str, ...]:
        return self._policy().emergency_approvers

    def _timeout_minutes(self) -> float:
        return self._policy().emergency_timeout_minutes

    def _what(self) -> str:
        return "emergency maintenance"

    def _why(self) -> str:
        return f"{self.severity}{f', {self.cve}' if self.cve else ''}: {self.reason}"

    def _request_message(self, actor, approvers: list[str], deadline: datetime) -> str:
        return (
            f"{actor.who or 'someone'} asks for emergency maintenance ({self._why()}). "
            f"Only {', '.join(approvers)} (CTO) may approve; no answer by {deadline:%Y-%m-%d %H:%M} UTC rejects it."
        )

    def _approved_message(self, by: str, comment: str) -> str:
        return f"{by} approved the emergency maintenance" + (f": {comment}" if comment else ".") + " The fix goes out."

    def _details(self, services: list[str], traffic: dict[str, str]) -> dict[str, str]:
        changes = "\n".join(f"{s}: {traffic.get(s, '?')} -> the same release rebuilt with the fix" for s in services)
        return {"Why": self._why(), "Changes per service": changes}

    def _opening(self, actor) -> str:
        return f"**{actor.who or 'Someone'}** asks for **emergency maintenance** of **{self.environment}**."

    def _closing(self, approvers: list[str], deadline: datetime) -> str:
        return (
            f"May answer: {', '.join(approvers)} (CTO). No answer by {deadline:%Y-%m-%d %H:%M} UTC is a "
            "rejection; nothing changes before an approval. After it, each service gets the fix through the "
            "blue-green path, and any that fails its checks is rolled back at once."
        )
