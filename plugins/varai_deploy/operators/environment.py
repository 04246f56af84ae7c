"""One operation per environment at a time: take the environment's lock first, let go last.

The lock is a row in the ledger held by the run id, so it is shared by every worker and survives
them. :class:`LockEnvironmentOperator` is the DAG's setup task and :class:`FinishOperationOperator`
its teardown, which Airflow runs whatever the tasks between them did, and which does not decide
the run's state. A run that died without its teardown (marked failed, its DAG deleted) does not
block the environment forever: the next operation finds its holder no longer running and takes
over, which the audit records.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from varai_deploy.operators.base import EnvironmentOperator

#: Airflow's states of a run that may still act on the environment.
ACTIVE_RUN_STATES = ("queued", "running")
#: Task states that make an operation's outcome "failed".
FAILED_TASK_STATES = ("failed", "upstream_failed")
#: Every environment's release outcome is an event of the asset ``varai-release-<environment>``,
#: emitted through this alias (the environment is known only at run time).
RELEASE_OUTCOME_ALIAS = "varai-release-outcome"


def release_asset_name(environment: str) -> str:
    return f"varai-release-{environment}"


def _run_is_active(ti: Any, dag_id: str, run_id: str) -> bool:
    try:
        return ti.get_dagrun_state(dag_id=dag_id, run_id=run_id) in ACTIVE_RUN_STATES
    except Exception as exc:  # the Task SDK's AirflowRuntimeError; only "no such run" means not running
        if "not_found" in str(exc) or "not found" in str(exc).lower():
            return False
        raise


def _service_list(services: Any) -> list[str]:
    if not services:
        return []
    return [services] if isinstance(services, str) else list(services)


class LockEnvironmentOperator(EnvironmentOperator):
    """Takes the environment for this run; refused at once, naming the holder's run (and when it
    means to let go), while another release, rollback or maintenance of the same environment is
    under way. A release says it started (or was refused) through the environment's notifications.

    With ``wait_seconds`` (a maintenance window), a busy environment is asked again every
    ``poll_seconds`` in a deferred wait, and only then refused (``on_busy="skip"``: the run's steps
    are skipped, not failed). ``until`` (ISO time) is when this run means to let go.
    """

    template_fields = ("environment", "version", "services", "until", "wait_seconds")

    def __init__(
        self,
        *,
        operation: str,
        services: Any = None,
        version: str = "",
        until: Any = None,
        wait_seconds: Any = 0,
        poll_seconds: float = 10,
        on_busy: str = "fail",
        **kwargs,
    ):
        # A refusal fails for good (AirflowFailException); a try lost otherwise (a worker, the ledger
        # unreachable, a resumed deferral failed by the scheduler: apache/airflow#72716) is retried:
        # taking the lock is re-entrant for the same run.
        kwargs.setdefault("retries", 2)
        kwargs.setdefault("retry_delay", timedelta(seconds=1))
        super().__init__(**kwargs)
        self.operation = operation
        self.services = services
        self.version = version
        self.until = until
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds
        self.on_busy = on_busy

    def execute(self, context, event: Any = None, give_up_at: str | None = None) -> dict[str, str]:
        from datetime import UTC, datetime, timedelta

        from airflow.providers.standard.triggers.temporal import DateTimeTrigger
        from airflow.sdk.exceptions import AirflowSkipException

        from varai_deploy.ledger import Actor, LockHeldError
        from varai_deploy.notifiers import notify
        from varai_deploy.notifiers.runs import run_event

        actor = Actor.from_context(context)
        ti = context["ti"]
        services = _service_list(self.services)
        until = datetime.fromisoformat(self.until) if isinstance(self.until, str) and self.until else self.until
        try:
            holder = self.ledger.acquire(actor, self.operation, lambda d, r: _run_is_active(ti, d, r), until)
        except LockHeldError as exc:
            now = datetime.now(UTC)
            deadline = (
                datetime.fromisoformat(give_up_at)
                if give_up_at
                else now + timedelta(seconds=float(self.wait_seconds or 0))
            )
            if now < deadline:
                self.log.info("%s; asking again until %s", exc, deadline.isoformat())
                self.defer(
                    trigger=DateTimeTrigger(moment=min(now + timedelta(seconds=self.poll_seconds), deadline)),
                    method_name="execute",
                    kwargs={"give_up_at": deadline.isoformat()},
                )
            if self.operation == "release":
                event = run_event(
                    context, "release_refused", self.environment, str(exc), version=self.version, services=services
                )
                notify(self.env_config, event, context)
            message = str(exc) + (f" (waited {float(self.wait_seconds):g} s)" if self.wait_seconds else "")
            if self.on_busy == "skip":
                ti.xcom_push(key="refused", value=message)  # for the run's report: why nothing ran
                raise AirflowSkipException(message) from exc
            raise AirflowFailException(message) from exc
        self.log.info(
            "%s is ours (%s run %s) since %s%s",
            self.environment,
            self.operation,
            actor.run_id,
            holder.acquired_at,
            f", until {holder.until.isoformat()}" if holder.until else "",
        )
        if self.operation == "release":
            message = f"{actor.who or 'someone'} releases {self.version} to {', '.join(services)}."
            if self.env_config.requires_approval:
                message += " It waits for an approval after the Terraform plan."
            event = run_event(
                context, "release_started", self.environment, message, version=self.version, services=services
            )
            self._notify(context, event)
        return {
            "environment": self.environment,
            "run_id": actor.run_id,
            "since": holder.acquired_at.isoformat(),
            "until": holder.until.isoformat() if holder.until else None,
        }

    def _notify(self, context, event) -> None:
        from varai_deploy.ledger import Actor
        from varai_deploy.notifiers import notify

        record_notification(self.ledger, Actor.from_context(context), event, notify(self.env_config, event, context))


def record_notification(ledger: Any, actor: Any, event: Any, results: dict[str, str]) -> None:
    """What was told to whom, in the audit (delivery failures included); never fails the task."""
    try:
        ledger.record(
            actor,
            "notified",
            None,
            event.version or None,
            {"kind": event.kind, "severity": event.severity, "channels": results},
        )
    except Exception as exc:  # the notification itself is what matters here
        import logging

        logging.getLogger(__name__).warning("could not record the notification: %s", exc)


class FinishOperationOperator(EnvironmentOperator):
    """Teardown: records how the operation ended (its failed tasks, each service's verdict of the
    version) in the ledger's audit, lets go of the environment, and, for a release, emits the
    environment's release-outcome asset event."""

    template_fields = ("environment", "version", "services")

    def __init__(
        self,
        *,
        operation: str,
        services: Any = None,
        version: str = "",
        emit_outcome: bool = False,
        widgets_summary_task_id: str | None = None,
        post_deploy_group: str | None = None,
        **kwargs,
    ):
        if emit_outcome:
            from airflow.sdk import AssetAlias

            kwargs.setdefault("outlets", [AssetAlias(RELEASE_OUTCOME_ALIAS)])
        kwargs.setdefault("retries", 3)
        super().__init__(**kwargs)
        self.operation = operation
        self.services = services
        self.version = version
        self.emit_outcome = emit_outcome
        self.widgets_summary_task_id = widgets_summary_task_id
        #: The task group of Phase 5's checks (integration, security, performance, monitoring), whose results
        #: join the summary when they ran.
        self.post_deploy_group = post_deploy_group

    def execute(self, context) -> dict[str, Any]:
        from varai_deploy.ledger import Actor

        actor = Actor.from_context(context)
        ti = context["ti"]
        states = ti.get_task_states(dag_id=actor.dag_id, run_ids=[actor.run_id]).get(actor.run_id, {})
        # Mapped tasks come as "<task_id>_<map_index>".
        failed = sorted(task for task, state in states.items() if state in FAILED_TASK_STATES)
        verdicts = {}
        if self.version and self.services:
            for service in [self.services] if isinstance(self.services, str) else list(self.services):
                record = self.ledger.revision(service, self.version)
                verdicts[service] = record.verdict if record else "not deployed"
        outcome = {
            "environment": self.environment,
            "operation": self.operation,
            "outcome": "failed" if failed else "succeeded",
            "failed_tasks": failed,
            "run_id": actor.run_id,
            "who": actor.who,
        }
        if self.version:
            outcome.update(version=self.version, verdicts=verdicts)
        if self.emit_outcome:
            outcome.update(self._where_things_are(ti))
        self.ledger.record(actor, f"{self.operation}_finished", None, self.version or None, outcome)
        released = self.ledger.release(actor, outcome["outcome"])
        self.log.info(
            "%s %s; %s", self.operation, outcome["outcome"], "environment released" if released else "it held no lock"
        )
        self._tell(context, actor, outcome, {t: s for t, s in states.items() if s in FAILED_TASK_STATES})
        if self.emit_outcome:
            from airflow.sdk import Asset, AssetAlias

            asset = Asset(name=release_asset_name(self.environment), uri=f"varai://releases/{self.environment}")
            context["outlet_events"][AssetAlias(RELEASE_OUTCOME_ALIAS)].add(asset, extra=outcome)
        return outcome

    def _where_things_are(self, ti) -> dict[str, Any]:
        """What serves each service now (the platform's word) and where each widget channel ended
        (the summary task's), logged as the run's last lines and part of the outcome event."""
        from varai_deploy.notifiers.runs import traffic_now

        live = traffic_now(self.platform, _service_list(self.services) or list(self.env_config.services))
        widgets: dict[str, str] = {}
        summary = ti.xcom_pull(task_ids=self.widgets_summary_task_id) if self.widgets_summary_task_id else None
        for channel, row in (summary or {}).items():
            places = ", ".join(p["location"] for p in row.get("publications") or [] if p.get("location"))
            widgets[channel] = f"live: {places or 'published'}" if row.get("live") else f"FAILED: {row.get('error')}"
        lines = [f"  {service}: {where}" for service, where in live.items()]
        lines += [f"  widget {channel}: {where}" for channel, where in widgets.items()] or ["  widgets: none published"]
        checks = self._checks(ti)
        if "integration" in checks:
            found = checks["integration"]
            lines.append(
                f"  widget search through the gateway: {found['suggestions']} suggestions from {found['version']}"
                f" (as from {found['origin']})"
            )
        for service, row in (checks.get("performance") or {}).items():
            lines.append(
                f"  {service} on its new revision: {row['requests']} requests, errors {row['error_rate']:.2%}, "
                f"p95 {row['latency_p95_seconds']} s"
            )
        for name in ("security", "monitoring"):
            if name in checks:
                lines.append(
                    f"  {name}: " + ", ".join(f"{k} {v.split(':')[0].split(' (')[0]}" for k, v in checks[name].items())
                )
        self.log.info("Where things are now in %s:\n%s", self.environment, "\n".join(lines))
        return {"live": live, "widgets": widgets, "checks": checks}

    def _checks(self, ti) -> dict[str, Any]:
        if not self.post_deploy_group:
            return {}
        names = ("integration", "security", "performance", "monitoring")
        pulled = {name: ti.xcom_pull(task_ids=f"{self.post_deploy_group}.{name}") for name in names}
        return {name: value for name, value in pulled.items() if value}

    def _tell(self, context, actor, outcome: dict[str, Any], failed_states: dict[str, str]) -> None:
        """The outcome, to the people the environment routes it to; never fails the teardown."""
        from varai_deploy.notifiers import notify
        from varai_deploy.notifiers.outcome import release_outcome, rollback_outcome

        if self.operation not in ("release", "rollback"):
            return  # a maintenance window reports itself (varai_deploy.maintenance.report)
        services = _service_list(self.services) or list(self.env_config.services)
        try:
            if self.operation == "release":
                event = release_outcome(
                    context, self.env_config, self.ledger, self.platform, outcome, services, failed_states
                )
            else:
                event = rollback_outcome(context, self.env_config, self.ledger, self.platform, outcome, services)
        except Exception as exc:  # e.g. the ledger went away between the record and here
            self.log.warning("could not build the outcome notification: %s: %s", type(exc).__name__, exc)
            return
        if event is None:
            self.log.info("the approval already told how this release ended")
            return
        record_notification(self.ledger, actor, event, notify(self.env_config, event, context))
