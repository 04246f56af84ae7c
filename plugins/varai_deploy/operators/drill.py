"""A drill's steady-state check: at once before anything is broken; after the break, waited for
(deferred) until a deadline, first to see the outage noticed (the steady state gone: the time to
detect), then to see it back and staying back for ``settle_seconds`` (the recovery done), or to
know the drill must abort."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from varai_deploy.operators.base import EnvironmentOperator


class SteadyStateOperator(EnvironmentOperator):
    """Succeeds with the steady state's figures once it holds (``expect_holds=False``: once it does
    not). Without ``until`` it is checked once (the hypothesis a drill starts from); with ``until``
    (ISO time) it is checked every ``poll_seconds`` in a deferred wait that holds no worker slot, and
    fails when ``until`` passes. Waiting for it to hold, it must hold on every check for the policy's
    ``settle_seconds``; the figures' ``at`` is then the first check of that stretch, ``settled_at``
    the last."""

    template_fields = ("environment", "until")

    def __init__(
        self, *, until: str | None = None, expect_holds: bool = True, poll_seconds: float = 0.5, **kwargs
    ) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.until = until
        self.expect_holds = expect_holds
        self.poll_seconds = poll_seconds

    def execute(self, context: Any, event: Any = None, held_since: str | None = None) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from varai_deploy.drills.steady_state import observe

        policy = self.env_config.dr_drills
        if policy is None:
            raise AirflowFailException(f"{self.environment} has no dr_drills section in its config")
        state = observe(self.env_config, policy)
        now = datetime.now(UTC)
        deadline = datetime.fromisoformat(self.until) if self.until else now
        if state.holds == self.expect_holds:
            settle = policy.settle_seconds if self.expect_holds and self.until else 0
            since = datetime.fromisoformat(held_since) if held_since else now
            if (now - since).total_seconds() >= settle:
                self.log.info("At %s, %s: %s", now.isoformat(), state.describe(), state.figures)
                result = {**state.figures, "holds": state.holds, "problems": list(state.problems)}
                return {**result, "at": since.isoformat(), "settled_at": now.isoformat()} if settle else result
            if now < deadline:
                self.log.info("%s since %s; it must hold %g s", state.describe(), since.isoformat(), settle)
                self._look_again(now, deadline, held_since=since.isoformat())
            state = dataclasses.replace(state, problems=(f"it held only since {since.isoformat()}, not {settle:g} s",))
        elif held_since:
            self.log.info("The steady state lapsed again (it held since %s): %s", held_since, state.describe())
        if now >= deadline:
            self.log.info("Figures: %s", state.figures)
            if not self.expect_holds:
                raise AirflowFailException(
                    f"Nothing noticed the outage by {deadline.isoformat()}: the steady state holds"
                )
            what = "did not come back by " + deadline.isoformat() if self.until else "is not there"
            raise AirflowFailException(f"The steady state {what}: " + "; ".join(state.problems))
        self.log.info("%s; looking again in %g s (until %s)", state.describe(), self.poll_seconds, deadline.isoformat())
        self._look_again(now, deadline)

    def _look_again(self, now: datetime, deadline: datetime, held_since: str | None = None) -> None:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        self.defer(
            trigger=DateTimeTrigger(moment=min(now + timedelta(seconds=self.poll_seconds), deadline)),
            method_name="execute",
            kwargs={"held_since": held_since},
        )
