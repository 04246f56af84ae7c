"""A drill's steady-state check: at once before anything is broken; after the break, waited for
(deferred) until a deadline, first to see the outage noticed (the steady state gone: the time to
detect), then to see it back (the recovery done), or to know the drill must abort."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from varai_deploy.operators.base import EnvironmentOperator


class SteadyStateOperator(EnvironmentOperator):
    """Succeeds with the steady state's figures once it holds (``expect_holds=False``: once it does
    not). Without ``until`` it is checked once (the hypothesis a drill starts from); with ``until``
    (ISO time) it is checked every ``poll_seconds`` in a deferred wait that holds no worker slot, and
    fails when ``until`` passes."""

    template_fields = ("environment", "until")

    def __init__(
        self, *, until: str | None = None, expect_holds: bool = True, poll_seconds: float = 0.5, **kwargs
    ) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.until = until
        self.expect_holds = expect_holds
        self.poll_seconds = poll_seconds

    def execute(self, context: Any, event: Any = None) -> dict[str, Any]:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger
        from airflow.sdk.exceptions import AirflowFailException

        from varai_deploy.drills.steady_state import observe

        policy = self.env_config.dr_drills
        if policy is None:
            raise AirflowFailException(f"{self.environment} has no dr_drills section in its config")
        state = observe(self.env_config, policy)
        now = datetime.now(UTC)
        if state.holds == self.expect_holds:
            self.log.info("At %s, %s: %s", now.isoformat(), state.describe(), state.figures)
            return {**state.figures, "holds": state.holds, "problems": list(state.problems)}
        deadline = datetime.fromisoformat(self.until) if self.until else now
        if now >= deadline:
            self.log.info("Figures: %s", state.figures)
            if not self.expect_holds:
                raise AirflowFailException(
                    f"Nothing noticed the outage by {deadline.isoformat()}: the steady state holds"
                )
            what = "did not come back by " + deadline.isoformat() if self.until else "is not there"
            raise AirflowFailException(f"The steady state {what}: " + "; ".join(state.problems))
        self.log.info("%s; looking again in %g s (until %s)", state.describe(), self.poll_seconds, deadline.isoformat())
        self.defer(
            trigger=DateTimeTrigger(moment=min(now + timedelta(seconds=self.poll_seconds), deadline)),
            method_name="execute",
        )
