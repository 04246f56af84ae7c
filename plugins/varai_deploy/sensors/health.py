"""Wait (deferred, past a short first try) until a candidate answers healthy N times in a row on its own URL."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from varai_deploy.operators.base import EnvironmentOperator
from varai_deploy.probe_identity import ProbeIdentity, probe_conn_id
from varai_deploy.triggers.health import HealthStreakTrigger


class HealthStreakSensor(EnvironmentOperator):
    """Probes a short streak in place, then defers to :class:`HealthStreakTrigger` for the rest of
    the wait; streak, interval and timeout come from the environment config.

    Returns the candidate once healthy, so what flows on to the traffic switch is only ever a
    revision that passed its streak.

    A candidate the platform reports stopped (the sandbox's process ended) after the streak in
    place fails then, not at the deadline; one that stops later is found at the deadline.

    On timeout the candidate is discarded and the task fails without a retry (a candidate that
    never got healthy will not get healthy by asking again), naming the service and why. Traffic
    was never moved, so the live revision keeps serving. The task keeps the DAG's retry for
    failures that are not the candidate's: Airflow 3.3 can fail a resumed deferred task on a stale
    executor event (apache/airflow#72716); the retry starts a fresh streak.
    """

    template_fields = ("environment", "candidate")
    #: The longest streak probed in place before deferring (seconds).
    INLINE_SECONDS = 5

    def __init__(self, *, candidate: Any, **kwargs):
        super().__init__(**kwargs)
        self.candidate = candidate

    def execute(self, context) -> dict:
        if self.candidate.get("noop") or self.candidate.get("serving"):
            self.log.info(
                "%s already serves %s: no candidate to wait for%s",
                self.candidate["service"],
                self.candidate["version"],
                " (it is judged on its metrics after the traffic step)" if self.candidate.get("serving") else "",
            )
            return self.candidate
        policy = self.env_config.release
        url = self.candidate["url"].rstrip("/") + "/health"
        self.log.info(
            "Waiting for %s consecutive healthy answers from %s (timeout %ss)",
            policy.health_streak,
            url,
            policy.health_timeout_seconds,
        )
        deadline = time.time() + policy.health_timeout_seconds
        conn_id, audience = probe_conn_id(self.env_config), self.candidate.get("audience")
        first = self._streak_in_place(url, policy, deadline, ProbeIdentity(conn_id), audience)
        if first is not None:
            if first["status"] == "healthy":
                return self.execute_complete(context, first)
            if stopped := self.platform.stopped(self.candidate):  # it never will be healthy: no wait for the deadline
                return self.execute_complete(context, {**first, "status": "stopped", "stopped": stopped})
        self.defer(
            trigger=HealthStreakTrigger(
                url=url,
                streak=policy.health_streak,
                interval=policy.health_interval_seconds,
                deadline=deadline,
                gcp_conn_id=conn_id,
                audience=audience,
            ),
            method_name="execute_complete",
            # Backstop only: the trigger itself reports the timeout with its findings.
            timeout=timedelta(seconds=policy.health_timeout_seconds + 60),
        )

    def _streak_in_place(
        self, url: str, policy, deadline: float, identity: ProbeIdentity, audience: str | None
    ) -> dict[str, Any] | None:
        """The streak probed here first, when it takes at most ``INLINE_SECONDS`` (a sandbox
        candidate is healthy within a second): its result, or None when it would take longer (then
        the whole wait is deferred). Deferring costs a round trip through the triggerer and a second
        worker start, seconds more than the streak itself."""
        import asyncio

        import aiohttp

        from varai_deploy.triggers.health import streak

        budget = policy.health_streak * policy.health_interval_seconds + 1
        if budget > self.INLINE_SECONDS:
            return None

        async def probe() -> dict[str, Any]:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
                return await streak(
                    session,
                    url,
                    policy.health_streak,
                    policy.health_interval_seconds,
                    min(deadline, time.time() + budget),
                    identity,
                    audience,
                )

        return asyncio.run(probe())

    def execute_complete(self, context, event: dict[str, Any]) -> dict:
        service, version = self.candidate["service"], self.candidate["version"]
        if event.get("status") == "healthy":
            self.log.info("%s %s healthy after %s probes", service, version, event.get("probes"))
            return self.candidate
        from varai_deploy.ledger import FAILED, PENDING, Actor

        policy = self.env_config.release
        diagnosis = event.get("stopped") or self.platform.diagnose(self.candidate)
        live = self.platform.current_revision(service)
        self.platform.discard(service, self.candidate)
        record = self.ledger.revision(service, version)
        if record and record.verdict == PENDING:  # a candidate under judgement (not a rollback target)
            self.ledger.record_verdict(Actor.from_context(context), service, version, FAILED, f"unhealthy: {diagnosis}")
        waited = "and stopped" if event.get("status") == "stopped" else f"within {policy.health_timeout_seconds:g}s"
        raise AirflowFailException(
            f"{service}: candidate {version} did not become healthy {waited} "
            f"(needed {policy.health_streak} consecutive healthy answers, "
            f"best streak {event.get('best_streak', 0)}, last answer: {event.get('last')}); {diagnosis}. "
            "Traffic was not moved: "
            f"{live['version'] + ' keeps serving' if live else 'the service has no live revision'}."
        )
