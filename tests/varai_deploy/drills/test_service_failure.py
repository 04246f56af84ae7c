"""The service-failure scenario on a real sandbox: the live process killed for real, noticed when the
supervisor has replaced it, recovered once the replacement answers; without supervision, nothing
notices and the abort heals it."""

from __future__ import annotations

import pytest

from tests.support.sandbox import deploy, wait_for, wait_listening
from varai_deploy.config import load_environment
from varai_deploy.drills.service_failure import ServiceFailure
from varai_deploy.sandbox import Sandbox, processes

SERVICE = "recommendation"  # dr_drills.service in the sandbox config


@pytest.fixture
def drill(sandbox_env: Sandbox):
    env = load_environment("sandbox")
    assert env.dr_drills.service == SERVICE
    deploy(sandbox_env, SERVICE, "v1.0.0")
    for instance in sandbox_env.status()["services"][SERVICE]["live"]["instances"]:
        wait_listening(sandbox_env.settings.url_for_port(instance["port"]))
    return env, env.dr_drills


def test_the_killed_process_is_noticed_once_replaced_and_recovered_once_its_replacement_answers(sandbox_env, drill):
    env, policy = drill
    scenario = ServiceFailure()
    broken = scenario.inject(env, policy)
    assert broken["service"] == SERVICE and broken["instance"] == 0 and broken["instances_before"] == 2
    assert not processes.is_alive(broken["pid"])
    noticed = wait_for(lambda: scenario.detected(env, policy, broken), timeout=10, what="the supervisor's restart")
    assert noticed["old_pid"] == broken["pid"] and noticed["at"] >= broken["broken_at"]
    recovered = wait_for(lambda: scenario.recover(env, policy, broken, {}), timeout=15, what="the replacement")
    assert recovered["pid"] == noticed["pid"] != broken["pid"] and recovered["instance"] == 0
    live = sandbox_env.status()["services"][SERVICE]["live"]
    assert [i["running"] for i in live["instances"]] == [True, True]
    assert scenario.abort(env, policy, broken) == {"outcome": "every instance runs: nothing to restart"}


def test_without_supervision_nothing_notices_and_the_abort_restarts_the_instance(sandbox_env, drill):
    env, policy = drill
    scenario = ServiceFailure()
    assert sandbox_env.stop_supervisor() == {"running": False}
    broken = scenario.inject(env, policy)
    assert scenario.detected(env, policy, broken) is None
    assert scenario.recover(env, policy, broken, {}) is None
    undone = scenario.abort(env, policy, broken)
    assert undone["outcome"] == "restarted 1 instance(s)" and undone["restarted"][0]["old_pid"] == broken["pid"]
    live = sandbox_env.status()["services"][SERVICE]["live"]
    assert all(i["running"] for i in live["instances"])
