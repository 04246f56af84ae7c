"""ai_discovery_release through real Airflow (`airflow dags test`) against the running sandbox.

The tests run in order and share one sandbox: the first starts from a platform with nothing
deployed, and each release after it starts from what the previous left.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.support.stack import GATEWAY_PORT, gateway_versions, release, served
from varai_deploy.services import SERVICE_NAMES, SERVICES

pytestmark = pytest.mark.integration


def assert_everything_serves(version: str, colour: str) -> None:
    answers = gateway_versions()
    assert answers == {name: (200, version, colour) for name in SERVICE_NAMES}


def call_probe(name: str) -> tuple[int, str | None, dict]:
    method, path = SERVICES[name].probe
    data = json.dumps({"event": "widget_view", "image_features": [0.1, 0.2]}).encode() if method == "POST" else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{GATEWAY_PORT}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return resp.status, resp.headers["X-Served-Version"], json.loads(resp.read())


def test_first_release_puts_all_five_services_live(stack, sandbox):
    for name in SERVICE_NAMES:  # as on a new platform, whatever other modules released before
        sandbox.remove(name)
    run = release(stack, "v1.0.0")
    assert run.succeeded, run.errors or run.log[-3000:]
    assert_everything_serves("v1.0.0", "blue")
    for name in SERVICE_NAMES:
        status, version, body = call_probe(name)
        assert (status // 100, version) == (2, "v1.0.0"), (name, body)


def test_next_release_flips_the_colours_and_retires_the_old_one(stack, sandbox):
    run = release(stack, "v1.0.1")
    assert run.succeeded, run.errors or run.log[-3000:]
    assert_everything_serves("v1.0.1", "green")
    for name, slots in sandbox.status()["services"].items():
        assert slots["live"]["version"] == "v1.0.1", name
        assert (slots["idle"]["version"], slots["idle"]["state"]) == ("v1.0.0", "retired"), name
    assert "Plan: " in run.log and "Terraform plan has no changes" not in run.log


def test_releasing_the_live_version_again_is_a_quick_no_op(stack, sandbox):
    before = {name: slots["live"] for name, slots in sandbox.status()["services"].items()}
    run = release(stack, "v1.0.1")
    assert run.succeeded, run.errors or run.log[-3000:]
    assert {name: slots["live"] for name, slots in sandbox.status()["services"].items()} == before
    assert "already serves v1.0.1" in run.log
    assert "Terraform plan has no changes" in run.log
    assert_everything_serves("v1.0.1", "green")


def test_a_crashing_candidate_fails_the_run_and_moves_no_traffic(stack, sandbox):
    sandbox.register_fault("v1.0.2", "crash", services=["face-analysis"])
    run = release(stack, "v1.0.2")
    assert not run.succeeded
    reason = " ".join(run.errors)
    assert "face-analysis: candidate v1.0.2 did not become healthy" in reason
    assert "fault injected: crash at start" in reason
    assert "v1.0.1 keeps serving" in reason
    # The healthy candidates of the other four services were not switched either.
    assert_everything_serves("v1.0.1", "green")


def test_an_unhealthy_candidate_fails_the_run_and_the_old_version_keeps_serving(stack, sandbox):
    sandbox.register_fault("v1.0.3", "unhealthy", services=["recommendation"])
    run = release(stack, "v1.0.3", services=["recommendation", "analytics"])
    assert not run.succeeded
    reason = " ".join(run.errors)
    assert "recommendation: candidate v1.0.3 did not become healthy" in reason
    assert "HTTP 503" in reason
    assert_everything_serves("v1.0.1", "green")


def test_a_subset_release_touches_only_the_chosen_services(stack, sandbox):
    run = release(stack, "v1.1.0", services=["analytics"])
    assert run.succeeded, run.errors or run.log[-3000:]
    answers = gateway_versions()
    assert answers["analytics"][1] == "v1.1.0"
    assert {name: answers[name][1] for name in SERVICE_NAMES if name != "analytics"} == {
        name: "v1.0.1" for name in SERVICE_NAMES if name != "analytics"
    }


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"version": "v1; rm -rf /"}, "Invalid input for param version"),
        ({"version": "1.0"}, "Invalid input for param version"),
        ({"version": "v2.0.0", "environment": "moon"}, "Invalid input for param environment"),
        ({"version": "v2.0.0", "services": ["billing"]}, "Invalid input for param services"),
    ],
)
def test_bad_params_are_refused_before_any_task_runs(stack, sandbox, conf, message):
    before = sandbox.status()
    run = release(stack, **conf)
    assert not run.succeeded
    assert any(message in line for line in run.errors), run.errors
    assert "validate.request" not in run.log, "a task ran"
    assert sandbox.status() == before


def test_a_stopped_sandbox_fails_validation_with_how_to_start_it(stack, sandbox):
    state = sandbox.settings.home / "terraform" / "sandbox" / "terraform.tfstate"
    applied = state.stat().st_mtime_ns
    sandbox.down()
    try:
        run = release(stack, "v2.0.0")
        assert not run.succeeded
        assert any("the sandbox is not running" in line for line in run.errors), run.errors
        assert state.stat().st_mtime_ns == applied, "terraform ran although validation failed"
    finally:
        sandbox.up()
    assert served("/health")[1] == "v1.0.1"
