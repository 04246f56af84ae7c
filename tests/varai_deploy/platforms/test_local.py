"""LocalPlatform on a real sandbox: the platform protocol as a release uses it."""

import pytest

from tests.support.sandbox import request, wait_for, wait_listening
from varai_deploy.platforms import PlatformError, SwitchConflictError
from varai_deploy.platforms.local import LocalPlatform


@pytest.fixture
def platform(sandbox):
    return LocalPlatform(sandbox)


def test_blue_green_through_the_protocol(platform, sandbox):
    assert platform.current_revision("analytics") is None
    first = platform.deploy_candidate("analytics", "v1.0.0", "img/analytics:v1.0.0")
    assert (first["name"], first["version"], first["image"]) == ("blue", "v1.0.0", "img/analytics:v1.0.0")
    wait_listening(first["url"])
    assert platform.switch_traffic("analytics", first, expected=None) is None
    assert platform.current_revision("analytics")["version"] == "v1.0.0"

    second = platform.deploy_candidate("analytics", "v1.0.1", "img/analytics:v1.0.1")
    assert second["name"] == "green"
    wait_listening(second["url"])
    # No traffic yet: the gateway still answers from v1.0.0.
    assert request(sandbox.settings.gateway_url, "/analytics/health")[1]["x-served-version"] == "v1.0.0"
    previous = platform.switch_traffic("analytics", second, expected=first)
    assert (previous["version"], previous["name"]) == ("v1.0.0", "blue")
    assert request(sandbox.settings.gateway_url, "/analytics/health")[1]["x-served-version"] == "v1.0.1"

    # A switch that expects what no longer serves moves nothing.
    with pytest.raises(SwitchConflictError, match=r"live is v1\.0\.1 \(green\), expected v1\.0\.0 \(blue\)"):
        platform.switch_traffic("analytics", previous, expected=first)
    platform.retire("analytics", previous)
    platform.retire("analytics", previous)  # idempotent
    idle = sandbox.status()["services"]["analytics"]["idle"]
    assert (idle["version"], idle["state"], idle["running"]) == ("v1.0.0", "retired", False)


def test_deploying_the_same_candidate_twice_is_idempotent(platform):
    first = platform.deploy_candidate("face-analysis", "v2.0.0", "img")
    again = platform.deploy_candidate("face-analysis", "v2.0.0", "img")
    assert first == again
    assert platform.stopped(first) is None  # running: it may still become healthy


def test_diagnose_says_why_a_crashed_candidate_is_not_healthy(platform, sandbox):
    sandbox.register_fault("v3.0.0", "crash", services=["recommendation"])
    candidate = platform.deploy_candidate("recommendation", "v3.0.0", "img")
    wait_for(lambda: not sandbox.process_state("recommendation", candidate["name"])["running"], what="the crash")
    diagnosis = platform.diagnose(candidate)
    assert "exited with code 3" in diagnosis
    assert "fault injected: crash at start" in diagnosis
    # A candidate is never restarted: one that ended is stopped for good, and says how.
    assert platform.stopped(candidate) == diagnosis
    platform.discard("recommendation", candidate)
    assert sandbox.status()["services"]["recommendation"]["idle"]["state"] == "failed"


def test_switching_to_a_dead_candidate_is_refused(platform, sandbox):
    sandbox.register_fault("v3.0.1", "crash", services=["ai-discovery"])
    candidate = platform.deploy_candidate("ai-discovery", "v3.0.1", "img")
    wait_for(lambda: not sandbox.process_state("ai-discovery", candidate["name"])["running"], what="the crash")
    with pytest.raises(PlatformError, match="ai-discovery: cannot switch traffic to v3.0.1"):
        platform.switch_traffic("ai-discovery", candidate, expected=None)
    assert platform.current_revision("ai-discovery") is None


def test_a_malformed_version_never_reaches_a_process(platform, sandbox):
    with pytest.raises(PlatformError, match="not a release tag"):
        platform.deploy_candidate("analytics", "v1;id", "img")
    assert sandbox.status()["services"]["analytics"] == {"live": None, "idle": None}
