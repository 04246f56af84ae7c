"""A human approves a release where the environment says so (production always), after the Terraform
plan and before anything changes.

Built on the standard provider's ``ApprovalOperator`` (Airflow's Human-in-the-loop): the task parks in
``awaiting_input`` and holds no worker slot until someone answers in the UI's Required Actions or
through ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/approval/-1/hitlDetails``.
Only the environment's ``approval.approvers`` are assigned, minus whoever triggered the run (the
API refuses anyone else with 403); no answer within ``approval.timeout_minutes`` rejects. The
request, the answer, who gave it and when go into the ledger and the notifications. A rejection
fails the task, so nothing after it runs and the release ends failed with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

from varai_deploy.operators.base import EnvironmentOperator

REQUESTED, ANSWERED = "approval_requested", "approval_answered"


def _listed(value: Any) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


class ReleaseApprovalOperator(EnvironmentOperator, ApprovalOperator):
    """Asks the environment's approvers to approve this release; passes at once where none is required.

    Subclasses ask others about other things (:class:`EmergencyApprovalOperator`) by overriding
    who may answer, by when, and the words.
    """

    template_fields = ("environment", "version", "services", "plan", "subject")
    #: The notification kinds of the request, the approval and the rejection.
    event_kinds = ("approval_requested", "approved", "rejected")
    #: May whoever triggered the run approve it? Never for a release: four eyes.
    self_approval = False

    def __init__(
        self,
        *,
        plan: Any = None,
        services: Any = None,
        version: str = "{{ params.version }}",
        params: Any = None,
        subject: str = "Release {{ params.version }} to {{ params.environment }}",
        **kwargs,
    ):
        from airflow.sdk.definitions.param import ParamsDict

        # A rejection or a timeout fails for good (AirflowFailException). The one retry is for Airflow 3.3
        # failing a task it resumed within a second or so of parking it (a stale executor event, as
        # apache/airflow#72716 for deferrals): the retry keeps the answer the ledger recorded (approved
        # or not, told nobody again), and asks again only when the failed try had none.
        kwargs.setdefault("retries", 1)
        # The DAG's params come in merged by Airflow; the approval form adds its own field.
        form = ParamsDict(params or {})
        form["comment"] = Param(
            "",
            type="string",
            maxLength=500,
            title="Comment",
            description="Why (optional; goes to the ledger)",
            source="task",
        )
        super().__init__(subject=subject, params=form, **kwargs)
        self.plan = plan
        self.services = services
        self.version = version

    # -- what subclasses change ------------------------------------------------------------------
    def _required(self) -> bool:
        return self.env_config.requires_approval

    def _approver_names(self) -> tuple[str, ...]:
        return self.env_config.approval.approvers

    def _timeout_minutes(self) -> float:
        return self.env_config.approval.timeout_minutes

    def _what(self) -> str:
        """What is approved, as the messages name it."""
        return f"release {self.version}"

    def _request_message(self, actor, approvers: list[str], deadline: datetime) -> str:
        return (
            f"{actor.who or 'someone'} asks to release {self.version}. "
            f"Approvers: {', '.join(approvers)}. No answer by {deadline:%Y-%m-%d %H:%M} UTC rejects it."
        )

    def _approved_message(self, by: str, comment: str) -> str:
        return f"{by} approved {self.version}" + (f": {comment}" if comment else ".") + " The release goes on."

    # -- asking ----------------------------------------------------------------------------------
    def execute(self, context) -> Any:
        from varai_deploy.ledger import Actor
        from varai_deploy.notifiers.runs import airflow_url, run_event, traffic_now

        env = self.env_config
        if not self._required():
            self.log.info("%s releases without an approval (requires_approval is false)", env.name)
            return {"approved": True, "required": False}
        actor = Actor.from_context(context)
        self.ledger.check_holds(actor)
        if earlier := self._answered_before(actor):
            return self._settled(earlier)
        approvers = self._approvers(context)
        services = _listed(self.services)
        deadline = datetime.now(UTC) + timedelta(minutes=self._timeout_minutes())
        traffic = traffic_now(self.platform, services)
        self.assigned_users = [{"id": name, "name": name} for name in approvers]
        self.response_timeout = timedelta(minutes=self._timeout_minutes())
        self.body = self._body(actor, services, traffic, approvers, deadline)
        link = self.generate_link_to_ui_from_context(context=context, base_url=airflow_url())
        tries = context["ti"].try_number or 1
        again = f"Asked again (try {tries}): Airflow lost the earlier request or its answer. " if tries > 1 else ""
        self.ledger.record(
            actor,
            REQUESTED,
            None,
            self.version,
            {"approvers": approvers, "deadline": deadline.isoformat(), "link": link},
        )
        event = run_event(
            context,
            self.event_kinds[0],
            env.name,
            again + self._request_message(actor, approvers, deadline),
            version=self.version,
            services=services,
            traffic=traffic,
            action_url=link,
            action_label="Approve or reject",
            details=self._details(services, traffic),
        )
        self._notify(context, event)
        return super().execute(context)

    def _answered_before(self, actor) -> dict[str, Any] | None:
        """This run's answer for this version, if an earlier try of this task got one (the ledger's)."""
        answered = [
            entry["detail"]
            for entry in self.ledger.run_audit(actor.run_id, (ANSWERED,))
            if entry["version"] == self.version
        ]
        return answered[-1] if answered else None

    def _settled(self, earlier: dict[str, Any]) -> dict[str, Any]:
        """A retry (Airflow 3.3 can fail a task it resumed, see __init__) never asks again, nor tells
        anyone again: the answer the ledger holds stands, approved or not."""
        answer, by, at = earlier.get("answer"), earlier.get("by") or "", earlier.get("at") or ""
        if answer != "approved":
            raise AirflowFailException(
                f"{self._what()} {answer}{f' by {by}' if by else ''} at {at}: {earlier.get('why')} "
                "(answered in an earlier try of this task; not asked again)"
            )
        self.log.info("Approved by %s at %s in an earlier try of this task; not asked again", by, at)
        return {"approved": True, "required": True, "by": by, "at": at, "comment": earlier.get("why") or ""}

    def _approvers(self, context) -> list[str]:
        trigger_user = getattr(context["dag_run"], "triggering_user_name", None)
        approvers = [name for name in self._approver_names() if self.self_approval or name != trigger_user]
        if not approvers:
            raise AirflowFailException(
                f"nobody may approve this {self._what()}: the approvers of {self.environment} are only "
                f"{trigger_user or 'nobody'}, who triggered it; someone else must approve"
            )
        return approvers

    def _changes(self, services: list[str], traffic: dict[str, str]) -> str:
        return "\n".join(f"{s}: {traffic.get(s, '?')} -> {self.version}" for s in services)

    def _plan_summary(self) -> str:
        plan = self.plan if isinstance(self.plan, dict) else {}
        return str(plan.get("summary") or "no Terraform plan was handed over")

    def _evidence(self) -> str:
        """What the release rests on: the verdicts ``approval.evidence_from``'s ledger has for this version."""
        source = self.env_config.approval.evidence_from
        if not source:
            return ""
        from varai_deploy.config import ConfigError, load_environment
        from varai_deploy.ledger import PASSED, LedgerError, ledger_for

        try:
            ledger = ledger_for(load_environment(source))
            records = {s: ledger.revision(s, self.version) for s in _listed(self.services)}
        except (ConfigError, LedgerError) as exc:
            return f"NO EVIDENCE: {source}'s ledger cannot be read ({type(exc).__name__}: {exc})"
        lines = [
            f"{s}: passed on {source} in run {r.run_id}" + (f", image {r.digest}" if r.digest else "")
            if r and r.verdict == PASSED
            else f"{s}: NOT passed on {source} ({r.verdict if r else 'never deployed there'})"
            for s, r in records.items()
        ]
        return "\n".join(lines)

    def _details(self, services: list[str], traffic: dict[str, str]) -> dict[str, str]:
        details = {"Changes per service": self._changes(services, traffic), "Terraform plan": self._plan_summary()}
        evidence = self._evidence()
        if evidence:
            details[f"Evidence from {self.env_config.approval.evidence_from}"] = evidence
        return details

    def _opening(self, actor) -> str:
        """The request's first paragraph: who asks for what."""
        return (
            f"**{actor.who or 'Someone'}** asks to release **{self.version}** to **{self.environment}** "
            f"(run `{actor.run_id}`)."
        )

    def _closing(self, approvers: list[str], deadline: datetime) -> str:
        """The request's last paragraph: who may answer, by when, and what waits for it."""
        return (
            f"May answer: {', '.join(approvers)} (never whoever triggered the run). "
            f"No answer by {deadline:%Y-%m-%d %H:%M} UTC is a rejection; nothing changes before an approval."
        )

    def _body(self, actor, services, traffic, approvers, deadline) -> str:
        sections = [self._opening(actor)]
        for label, text in self._details(services, traffic).items():
            sections.append(f"**{label}**\n\n```\n{text}\n```")
        sections.append(self._closing(approvers, deadline))
        return "\n\n".join(sections)

    # -- the answer ------------------------------------------------------------------------------
    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        from varai_deploy.ledger import Actor

        actor = Actor.from_context(context)
        minutes = self._timeout_minutes()
        if "error" in event:
            answer = "timed out" if event.get("error_type") == "timeout" else "failed"
            why = f"no approver answered within {minutes:g} minutes" if answer == "timed out" else event["error"]
            return self._reject(context, actor, answer, "", datetime.now(UTC).isoformat(), why)
        result = HITLOperator.execute_complete(self, context, event)  # its checks of the answer
        by = (result.get("responded_by_user") or {}).get("id") or ""
        at = result["responded_at"]
        at = at.isoformat() if hasattr(at, "isoformat") else str(at)
        comment = str((result.get("params_input") or {}).get("comment") or "")
        chosen = result["chosen_options"][0]
        trigger_user = getattr(context["dag_run"], "triggering_user_name", None)
        if by not in self._approver_names() or (by == trigger_user and not self.self_approval):
            # The API only lets assigned users answer; an auth manager that lets everyone (all-admins) does not.
            return self._reject(context, actor, "rejected", by, at, f"{by or 'nobody'} may not approve this")
        if chosen != self.APPROVE:
            return self._reject(context, actor, "rejected", by, at, comment or "no reason given")
        self._record(actor, "approved", by, at, comment)
        from varai_deploy.notifiers.runs import run_event

        approval = {"answer": "approved", "by": by, "at": at}
        message = self._approved_message(by, comment)
        event = run_event(
            context,
            self.event_kinds[1],
            self.environment,
            message,
            version=self.version,
            services=_listed(self.services),
            approval=approval,
        )
        self._notify(context, event)
        return {"approved": True, "required": True, "by": by, "at": at, "comment": comment}

    def _reject(self, context, actor, answer: str, by: str, at: str, why: str):
        from varai_deploy.notifiers.runs import run_event

        self._record(actor, answer, by, at, why)
        approval = {"answer": answer, "by": by, "at": at}
        what = self._what()
        event = run_event(
            context,
            self.event_kinds[2],
            self.environment,
            f"{what[0].upper()}{what[1:]} is {answer}{f' by {by}' if by else ''}: {why}. Nothing was changed.",
            version=self.version,
            services=_listed(self.services),
            approval=approval,
        )
        self._notify(context, event)
        raise AirflowFailException(f"{what} {answer}{f' by {by}' if by else ''} at {at}: {why}")

    def _record(self, actor, answer: str, by: str, at: str, comment: str) -> None:
        self.ledger.record(actor, ANSWERED, None, self.version, {"answer": answer, "by": by, "at": at, "why": comment})

    def _notify(self, context, event) -> None:
        from varai_deploy.ledger import Actor
        from varai_deploy.notifiers import notify
        from varai_deploy.operators.environment import record_notification

        record_notification(self.ledger, Actor.from_context(context), event, notify(self.env_config, event, context))
