"""Putting traffic back: after a failed release, and on demand (``ai_discovery_rollback``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from varai_deploy.operators.analysis import as_list, describe_verdict
from varai_deploy.operators.base import EnvironmentOperator


class RollbackOnFailureOperator(EnvironmentOperator):
    """Runs when the backend phase is done; if anything after a switch failed, every switched service
    goes back to the revision it replaced (still warm: retirement waits for the analysis), its health
    is verified through the gateway, and the run fails saying why. Skips when the analysis passed.
    """

    template_fields = ("environment", "version")

    def __init__(self, *, analysis_task_id: str, switch_task_id: str, version: str = "{{ params.version }}", **kwargs):
        kwargs.setdefault("retries", 2)
        super().__init__(**kwargs)
        self.analysis_task_id = analysis_task_id
        self.switch_task_id = switch_task_id
        self.version = version

    def execute(self, context) -> None:
        from varai_deploy.hooks.gateway import GatewayHook
        from varai_deploy.services import SERVICES

        ti = context["ti"]
        verdict = ti.xcom_pull(task_ids=self.analysis_task_id)
        if verdict and verdict.get("verdict") == "pass":
            raise AirflowSkipException("analysis passed: nothing to roll back")
        switched = [s for s in as_list(ti.xcom_pull(task_ids=self.switch_task_id)) if s.get("previous")]
        if not switched:
            raise AirflowSkipException("no service was switched by this run: nothing to roll back")
        reason = describe_verdict(verdict)
        started = time.monotonic()
        gateway, restored, problems = GatewayHook(self.env_config.gateway_conn_id), [], []
        for switch in switched:
            service, previous = switch["service"], switch["previous"]
            live = self.platform.current_revision(service)
            if live and live["version"] != previous["version"]:
                self.platform.switch_traffic(service, previous)
            # Never a rollback target again ("previous" must not point back at what failed).
            self.platform.discard(service, switch["live"])
            answer = gateway.probe(SERVICES[service].health_path)
            if not answer.ok or answer.version != previous["version"]:
                problems.append(answer.describe())
            restored.append(f"{service} -> {previous['version']} ({previous['name']})")
        payload = {
            "version": self.version,
            "reason": reason,
            "verdict": verdict,
            "restored": restored,
            "seconds": round(time.monotonic() - started, 2),
            "problems": problems,
        }
        ti.xcom_push(key="rollback", value=payload)
        self.log.warning("Rolled back in %.2fs: %s", payload["seconds"], "; ".join(restored))
        if problems:
            raise AirflowFailException(
                f"rollback of {self.version} could not verify the previous revision: {'; '.join(problems)}"
            )
        raise AirflowFailException(
            f"release {self.version} rolled back ({reason}); traffic is back on: {'; '.join(restored)}"
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
    """Writes who rolled back, when, why and what now serves: to the log, XCom and the audit trail.

    The revisions rolled away from are discarded, so a later "previous" never points back at them.
    """

    template_fields = ("environment", "reason", "switched")

    def __init__(self, *, reason: str = "{{ params.reason }}", switched: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.reason = reason
        self.switched = switched

    def execute(self, context) -> dict:
        from varai_deploy.audit import append_audit

        dag_run = context["dag_run"]
        for switch in as_list(self.switched):
            if switch.get("previous"):
                self.platform.discard(switch["service"], switch["previous"])
        record = {
            "event": "rollback",
            "environment": self.environment,
            "who": dag_run.triggering_user_name or str(dag_run.run_type),
            "when": datetime.now(UTC).isoformat(),
            "why": self.reason,
            "run_id": dag_run.run_id,
            "restored": [
                f"{s['service']} -> {s['live']['version']} ({s['live']['name']})" for s in as_list(self.switched)
            ],
        }
        path = append_audit(self.env_config, record)
        self.log.info("Rollback recorded in %s: %s", path, json.dumps(record))
        return record
