"""A drill breaks things for real: where ``dr_drills.requires_approval`` says so (production always),
one of ``dr_drills.approvers`` approves it before anything is broken, as Airflow's Human-in-the-loop.

The same parked, slot-free wait as a release's approval: only the assigned approvers may answer
(never whoever triggered the drill), no answer within ``approval_timeout_minutes`` rejects, and the
request and answer go to the ledger and the notifiers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from varai_deploy.operators.approval import ReleaseApprovalOperator


class DrillApprovalOperator(ReleaseApprovalOperator):
    template_fields = (*ReleaseApprovalOperator.template_fields, "scenario")
    event_kinds = ("dr_drill_approval_requested", "dr_drill_approved", "dr_drill_rejected")

    def __init__(self, *, scenario: str = "{{ params.scenario }}", **kwargs: Any):
        kwargs.setdefault("subject", "DR drill {{ params.scenario }} in {{ params.environment }}")
        super().__init__(version=None, **kwargs)
        self.scenario = scenario

    def _policy(self):
        return self.env_config.dr_drills

    def _required(self) -> bool:
        return self._policy().requires_approval

    def _approver_names(self) -> tuple[str, ...]:
        return self._policy().approvers

    def _timeout_minutes(self) -> float:
        return self._policy().approval_timeout_minutes

    def _what(self) -> str:
        return f"the {self.scenario} drill"

    def _breaks(self) -> str:
        policy = self._policy()
        if self.scenario == "service_failure":
            return f"kills the live process of {policy.service}; the platform must fail over and replace it"
        if self.scenario == "region_failure":
            return (
                "kills every service process in the region users are served from and keeps it down; users get "
                "errors until the front end is failed over to the standby region"
            )
        if self.scenario == "complete_outage":
            return (
                f"removes every service, drops {policy.database} and deletes the Terraform state, then recreates "
                "them from Terraform, the newest verified backup and the ledger's last known good revisions"
            )
        return (
            f"drops {', '.join(policy.tables)} in {policy.database} and restores the newest verified backup; "
            "what was written since that backup is lost"
        )

    def _request_message(self, actor, approvers: list[str], deadline: datetime) -> str:
        return (
            f"{actor.who or 'someone'} asks to run the {self.scenario} drill in {self.environment}: it "
            f"{self._breaks()}. Approvers: {', '.join(approvers)}. "
            f"No answer by {deadline:%Y-%m-%d %H:%M} UTC rejects it."
        )

    def _approved_message(self, by: str, comment: str) -> str:
        return f"{by} approved the {self.scenario} drill" + (f": {comment}" if comment else ".") + " It starts now."

    def _details(self, services: list[str], traffic: dict[str, str]) -> dict[str, str]:
        policy = self._policy()
        return {
            "What it breaks": self._breaks(),
            "Limit": f"back within {policy.limit_minutes:g} min of the break, else it aborts and undoes the break",
        }

    def _opening(self, actor) -> str:
        return (
            f"**{actor.who or 'Someone'}** asks to run the **{self.scenario}** drill in **{self.environment}** "
            f"(run `{actor.run_id}`)."
        )

    def _closing(self, approvers: list[str], deadline: datetime) -> str:
        return (
            f"May answer: {', '.join(approvers)} (never whoever triggered the drill). No answer by "
            f"{deadline:%Y-%m-%d %H:%M} UTC is a rejection; nothing is broken before an approval."
        )
