"""ai_discovery_release through real Airflow (`airflow dags test`) against the running sandbox.

The sandbox is the session's. Each test sets up the platform it needs (every service serving one
version, or nothing deployed at all) and compares with what served before it, so the tests pass
alone and in any order. Versions are v4.x, this module's own, each release a new one.
"""

from __future__ import annotations

import itertools
import json
import urllib.request

import pytest

from tests.support.sandbox import shopper
from tests.support.stack import GATEWAY_PORT, gateway_versions, release, served
from varai_deploy.services import SERVICE_NAMES, SERVICES

pytestmark = pytest.mark.integration

_minor = itertools.count(1)


def next_version() -> str:
    return f"v4.{next(_minor)}.0"


def assert_everything_serves(version: str, colour: str | dict[str, str]) -> None:
    colours = colour if isinstance(colour, dict) else dict.fromkeys(SERVICE_NAMES, colour)
    assert gateway_versions() == {name: (200, version, colours[name]) for name in SERVICE_NAMES}


def one_version_serving(stack) -> tuple[str, dict[str, str]]:
    """Every service serving the same version (a release of a new one if not): it, and each colour."""
    from varai_deploy.sandbox import Sandbox

    answers = gateway_versions()
    versions = {version for status, version, _ in answers.values() if status == 200}
    # Not a version with a fault registered (another module's flapping release answers 503 at times).
    faulty = versions & set(Sandbox().faults())
    if len(versions) != 1 or faulty or any(status != 200 for status, _, _ in answers.values()):
        run = release(stack, next_version())
        assert run.succeeded, run.errors or run.log[-3000:]
        answers = gateway_versions()
    [version] = {version for _, version, _ in answers.values()}
    return version, {name: colour for name, (_, _, colour) in answers.items()}


def call_probe(name: str) -> tuple[int, str | None, dict]:
    from varai_deploy.sandbox import Sandbox

    method, path = SERVICES[name].probe
    data = json.dumps({"event": "widget_view", "image_features": [0.1, 0.2]}).encode() if method == "POST" else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{GATEWAY_PORT}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **shopper(Sandbox().settings)},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return resp.status, resp.headers["X-Served-Version"], json.loads(resp.read())


def test_first_release_puts_all_five_services_live(stack, sandbox):
    for name in SERVICE_NAMES:  # as on a new platform, whatever other modules released before
        sandbox.remove(name)
    version = next_version()
    run = release(stack, version)
    assert run.succeeded, run.errors or run.log[-3000:]
    assert_everything_serves(version, "blue")
    for name in SERVICE_NAMES:
        status, served_version, body = call_probe(name)
        assert (status // 100, served_version) == (2, version), (name, body)


def test_next_release_flips_the_colours_and_retires_the_old_one(stack, sandbox):
    live, colours = one_version_serving(stack)
    version = next_version()
    run = release(stack, version)
    assert run.succeeded, run.errors or run.log[-3000:]
    flipped = {name: "green" if colour == "blue" else "blue" for name, colour in colours.items()}
    assert_everything_serves(version, flipped)
    for name, slots in sandbox.status()["services"].items():
        assert slots["live"]["version"] == version, name
        assert (slots["idle"]["version"], slots["idle"]["state"]) == (live, "retired"), name
    assert "Plan: " in run.log and "Terraform plan has no changes" not in run.log


def test_releasing_the_live_version_again_is_a_quick_no_op(stack, sandbox):
    # Released here, so Terraform's state holds it too: a failed release before this test (or a
    # maintenance window's rebuilds) can leave another version applied than the one serving.
    live = next_version()
    first = release(stack, live)
    assert first.succeeded, first.errors or first.log[-3000:]
    colours = {name: colour for name, (_, _, colour) in gateway_versions().items()}
    before = {name: slots["live"] for name, slots in sandbox.status()["services"].items()}
    run = release(stack, live)
    assert run.succeeded, run.errors or run.log[-3000:]
    assert {name: slots["live"] for name, slots in sandbox.status()["services"].items()} == before
    assert f"already serves {live}" in run.log
    assert "Terraform plan has no changes" in run.log
    assert_everything_serves(live, colours)


def test_a_crashing_candidate_fails_the_run_and_moves_no_traffic(stack, sandbox):
    live, colours = one_version_serving(stack)
    version = next_version()
    sandbox.register_fault(version, "crash", services=["face-analysis"])
    run = release(stack, version)
    assert not run.succeeded
    reason = " ".join(run.errors)
    assert f"face-analysis: candidate {version} did not become healthy" in reason
    assert "fault injected: crash at start" in reason
    assert f"{live} keeps serving" in reason
    # The healthy candidates of the other four services were not switched either.
    assert_everything_serves(live, colours)


def test_an_unhealthy_candidate_fails_the_run_and_the_old_version_keeps_serving(stack, sandbox):
    live, colours = one_version_serving(stack)
    version = next_version()
    sandbox.register_fault(version, "unhealthy", services=["recommendation"])
    run = release(stack, version, services=["recommendation", "analytics"])
    assert not run.succeeded
    reason = " ".join(run.errors)
    assert f"recommendation: candidate {version} did not become healthy" in reason
    assert "HTTP 503" in reason
    assert_everything_serves(live, colours)


def test_a_subset_release_touches_only_the_chosen_services(stack, sandbox):
    live, _ = one_version_serving(stack)
    version = next_version()
    run = release(stack, version, services=["analytics"])
    assert run.succeeded, run.errors or run.log[-3000:]
    answers = gateway_versions()
    assert answers["analytics"][1] == version
    assert {name: answers[name][1] for name in SERVICE_NAMES if name != "analytics"} == {
        name: live for name in SERVICE_NAMES if name != "analytics"
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
    live, _ = one_version_serving(stack)  # Terraform has applied once
    state = sandbox.settings.home / "terraform" / "sandbox" / "terraform.tfstate"
    applied = state.stat().st_mtime_ns
    sandbox.down()
    try:
        run = release(stack, next_version())
        assert not run.succeeded
        assert any("the sandbox is not running" in line for line in run.errors), run.errors
        assert state.stat().st_mtime_ns == applied, "terraform ran although validation failed"
    finally:
        sandbox.up()
    assert served("/health")[1] == live
