"""What a manual rollback may target, on a real sandbox."""

import pytest

from tests.support.sandbox import wait_listening
from varai_deploy.platforms.local import LocalPlatform
from varai_deploy.rollback import RollbackRefusedError, check_reason, resolve_targets


@pytest.fixture
def platform(sandbox):
    platform = LocalPlatform(sandbox)
    for version in ("v1.0.0", "v1.0.1"):
        for service in ("analytics", "recommendation"):
            candidate = platform.deploy_candidate(service, version, "img")
            wait_listening(candidate["url"])
            platform.switch_traffic(service, candidate)
    return platform


def test_previous_is_the_revision_the_live_one_replaced(platform):
    targets = resolve_targets(platform, ["analytics", "recommendation"], "previous")
    assert [(t["service"], t["version"]) for t in targets] == [("analytics", "v1.0.0"), ("recommendation", "v1.0.0")]


def test_a_named_known_version_and_the_live_one(platform):
    assert resolve_targets(platform, ["analytics"], "v1.0.0")[0]["version"] == "v1.0.0"
    live = resolve_targets(platform, ["analytics"], "v1.0.1")[0]
    assert live["noop"] is True


def test_unknown_targets_are_refused_naming_what_is_known(platform):
    with pytest.raises(
        RollbackRefusedError,
        match=r"analytics: v0\.9\.0 is not known to the platform \(other revisions known: v1\.0\.0\)",
    ):
        resolve_targets(platform, ["analytics"], "v0.9.0")
    with pytest.raises(RollbackRefusedError, match="ai-discovery: no previous revision"):
        resolve_targets(platform, ["analytics", "ai-discovery"], "previous")


def test_a_failed_revision_is_never_a_target(platform):
    previous = resolve_targets(platform, ["analytics"], "previous")[0]
    platform.discard("analytics", previous)
    with pytest.raises(RollbackRefusedError, match="analytics: no previous revision"):
        resolve_targets(platform, ["analytics"], "previous")


@pytest.mark.parametrize("target", ["v1; rm -rf /", "latest", "1.0.0"])
def test_malformed_targets_are_refused(sandbox, target):
    with pytest.raises(RollbackRefusedError, match="must be 'previous' or a release tag"):
        resolve_targets(LocalPlatform(sandbox), ["analytics"], target)


@pytest.mark.parametrize("reason", [None, "", "   \n"])
def test_a_reason_is_required(reason):
    with pytest.raises(RollbackRefusedError, match="needs a reason"):
        check_reason(reason)
    assert check_reason("  p95 over 5s  ") == "p95 over 5s"
