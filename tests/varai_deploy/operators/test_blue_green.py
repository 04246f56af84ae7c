"""The blue-green operators on a real sandbox."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from tests.support.sandbox import wait_for, wait_listening
from varai_deploy.ledger import FAILED, PASSED, PENDING, Actor, Ledger, LockHeldError
from varai_deploy.operators.blue_green import (
    DeployCandidateOperator,
    RetireRevisionOperator,
    SwitchTrafficOperator,
    VerifyGatewayOperator,
)

INFRA = {"images": {"analytics": "sandbox.local/varai/analytics:vX"}}


@pytest.fixture
def ctx(sandbox_env, release_context):
    return release_context


def deploy(ctx, version, service="analytics", infra=INFRA):
    op = DeployCandidateOperator(task_id="deploy", environment="sandbox", service=service, version=version, infra=infra)
    return op.execute(ctx)


def switch(ctx, candidate):
    wait_listening(candidate["url"])
    return SwitchTrafficOperator(task_id="switch", environment="sandbox", candidate=candidate).execute(ctx)


def passed(ctx, version, service="analytics"):
    Ledger("sandbox").record_verdict(Actor.from_context(ctx), service, version, PASSED)


def test_release_steps_end_to_end(sandbox_env, ctx):
    first = switch(ctx, deploy(ctx, "v1.0.0"))
    assert first["previous"] is None
    second = switch(ctx, deploy(ctx, "v1.0.1"))
    assert (second["live"]["version"], second["previous"]["version"]) == ("v1.0.1", "v1.0.0")

    assert VerifyGatewayOperator(task_id="verify", environment="sandbox", switch=second).execute(ctx) == second

    retire = RetireRevisionOperator(task_id="retire", environment="sandbox", switch=second)
    with pytest.raises(TaskDeferred) as deferred:
        retire.execute(ctx)  # still inside the bake time
    assert deferred.value.trigger.moment > datetime.now(UTC)
    assert "retired v1.0.0 (blue)" in retire.execute_complete(ctx)
    assert sandbox_env.status()["services"]["analytics"]["idle"]["state"] == "retired"


def test_after_the_bake_time_retire_does_not_wait(sandbox_env, ctx):
    live = switch(ctx, deploy(ctx, "v1.0.0"))
    baked = switch(ctx, deploy(ctx, "v1.0.1"))
    baked["switched_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert "retired v1.0.0" in RetireRevisionOperator(task_id="retire", environment="sandbox", switch=baked).execute(
        ctx
    )
    first_release = RetireRevisionOperator(task_id="retire", environment="sandbox", switch=live)
    assert "first release" in first_release.execute(ctx)


def test_deploying_the_live_version_is_a_no_op(sandbox_env, ctx):
    switch(ctx, deploy(ctx, "v1.0.0"))
    passed(ctx, "v1.0.0")
    again = deploy(ctx, "v1.0.0")
    assert again["noop"] is True
    assert sandbox_env.status()["services"]["analytics"]["idle"] is None


def test_a_service_missing_from_terraform_outputs_fails(sandbox_env, ctx):
    with pytest.raises(AirflowFailException, match="no image for analytics"):
        deploy(ctx, "v1.0.0", infra={"images": {}})


def test_traffic_does_not_move_to_a_candidate_that_turned_unhealthy(sandbox_env, ctx):
    switch(ctx, deploy(ctx, "v1.0.0"))
    sandbox_env.register_fault("v1.0.1", "unhealthy", services=["analytics"])
    candidate = deploy(ctx, "v1.0.1")
    wait_listening(candidate["url"])
    with pytest.raises(AirflowFailException, match="stopped answering healthy.*traffic stays"):
        SwitchTrafficOperator(task_id="switch", environment="sandbox", candidate=candidate).execute(ctx)
    assert sandbox_env.status()["services"]["analytics"]["live"]["version"] == "v1.0.0"


def test_verify_fails_when_the_gateway_serves_another_version(sandbox_env, ctx):
    result = switch(ctx, deploy(ctx, "v1.0.0"))
    claimed = {**result, "live": {**result["live"], "version": "v9.9.9"}}
    with pytest.raises(AirflowFailException, match="does not serve v9.9.9 after the switch"):
        VerifyGatewayOperator(task_id="verify", environment="sandbox", switch=claimed).execute(ctx)


def test_a_live_version_without_a_passed_verdict_is_judged_again(sandbox_env, ctx):
    """A run that died after its switch left the version serving, unjudged: "live" is not "released"."""
    switch(ctx, deploy(ctx, "v1.0.0"))
    again = deploy(ctx, "v1.0.0")
    assert again.get("serving") is True and not again.get("noop")
    assert Ledger("sandbox").revision("analytics", "v1.0.0").verdict == PENDING


def test_a_retried_switch_that_finds_the_candidate_live_reports_the_switch(sandbox_env, ctx):
    """Try 1 moved traffic and died before its result was saved; try 2 must not say traffic stayed."""
    switch(ctx, deploy(ctx, "v1.0.0"))
    passed(ctx, "v1.0.0")
    sandbox_env.register_fault("v1.0.1", "unhealthy", services=["analytics"], after_seconds=1)
    candidate = deploy(ctx, "v1.0.1")
    switch(ctx, candidate)
    time.sleep(1.5)  # now unhealthy: a fresh switch would refuse
    retried = SwitchTrafficOperator(task_id="switch", environment="sandbox", candidate=candidate).execute(ctx)
    assert (retried["live"]["version"], retried["previous"]["version"]) == ("v1.0.1", "v1.0.0")
    state = Ledger("sandbox").service_state("analytics")
    assert (state.live_version, state.previous_version, state.last_good_version) == ("v1.0.1", "v1.0.0", "v1.0.0")


def test_a_switch_refuses_when_the_live_revision_changed_under_it(sandbox_env, ctx):
    from varai_deploy.platforms import SwitchConflictError
    from varai_deploy.platforms.local import LocalPlatform

    first = deploy(ctx, "v1.0.0")
    wait_listening(first["url"])
    sandbox_env.switch("analytics", first["name"])  # someone else moved traffic since we looked
    candidate = deploy(ctx, "v1.0.1")
    wait_listening(candidate["url"])
    with pytest.raises(SwitchConflictError, match=r"live is v1\.0\.0 \(blue\), expected nothing"):
        LocalPlatform().switch_traffic("analytics", candidate, expected=None)
    assert sandbox_env.status()["services"]["analytics"]["live"]["version"] == "v1.0.0"
    # ...and a candidate replaced in its slot after its health check is refused too.
    with pytest.raises(SwitchConflictError, match="it now runs v1.0.1, not v1.0.2"):
        LocalPlatform().switch_traffic("analytics", {**candidate, "version": "v1.0.2"}, expected=first)


def test_steps_refuse_to_act_without_the_environment_lock(sandbox_env, ctx):
    Ledger("sandbox").release(Actor.from_context(ctx))
    with pytest.raises(LockHeldError, match="no longer holds sandbox"):
        deploy(ctx, "v1.0.0")
    assert sandbox_env.status()["services"]["analytics"]["live"] is None


def test_an_unhealthy_candidate_is_marked_failed_in_the_ledger(sandbox_env, ctx):
    from varai_deploy.sensors.health import HealthStreakSensor

    sandbox_env.register_fault("v1.0.0", "crash", services=["analytics"])
    candidate = deploy(ctx, "v1.0.0")
    wait_for(lambda: not sandbox_env.process_state("analytics", candidate["name"])["running"], what="the crash")
    sensor = HealthStreakSensor(task_id="wait_healthy", environment="sandbox", candidate=candidate)
    with pytest.raises(AirflowFailException, match="did not become healthy"):
        sensor.execute_complete(ctx, {"status": "timeout", "best_streak": 0, "last": "refused"})
    record = Ledger("sandbox").revision("analytics", "v1.0.0")
    assert record.verdict == FAILED and "fault injected: crash at start" in record.reason
