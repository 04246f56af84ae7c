"""A recovery counts once the steady state has stayed back for the settle period: a reading that
lapses again starts the wait over, and the RTO ends where the stretch that held began.

The steady-state readings are scripted here (each real check, through the gateway, Prometheus and
PostgreSQL, is exercised by the integration drill); what is tested is how the operator judges them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from varai_deploy.drills import steady_state
from varai_deploy.drills.steady_state import SteadyState
from varai_deploy.operators.drill import SteadyStateOperator

HOLDS = SteadyState((), {"at": "now", "error_ratio": 0.0})
GONE = SteadyState(("analytics_events cannot be read",), {"at": "now", "error_ratio": None})


def reading(monkeypatch, state: SteadyState) -> None:
    monkeypatch.setattr(steady_state, "observe", lambda env, policy: state)


def operator(until_seconds: float = 60) -> SteadyStateOperator:
    until = (datetime.now(UTC) + timedelta(seconds=until_seconds)).isoformat()
    return SteadyStateOperator(task_id="steady", environment="sandbox", until=until)


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def test_the_first_good_reading_starts_the_settle_period_instead_of_ending_the_wait(monkeypatch):
    reading(monkeypatch, HOLDS)
    before = datetime.now(UTC)
    with pytest.raises(TaskDeferred) as deferred:
        operator().execute({})
    held_since = datetime.fromisoformat(deferred.value.kwargs["held_since"])
    assert before <= held_since <= datetime.now(UTC)


def test_held_for_the_settle_period_it_is_recovered_as_of_the_first_good_reading(monkeypatch):
    reading(monkeypatch, HOLDS)
    since = ago(5.5)  # the shipped sandbox config settles for 5 s
    result = operator().execute({}, held_since=since)
    assert result["holds"] is True
    assert result["at"] == since  # where the RTO ends
    assert datetime.fromisoformat(result["settled_at"]) > datetime.fromisoformat(since)


def test_a_lapse_starts_the_settle_period_over(monkeypatch):
    reading(monkeypatch, GONE)
    with pytest.raises(TaskDeferred) as deferred:
        operator().execute({}, held_since=ago(4))
    assert deferred.value.kwargs["held_since"] is None


def test_back_too_briefly_at_the_deadline_is_not_a_recovery(monkeypatch):
    reading(monkeypatch, HOLDS)
    with pytest.raises(AirflowFailException, match=r"did not come back by .*: it held only since .*, not 5 s"):
        operator(until_seconds=-1).execute({}, held_since=ago(2))


def test_a_data_loss_is_noticed_at_the_first_reading_that_shows_it(monkeypatch):
    from varai_deploy.config import load_environment
    from varai_deploy.drills.data_loss import DataLoss

    env = load_environment("sandbox")
    reading(monkeypatch, HOLDS)
    assert DataLoss().detected(env, env.dr_drills, {}) is None
    reading(monkeypatch, GONE)
    assert DataLoss().detected(env, env.dr_drills, {})["problems"] == ["analytics_events cannot be read"]


def test_a_step_not_done_by_the_deadline_fails_saying_which(monkeypatch):
    from varai_deploy.operators.drill import DrillStepOperator

    reading(monkeypatch, HOLDS)
    step = DrillStepOperator(task_id="detect", step="detected", environment="sandbox", scenario="data_loss")
    step.until = ago(1)
    with pytest.raises(AirflowFailException, match="Nothing noticed the break by .* \\(data_loss\\)"):
        step.execute({})
    step.until = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    with pytest.raises(TaskDeferred):
        step.execute({})


def test_the_hypothesis_before_a_break_is_one_reading(monkeypatch):
    reading(monkeypatch, HOLDS)
    assert SteadyStateOperator(task_id="before", environment="sandbox").execute({})["holds"] is True
    reading(monkeypatch, GONE)
    with pytest.raises(AirflowFailException, match="The steady state is not there: analytics_events cannot be read"):
        SteadyStateOperator(task_id="before", environment="sandbox").execute({})
