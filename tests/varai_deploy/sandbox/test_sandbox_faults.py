"""Fault registration (no processes): what gets stored and what a service process will see."""

from __future__ import annotations

import pytest

from varai_deploy.sandbox import Sandbox, SandboxError, SandboxSettings
from varai_deploy.sandbox.faults import ActiveFaults


@pytest.fixture
def sb(tmp_path) -> Sandbox:
    return Sandbox(SandboxSettings(home=tmp_path / "sbx", gateway_port=19500, service_port_base=19510))


def test_register_list_and_clear(sb: Sandbox) -> None:
    assert sb.faults() == {}
    sb.register_fault("v2.0.0", "crash", ["ai-discovery"])
    sb.register_fault("v2.0.0", "unhealthy")
    sb.register_fault("v2.1.0-rc.1", "errors", rate=0.25)
    sb.register_fault("v2.1.0-rc.1", "slow", ["analytics"], latency_seconds=0.5)
    faults = sb.faults()
    assert faults["v2.0.0"] == [
        {"mode": "crash", "services": ["ai-discovery"]},
        {"mode": "unhealthy", "services": None},
    ]
    assert {"mode": "errors", "services": None, "rate": 0.25} in faults["v2.1.0-rc.1"]
    # The same (version, mode) again replaces the earlier registration.
    sb.register_fault("v2.0.0", "crash", ["recommendation"])
    assert [f for f in sb.faults()["v2.0.0"] if f["mode"] == "crash"] == [
        {"mode": "crash", "services": ["recommendation"]}
    ]
    assert sb.clear_faults("v2.0.0") == 2
    assert list(sb.faults()) == ["v2.1.0-rc.1"]
    assert sb.clear_faults() == 2
    assert sb.faults() == {}


def test_what_a_service_process_sees(sb: Sandbox) -> None:
    sb.register_fault("v2.0.0", "crash", ["ai-discovery"])
    sb.register_fault("v2.0.0", "errors", ["analytics"], rate=0.5)
    sb.register_fault("v2.0.0", "slow", latency_seconds=1.5)
    f = sb.settings.faults_file
    assert ActiveFaults.for_process(f, "v2.0.0", "ai-discovery") == ActiveFaults(crash=True, latency_seconds=1.5)
    assert ActiveFaults.for_process(f, "v2.0.0", "analytics") == ActiveFaults(error_rate=0.5, latency_seconds=1.5)
    assert ActiveFaults.for_process(f, "v1.0.0", "analytics") == ActiveFaults()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("2.0.0", "crash"), {}, "not a release tag"),
        (("v2.0.0", "explode"), {}, "unknown fault mode"),
        (("v2.0.0", "crash", ["billing"]), {}, "unknown service"),
        (("v2.0.0", "errors"), {}, "needs a rate"),
        (("v2.0.0", "errors"), {"rate": 1.5}, "needs a rate"),
        (("v2.0.0", "slow"), {}, "needs a latency"),
    ],
)
def test_bad_faults_are_refused(sb: Sandbox, args, kwargs, message) -> None:
    with pytest.raises(SandboxError, match=message):
        sb.register_fault(*args, **kwargs)


def test_a_slow_version_is_slow_for_users_but_its_health_probe_is_not(sandbox: Sandbox) -> None:
    import time

    from tests.support.sandbox import request, wait_listening

    sandbox.register_fault("v4.0.0", "slow", ["analytics"], latency_seconds=1.0)
    candidate = sandbox.start_candidate("analytics", "v4.0.0")
    wait_listening(candidate["url"])
    started = time.monotonic()
    assert request(candidate["url"], "/analytics/health")[0] == 200
    assert time.monotonic() - started < 0.5
    started = time.monotonic()
    assert request(candidate["url"], "/analytics/events", method="POST", body={"events": []})[0] == 202
    assert time.monotonic() - started >= 1.0
