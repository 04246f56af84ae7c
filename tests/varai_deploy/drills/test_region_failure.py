"""The region-failure scenario on a real two-region sandbox: the serving region lost for real, the
front end failed over once the standby answers, the lost region back as the standby when the drill is
over; refused before anything is broken when there is nowhere healthy to fail over to."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.support.sandbox import deploy, request, wait_for, wait_listening
from varai_deploy.config import load_environment
from varai_deploy.drills.region_failure import RegionFailure
from varai_deploy.drills.scenarios import ScenarioUnsupported
from varai_deploy.sandbox import Sandbox, SandboxSettings, processes
from varai_deploy.services import SERVICES

PRIMARY, SECONDARY = "us-central1", "us-east1"
DEPLOYED = ("recommendation", "analytics")


def _start(settings: SandboxSettings, monkeypatch) -> Sandbox:
    """A running sandbox that ``load_environment('sandbox')``'s platform finds (by its home)."""
    monkeypatch.setenv("VARAI_SANDBOX_HOME", str(settings.home))
    monkeypatch.setenv("VARAI_SANDBOX_GATEWAY_PORT", str(settings.gateway_port))
    monkeypatch.setenv("VARAI_SANDBOX_PORT_BASE", str(settings.service_port_base))
    monkeypatch.setenv("VARAI_SANDBOX_COMPONENTS", "none")
    sb = Sandbox(settings)
    sb.up()
    for service in DEPLOYED:
        deploy(sb, service, "v1.0.0")
        for instance in sb.status()["services"][service]["live"]["instances"]:
            wait_listening(settings.url_for_port(instance["port"]))
    return sb


@pytest.fixture
def regional(settings: SandboxSettings, monkeypatch) -> Iterator[Sandbox]:
    sb = _start(dataclasses.replace(settings, regions=(PRIMARY, SECONDARY)), monkeypatch)
    try:
        yield sb
    finally:
        sb.down()
        assert not processes.find_ours(settings.home)


def _served(sb: Sandbox, service: str = "recommendation") -> tuple[int, str | None]:
    status, headers, _ = request(sb.settings.gateway_url, SERVICES[service].health_path)
    return status, headers.get("x-served-region")


def _pids(sb: Sandbox, region: str) -> list[int]:
    return [
        i["pid"]
        for service in DEPLOYED
        for i in sb.status()["services"][service]["live"]["instances"]
        if i["region"] == region
    ]


def test_the_lost_region_is_failed_over_from_and_comes_back_as_the_standby(regional: Sandbox) -> None:
    env = load_environment("sandbox")
    scenario, primary_pids = RegionFailure(), _pids(regional, PRIMARY)
    broken = scenario.inject(env, env.dr_drills)
    assert (broken["region"], broken["standby"], broken["killed"]) == (PRIMARY, SECONDARY, 4)
    assert not any(processes.is_alive(pid) for pid in primary_pids)
    assert all(_served(regional, s)[0] == 502 for s in DEPLOYED)  # users see it: nothing failed over by itself

    recovered = scenario.recover(env, env.dr_drills, broken, {})
    assert (recovered["failed_over_from"], recovered["failed_over_to"]) == (PRIMARY, SECONDARY)
    assert all(_served(regional, s) == (200, SECONDARY) for s in DEPLOYED)
    assert scenario.findings({"inject_failure": broken, "recover": recovered}) == {
        "failed_over": {"from": PRIMARY, "to": SECONDARY, "killed": 4}
    }
    assert regional.regions()["down"] == [PRIMARY]  # a real region does not come back with the failover

    lifted = scenario.lift(env, env.dr_drills, broken)
    assert lifted == {"region": PRIMARY, "started": 4, "serving": SECONDARY}
    wait_for(lambda: all(processes.is_alive(p) for p in _pids(regional, PRIMARY)), what="the region's processes")
    assert regional.regions() == {"names": [PRIMARY, SECONDARY], "active": SECONDARY, "down": []}
    assert scenario.lift(env, env.dr_drills, broken) is None


def test_an_abort_brings_the_region_back_and_serves_from_it_again(regional: Sandbox) -> None:
    env = load_environment("sandbox")
    scenario = RegionFailure()
    broken = scenario.inject(env, env.dr_drills)
    undone = scenario.abort(env, env.dr_drills, broken)
    assert undone == {"outcome": f"brought back {PRIMARY}; serving from {PRIMARY}"}
    assert all(_served(regional, s) == (200, PRIMARY) for s in DEPLOYED)
    # An inject that died before saying what it broke: the abort still finds the region down.
    regional.region_down(PRIMARY)
    assert scenario.abort(env, env.dr_drills, {})["outcome"] == f"brought back {PRIMARY}; serving from {PRIMARY}"
    assert regional.regions()["down"] == []


def test_nothing_is_broken_when_a_service_is_not_healthy_in_the_standby(regional: Sandbox) -> None:
    env = load_environment("sandbox")
    regional.stop_supervisor()
    analytics = regional.status()["services"]["analytics"]["live"]["instances"]
    for instance in (i for i in analytics if i["region"] == SECONDARY):
        regional.kill_instance("analytics", instance["instance"])
    with pytest.raises(ScenarioUnsupported, match="analytics not healthy in the standby region us-east1"):
        RegionFailure().inject(env, env.dr_drills)
    assert regional.regions()["down"] == [] and _served(regional) == (200, PRIMARY)


def test_a_single_region_has_nowhere_to_fail_over_to(settings: SandboxSettings, monkeypatch) -> None:
    sb = _start(settings, monkeypatch)
    try:
        env = load_environment("sandbox")
        with pytest.raises(ScenarioUnsupported, match="no standby region up"):
            RegionFailure().inject(env, env.dr_drills)
        assert sb.regions()["down"] == []
    finally:
        sb.down()
