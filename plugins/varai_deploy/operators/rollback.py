"""Putting traffic back: after a failed release, and on demand (``ai_discovery_rollback``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from varai_deploy.operators.analysis import as_list, describe_verdict
from varai_deploy.operators.base import EnvironmentOperator
from varai_deploy.probe_identity import probe_conn_id
from varai_deploy.triggers.health import HealthStreaksTrigger


class RollbackOnFailureOperator(EnvironmentOperator):
    """Runs once the backend phase is done, whatever happened in it, and decides from the ledger and
    the platform (never from which tasks left XCom):

    - a service this release put live without a passed verdict goes back to its last known good
      revision: restarted if it stopped, health-checked (deferred), switched (checked), verified
      through the gateway, recorded; the version it leaves is marked rolled back;
    - a candidate of this run that never took traffic is discarded and marked failed;
    - a version with nothing to roll back to stays live, marked failed.

    Each service is handled on its own: one failing does not stop the others. The run then fails
    naming every service and where it ended. Skips only when every service passed.
    """

    template_fields = ("environment", "version", "services")

    def __init__(self, *, services: Any, analysis_task_id: str, version: Any = "{{ params.version }}", **kwargs):
        kwargs.setdefault("retries", 2)
        super().__init__(**kwargs)
        self.services = services
        self.analysis_task_id = analysis_task_id
        #: The release's version, or {service: version} where each service got its own (security updates).
        self.version = version

    def _version(self, service: str) -> str:
        return self.version[service] if isinstance(self.version, dict) else self.version

    def _described(self) -> str:
        if isinstance(self.version, dict):
            return ", ".join(f"{s} {v}" for s, v in sorted(self.version.items()))
        return self.version

    def _target(self, service: str) -> dict | None:
        """The most recently served revision with a passed verdict that the platform can still run."""
        known = {(r["version"], r["name"]): r for r in self.platform.known_revisions(service)}
        for record in self.ledger.good_revisions(service):
            if record.version != self._version(service) and (record.version, record.name) in known:
                return dict(known[(record.version, record.name)])
        return None

    def execute(self, context) -> None:
        from varai_deploy.ledger import FAILED, PASSED, PENDING, ROLLED_BACK, Actor

        actor = Actor.from_context(context)
        verdict = context["ti"].xcom_pull(task_ids=self.analysis_task_id)
        failed_verdict = verdict and verdict.get("verdict") != "pass"
        reason = describe_verdict(verdict) if failed_verdict else "the release stopped before its analysis passed"
        outcome: dict[str, str] = {}
        restore: dict[str, dict] = {}
        for service in as_list(self.services) if not isinstance(self.services, str) else [self.services]:
            version = self._version(service)
            live = self.platform.current_revision(service)
            record = self.ledger.revision(service, version)
            if live and live["version"] == version:
                if record and record.verdict == PASSED:
                    continue
                if not failed_verdict and record and record.verdict == FAILED and record.reason:
                    reason = record.reason  # judged after its analysis passed, e.g. by Phase 4
                target = self._target(service)
                if target is None:
                    self.ledger.record_verdict(actor, service, version, FAILED, f"{reason}; nothing to roll back to")
                    outcome[service] = f"{version} stays live: nothing to roll back to"
                    continue
                try:
                    ready = self.platform.restore(service, target)
                except Exception as exc:  # carry on with the other services
                    outcome[service] = f"{version} stays live: could not restart {target['version']}: {exc}"
                    continue
                restore[service] = {"from": dict(live), "to": dict(ready)}
            elif record and record.run_id == actor.run_id and record.verdict == PENDING:
                if any(
                    (r["version"], r["name"]) == (record.version, record.name)
                    for r in self.platform.known_revisions(service)
                ):
                    self.platform.discard(service, record.revision())
                self.ledger.record_verdict(
                    actor, service, version, FAILED, "discarded: the release stopped before it took traffic"
                )
                outcome[service] = f"candidate discarded, {live['version'] if live else 'nothing'} keeps serving"
            elif record and record.run_id == actor.run_id and record.verdict in (FAILED, ROLLED_BACK):
                # Decided by an earlier try of this task, or by the health gate: say so, move nothing.
                serving = f"{live['version']} ({live['name']})" if live else "nothing"
                outcome[service] = (
                    f"{service} -> {serving}"
                    if record.verdict == ROLLED_BACK
                    else f"{version} failed ({record.reason}); {serving} serving"
                )
        if not restore:
            return self._finish(context, outcome, reason, verdict)
        policy = self.env_config.release
        self.log.warning("Rolling back %s: %s", ", ".join(sorted(restore)), reason)
        self.defer(
            trigger=HealthStreaksTrigger(
                urls={s: step["to"]["url"].rstrip("/") + "/health" for s, step in restore.items()},
                streak=policy.health_streak,
                interval=policy.health_interval_seconds,
                deadline=time.time() + policy.health_timeout_seconds,
                carry={"restore": restore, "outcome": outcome, "reason": reason, "verdict": verdict},
                gcp_conn_id=probe_conn_id(self.env_config),
                audiences={s: step["to"]["audience"] for s, step in restore.items() if step["to"].get("audience")},
            ),
            method_name="resume",
            timeout=timedelta(seconds=policy.health_timeout_seconds + 60),
        )

    def resume(self, context, event: dict) -> None:
        """Once the restored revisions answered (or not): switch back each healthy one, checked."""
        from varai_deploy.hooks.gateway import GatewayHook
        from varai_deploy.ledger import FAILED, ROLLED_BACK, Actor
        from varai_deploy.services import SERVICES

        carry = event["carry"]
        restore, outcome, reason, verdict = (carry[k] for k in ("restore", "outcome", "reason", "verdict"))

        actor = Actor.from_context(context)
        gateway = GatewayHook(self.env_config.gateway_conn_id)
        for service, step in restore.items():
            target, bad = step["to"], step["from"]
            version = self._version(service)
            health = event["results"].get(service) or {}
            if health.get("status") != "healthy":
                self.ledger.record_verdict(actor, service, version, FAILED, reason)
                outcome[service] = (
                    f"{version} stays live: {target['version']} did not come back healthy ({health.get('last')})"
                )
                continue
            try:
                self.platform.switch_traffic(service, target, expected=bad)
                self.ledger.record_restored(actor, service, target, version, ROLLED_BACK, reason)
            except Exception as exc:  # carry on with the other services
                outcome[service] = f"{version} stays live: switching back failed: {exc}"
                continue
            self.platform.discard(service, bad)  # never a rollback target again
            answer = gateway.probe(SERVICES[service].health_path)
            checked = "" if answer.ok and answer.version == target["version"] else f" (gateway: {answer.describe()})"
            outcome[service] = f"{service} -> {target['version']} ({target['name']}){checked}"
        self._finish(context, outcome, reason, verdict)

    def _finish(self, context, outcome: dict[str, str], reason: str, verdict: Any) -> None:
        from varai_deploy.ledger import Actor

        if not outcome:
            if not self.services:
                raise AirflowSkipException("no service to roll back")
            raise AirflowSkipException("every service of this release passed: nothing to roll back")
        lines = [text if text.startswith(f"{s} -> ") else f"{s}: {text}" for s, text in sorted(outcome.items())]
        payload = {"version": self._described(), "reason": reason, "verdict": verdict, "services": outcome}
        context["ti"].xcom_push(key="rollback", value=payload)
        version = self.version if isinstance(self.version, str) else None
        self.ledger.record(Actor.from_context(context), "release_rolled_back", None, version, payload)
        self.log.warning("After %s: %s", reason, "; ".join(lines))
        raise AirflowFailException(
            f"release {self._described()} rolled back ({reason}); where each service is now: " + "; ".join(lines)
        )


class RestoreRevisionOperator(EnvironmentOperator):
    """Makes a rollback target ready to take traffic again (a retired revision is started, with no
    traffic); the health sensor that follows refuses it if it does not come up healthy."""

    template_fields = ("environment", "target")

    def __init__(self, *, target: Any, **kwargs):
        super().__init__(**kwargs)
        self.target = target

    def execute(self, context) -> dict:
        if self.target.get("noop"):
            self.log.info("%s already serves %s", self.target["service"], self.target["version"])
            return self.target
        revision = self.platform.restore(self.target["service"], self.target)
        self.log.info("%s %s ready at %s with no traffic", revision["service"], revision["version"], revision["url"])
        return dict(revision)


class RecordRollbackOperator(EnvironmentOperator):
    """Records in the ledger who rolled back, when, why and what now serves. The revisions rolled
    away from are discarded and marked rolled back, so a later "previous" never points back at them.
    """

    template_fields = ("environment", "reason", "switched")

    def __init__(self, *, reason: str = "{{ params.reason }}", switched: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.reason = reason
        self.switched = switched

    def execute(self, context) -> dict:
        from varai_deploy.ledger import ROLLED_BACK, Actor

        actor = Actor.from_context(context)
        restored = []
        for switch in as_list(self.switched):
            service, live, away = switch["service"], switch["live"], switch.get("previous")
            if away:
                self.platform.discard(service, away)
            self.ledger.record_restored(actor, service, live, away and away["version"], ROLLED_BACK, self.reason)
            restored.append(f"{service} -> {live['version']} ({live['name']})")
        record = {
            "environment": self.environment,
            "who": actor.who,
            "when": datetime.now(UTC).isoformat(),
            "why": self.reason,
            "run_id": actor.run_id,
            "restored": restored,
        }
        self.ledger.record(actor, "rollback", None, None, record)
        self.log.info("Rollback recorded in the ledger: %s", json.dumps(record))
        return record
