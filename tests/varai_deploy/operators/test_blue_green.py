"""The blue-green operators on a real sandbox."""

from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from tests.support.sandbox import wait_listening
from varai_deploy.operators.blue_green import (
    DeployCandidateOperator,
    RetireRevisionOperator,
    SwitchTrafficOperator,
    VerifyGatewayOperator,
)

INFRA = {"images": {"analytics": "sandbox.local/varai/analytics:vX"}}


def deploy(version, service="analytics", infra=INFRA):
    op = DeployCandidateOperator(task_id="deploy", environment="sandbox", service=service, version=version, infra=infra)
    return op.execute({})


def switch(candidate):
    wait_listening(candidate["url"])
    return SwitchTrafficOperator(task_id="switch", environment="sandbox", candidate=candidate).execute({})


def test_release_steps_end_to_end(sandbox_env):
    first = switch(deploy("v1.0.0"))
    assert first["previous"] is None
    second = switch(deploy("v1.0.1"))
    assert (second["live"]["version"], second["previous"]["version"]) == ("v1.0.1", "v1.0.0")

    assert VerifyGatewayOperator(task_id="verify", environment="sandbox", switch=second).execute({}) == second

    retire = RetireRevisionOperator(task_id="retire", environment="sandbox", switch=second)
    with pytest.raises(TaskDeferred) as deferred:
        retire.execute({})  # still inside the bake time
    assert deferred.value.trigger.moment > datetime.now(UTC)
    assert "retired v1.0.0 (blue)" in retire.execute_complete({})
    assert sandbox_env.status()["services"]["analytics"]["idle"]["state"] == "retired"


def test_after_the_bake_time_retire_does_not_wait(sandbox_env):
    live = switch(deploy("v1.0.0"))
    baked = switch(deploy("v1.0.1"))
    baked["switched_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert "retired v1.0.0" in RetireRevisionOperator(task_id="retire", environment="sandbox", switch=baked).execute({})
    first_release = RetireRevisionOperator(task_id="retire", environment="sandbox", switch=live)
    assert "first release" in first_release.execute({})


def test_deploying_the_live_version_is_a_no_op(sandbox_env):
    switch(deploy("v1.0.0"))
    again = deploy("v1.0.0")
    assert again["noop"] is True
    assert sandbox_env.status()["services"]["analytics"]["idle"] is None


def test_a_service_missing_from_terraform_outputs_fails(sandbox_env):
    with pytest.raises(AirflowFailException, match="no image for analytics"):
        deploy("v1.0.0", infra={"images": {}})


def test_traffic_does_not_move_to_a_candidate_that_turned_unhealthy(sandbox_env):
    switch(deploy("v1.0.0"))
    sandbox_env.register_fault("v1.0.1", "unhealthy", services=["analytics"])
    candidate = deploy("v1.0.1")
    wait_listening(candidate["url"])
    with pytest.raises(AirflowFailException, match="stopped answering healthy.*traffic stays"):
        SwitchTrafficOperator(task_id="switch", environment="sandbox", candidate=candidate).execute({})
    assert sandbox_env.status()["services"]["analytics"]["live"]["version"] == "v1.0.0"


def test_verify_fails_when_the_gateway_serves_another_version(sandbox_env):
    result = switch(deploy("v1.0.0"))
    claimed = {**result, "live": {**result["live"], "version": "v9.9.9"}}
    with pytest.raises(AirflowFailException, match="does not serve v9.9.9 after the switch"):
        VerifyGatewayOperator(task_id="verify", environment="sandbox", switch=claimed).execute({})
