"""A drill's steps: the scenario's break, the wait until it is noticed and until it is recovered, and
the steady-state check (once before anything is broken; after the recovery, waited for until it has
stayed back for ``settle_seconds``). Every wait is deferred (no worker slot held) until the drill's
limit, after which the drill aborts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from varai_deploy.operators.base import EnvironmentOperator

STEPS = ("inject", "detected", "recover")


class DrillOperator(EnvironmentOperator):
    """Checked every ``poll_seconds`` in a deferred wait until ``until`` (ISO time); without
    ``until``, once. A look that could not be made (a worker lost, a query that failed, Airflow 3.3's
    scheduler failing a task resumed from a deferral on a stale executor event: apache/airflow#72716)
    is retried at once; the deadline is not, it fails for good (AirflowFailException)."""

    template_fields: tuple[str, ...] = ("environment", "until")

    def __init__(self, *, until: str | None = None, poll_seconds: float = 1, **kwargs) -> None:
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", timedelta(seconds=1))
        super().__init__(**kwargs)
        self.until = until
        self.poll_seconds = poll_seconds

    @property
    def policy(self):
        from airflow.sdk.exceptions import AirflowFailException

        policy = self.env_config.dr_drills
        if policy is None:
            raise AirflowFailException(f"{self.environment} has no dr_drills section in its config")
        return policy

    def deadline(self, now: datetime) -> datetime:
        return datetime.fromisoformat(self.until) if self.until else now

    def look_again(self, now: datetime, **kwargs: Any) -> None:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        moment = min(now + timedelta(seconds=self.poll_seconds), self.deadline(now))
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name="execute", kwargs=kwargs)


class DrillStepOperator(DrillOperator):
    """One step of the scenario (``step``: inject, detected or recover) on what ``broken`` says was
    broken. ``inject`` adds the drill's ``deadline`` (the break plus ``limit_minutes``); the others
    are asked again until they answer or the deadline passes, ``recover`` with its progress so far."""

    template_fields = (*DrillOperator.template_fields, "scenario", "broken")

    def __init__(self, *, step: str, scenario: str = "{{ params.scenario }}", broken: Any = None, **kwargs) -> None:
        if step not in STEPS:
            raise ValueError(f"step must be one of {', '.join(STEPS)}, not {step!r}")
        if step == "inject":
            kwargs.setdefault("retries", 0)  # a break is never made twice; the abort undoes a half-made one
        super().__init__(**kwargs)
        self.step, self.scenario, self.broken = step, scenario, broken

    def execute(self, context: Any, event: Any = None, progress: dict[str, Any] | None = None) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from varai_deploy.drills.scenarios import scenario

        drill = scenario(self.scenario)
        if self.step == "inject":
            broken = drill.inject(self.env_config, self.policy)
            deadline = datetime.fromisoformat(broken["broken_at"]) + timedelta(minutes=self.policy.limit_minutes)
            self.log.info("Broken at %s: %s; back by %s or abort", broken["broken_at"], broken, deadline.isoformat())
            return {**broken, "deadline": deadline.isoformat()}
        now = datetime.now(UTC)
        progress = dict(progress or {})
        if self.step == "recover":
            found = drill.recover(self.env_config, self.policy, self.broken, progress)
        else:
            found = drill.detected(self.env_config, self.policy, self.broken)
        if found is not None:
            self.log.info("%s %s: %s", drill.name, self.step, found)
            return found
        if now >= self.deadline(now):
            what = "noticed the break" if self.step == "detected" else "recovered"
            raise AirflowFailException(f"Nothing {what} by {self.deadline(now).isoformat()} ({drill.name})")
        self.log.info("%s: not %s yet (%s); looking again in %g s", drill.name, self.step, progress, self.poll_seconds)
        self.look_again(now, progress=progress)


class SteadyStateOperator(DrillOperator):
    """Succeeds with the steady state's figures once it holds. Without ``until`` it is checked once
    (the hypothesis a drill starts from); with ``until`` it must hold on every check for the
    policy's ``settle_seconds``: the figures' ``at`` is then the first check of that stretch,
    ``settled_at`` the last."""

    def execute(self, context: Any, event: Any = None, held_since: str | None = None) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from varai_deploy.drills.steady_state import observe

        policy = self.policy
        state = observe(self.env_config, policy)
        now = datetime.now(UTC)
        deadline = self.deadline(now)
        if state.holds:
            settle = policy.settle_seconds if self.until else 0
            since = datetime.fromisoformat(held_since) if held_since else now
            if (now - since).total_seconds() >= settle:
                self.log.info("At %s, %s: %s", now.isoformat(), state.describe(), state.figures)
                result = {**state.figures, "holds": True, "problems": []}
                return {**result, "at": since.isoformat(), "settled_at": now.isoformat()} if settle else result
            if now < deadline:
                self.log.info("%s since %s; it must hold %g s", state.describe(), since.isoformat(), settle)
                self.look_again(now, held_since=since.isoformat())
            state = dataclasses.replace(state, problems=(f"it held only since {since.isoformat()}, not {settle:g} s",))
        elif held_since:
            self.log.info("The steady state lapsed again (it held since %s): %s", held_since, state.describe())
        if now >= deadline:
            self.log.info("Figures: %s", state.figures)
            what = "did not come back by " + deadline.isoformat() if self.until else "is not there"
            raise AirflowFailException(f"The steady state {what}: " + "; ".join(state.problems))
        self.log.info("%s; looking again in %g s (until %s)", state.describe(), self.poll_seconds, deadline.isoformat())
        self.look_again(now, held_since=None)
