"""HealthStreakSensor: a short streak in place, else deferred; a failure says why and leaves traffic alone."""

import asyncio
import time

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from varai_deploy.platforms.local import LocalPlatform
from varai_deploy.sensors.health import HealthStreakSensor
from varai_deploy.triggers.health import HealthStreakTrigger


def sensor(candidate):
    return HealthStreakSensor(task_id="wait_healthy", environment="sandbox", candidate=candidate)


def defer(op) -> HealthStreakTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    assert deferred.value.method_name == "execute_complete"
    return deferred.value.trigger


def fire(trigger) -> dict:
    return asyncio.run(anext(trigger.run())).payload


def test_a_candidate_healthy_at_once_is_handed_on_without_deferring(sandbox_env):
    """A streak of a few seconds is probed in place: no round trip through the triggerer."""
    candidate = dict(LocalPlatform().deploy_candidate("analytics", "v1.0.0", "img"))
    op = sensor(candidate)
    policy = op.env_config.release
    assert policy.health_streak * policy.health_interval_seconds + 1 <= op.INLINE_SECONDS
    assert op.execute({}) == candidate


def test_a_healthy_candidate_is_handed_on_after_its_deferred_streak(sandbox_env, monkeypatch):
    """A longer streak than the sensor probes in place is waited for in the triggerer from the start."""
    monkeypatch.setattr(HealthStreakSensor, "INLINE_SECONDS", 0)
    candidate = dict(LocalPlatform().deploy_candidate("analytics", "v1.0.0", "img"))
    op = sensor(candidate)
    trigger = defer(op)
    assert trigger.url == candidate["url"] + "/health"
    assert trigger.streak == op.env_config.release.health_streak
    assert op.execute_complete({}, fire(trigger)) == candidate


def live_face_analysis(sandbox_env, fault: str) -> dict:
    """face-analysis v1.0.0 live, and a v1.0.1 candidate started with ``fault``."""
    platform = LocalPlatform()
    live = platform.deploy_candidate("face-analysis", "v1.0.0", "img")
    asyncio.run(anext(HealthStreakTrigger(live["url"] + "/health", 1, 0.1, 1e12).run()))
    platform.switch_traffic("face-analysis", live, expected=None)
    sandbox_env.register_fault("v1.0.1", fault, services=["face-analysis"])
    return dict(platform.deploy_candidate("face-analysis", "v1.0.1", "img"))


def assert_failed_and_v100_serves(sandbox_env, failure, *phrases: str) -> None:
    message = str(failure.value)
    assert message.startswith("face-analysis: candidate v1.0.1 did not become healthy"), message
    assert all(phrase in message for phrase in [*phrases, "v1.0.0 keeps serving"]), message
    slots = sandbox_env.status()["services"]["face-analysis"]
    assert slots["live"]["version"] == "v1.0.0"
    assert slots["idle"]["state"] == "failed"


def test_a_crashing_candidate_fails_in_place_naming_the_service_and_the_cause(sandbox_env, release_context):
    """A candidate whose process ended will never answer: the task fails once its streak in place
    failed, not at the health timeout after a round trip through the triggerer."""
    op = sensor(live_face_analysis(sandbox_env, "crash"))
    with pytest.raises(AirflowFailException) as failure:  # not TaskDeferred
        op.execute(release_context)
    assert_failed_and_v100_serves(sandbox_env, failure, "and stopped", "fault injected: crash at start")


def test_a_running_but_unhealthy_candidate_is_waited_for_until_the_deadline(sandbox_env, release_context):
    op = sensor(live_face_analysis(sandbox_env, "unhealthy"))
    trigger = defer(op)  # its process runs: it may still get healthy
    timeout = op.env_config.release.health_timeout_seconds
    trigger.deadline = trigger.deadline - timeout + 2  # keep the test short
    with pytest.raises(AirflowFailException) as failure:
        op.execute_complete(release_context, fire(trigger))
    assert_failed_and_v100_serves(sandbox_env, failure, f"within {timeout:g}s", "HTTP 503", "running but not")


def test_an_already_live_version_is_not_waited_for(sandbox_env):
    candidate = {"service": "analytics", "version": "v1.0.0", "name": "blue", "url": "http://x", "noop": True}
    assert sensor(candidate).execute({}) == candidate


def test_a_retry_waits_for_a_fresh_streak_within_a_fresh_deadline(monkeypatch):
    """A genuine failure raises AirflowFailException (never retried, above); the DAG's retry is for
    Airflow failing a resumed deferred task on its own (apache/airflow#72716), and starts over."""
    monkeypatch.setattr(HealthStreakSensor, "INLINE_SECONDS", 0)  # deferred from the start
    candidate = {"service": "analytics", "version": "v1.0.1", "url": "http://127.0.0.1:9/"}
    first = defer(sensor(candidate))
    time.sleep(0.01)
    again = defer(sensor(candidate))
    assert again.deadline > first.deadline
    assert (again.url, again.streak) == (first.url, first.streak)
