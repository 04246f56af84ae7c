"""What a manual rollback may target, on a real sandbox."""

import pytest

from tests.support.sandbox import wait_listening
from varai_deploy.ledger import FAILED, PASSED, Actor, Ledger
from varai_deploy.platforms.local import LocalPlatform
from varai_deploy.rollback import RollbackRefusedError, check_reason, resolve_targets

RUN = Actor(dag_id="ai_discovery_release", run_id="manual__test", who="tester")


@pytest.fixture
def ledger(ledger_conn):
    return Ledger("sandbox")


@pytest.fixture
def platform(sandbox, ledger):
    """analytics and recommendation: v1.0.0 served and passed, then v1.0.1 live and passed."""
    platform = LocalPlatform(sandbox)
    for version in ("v1.0.0", "v1.0.1"):
        for service in ("analytics", "recommendation"):
            release(platform, ledger, service, version)
    return platform


def release(platform, ledger, service, version, verdict=PASSED):
    candidate = platform.deploy_candidate(service, version, "img")
    ledger.record_candidate(RUN, candidate)
    wait_listening(candidate["url"])
    replaced = platform.switch_traffic(service, candidate, platform.current_revision(service))
    ledger.record_switch(RUN, service, candidate, replaced)
    ledger.record_verdict(RUN, service, version, verdict)
    return candidate


def test_previous_is_the_revision_the_live_one_replaced(platform, ledger):
    targets = resolve_targets(platform, ledger, ["analytics", "recommendation"], "previous")
    assert [(t["service"], t["version"]) for t in targets] == [("analytics", "v1.0.0"), ("recommendation", "v1.0.0")]


def test_a_named_known_version_and_the_live_one(platform, ledger):
    assert resolve_targets(platform, ledger, ["analytics"], "v1.0.0")[0]["version"] == "v1.0.0"
    live = resolve_targets(platform, ledger, ["analytics"], "v1.0.1")[0]
    assert live["noop"] is True


def test_unknown_targets_are_refused_naming_what_is_known(platform, ledger):
    with pytest.raises(
        RollbackRefusedError,
        match=r"analytics: v0\.9\.0 is not known to the platform \(known good revisions: v1\.0\.0\)",
    ):
        resolve_targets(platform, ledger, ["analytics"], "v0.9.0")
    with pytest.raises(RollbackRefusedError, match="ai-discovery: no previous revision"):
        resolve_targets(platform, ledger, ["analytics", "ai-discovery"], "previous")


def test_a_failed_revision_is_never_a_target(platform, ledger):
    previous = resolve_targets(platform, ledger, ["analytics"], "previous")[0]
    platform.discard("analytics", previous)
    with pytest.raises(RollbackRefusedError, match="analytics: no previous revision"):
        resolve_targets(platform, ledger, ["analytics"], "previous")


def test_a_candidate_that_never_served_is_never_previous(sandbox, ledger):
    """A sibling's candidate left running when another service failed its streak is no target."""
    platform = LocalPlatform(sandbox)
    release(platform, ledger, "analytics", "v1.0.0")
    idle = platform.deploy_candidate("analytics", "v1.1.0", "img")  # deployed, never switched
    ledger.record_candidate(RUN, idle)
    wait_listening(idle["url"])
    assert {r["version"] for r in platform.known_revisions("analytics")} == {"v1.0.0", "v1.1.0"}
    with pytest.raises(RollbackRefusedError, match="analytics: no previous revision"):
        resolve_targets(platform, ledger, ["analytics"], "previous")
    with pytest.raises(RollbackRefusedError, match="v1.1.0 is not known"):
        resolve_targets(platform, ledger, ["analytics"], "v1.1.0")


def test_a_revision_that_failed_its_analysis_is_never_previous(sandbox, ledger):
    platform = LocalPlatform(sandbox)
    release(platform, ledger, "analytics", "v1.0.0", verdict=FAILED)
    release(platform, ledger, "analytics", "v1.0.1")
    with pytest.raises(RollbackRefusedError, match="analytics: no previous revision"):
        resolve_targets(platform, ledger, ["analytics"], "previous")


@pytest.mark.parametrize("target", ["v1; rm -rf /", "latest", "1.0.0"])
def test_malformed_targets_are_refused(sandbox, ledger, target):
    with pytest.raises(RollbackRefusedError, match="must be 'previous' or a release tag"):
        resolve_targets(LocalPlatform(sandbox), Ledger("sandbox"), ["analytics"], target)


@pytest.mark.parametrize("reason", [None, "", "   \n"])
def test_a_reason_is_required(reason):
    with pytest.raises(RollbackRefusedError, match="needs a reason"):
        check_reason(reason)
    assert check_reason("  p95 over 5s  ") == "p95 over 5s"
