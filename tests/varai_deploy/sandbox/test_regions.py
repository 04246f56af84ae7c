"""Two regions on a real sandbox: the gateway serves from one, the other stands by; a region lost for
real stays lost (nothing restarts it) until it is brought back, and a failover moves users in one
routing change."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest

from tests.support.sandbox import deploy, request, wait_for, wait_listening
from varai_deploy.sandbox import Sandbox, SandboxError, SandboxSettings, processes
from varai_deploy.services import SERVICES

PRIMARY, SECONDARY = "us-central1", "us-east1"
SERVICE = "recommendation"
HEALTH = SERVICES[SERVICE].health_path


@pytest.fixture
def regional(settings: SandboxSettings) -> Iterator[Sandbox]:
    sb = Sandbox(dataclasses.replace(settings, regions=(PRIMARY, SECONDARY)))
    try:
        sb.up()
        deploy(sb, SERVICE, "v1.0.0")
        for instance in _live(sb)["instances"]:
            wait_listening(sb.settings.url_for_port(instance["port"]))
        yield sb
    finally:
        sb.down()
        assert not processes.find_ours(settings.home)


def _live(sb: Sandbox) -> dict:
    return sb.status()["services"][SERVICE]["live"]


def _by_region(sb: Sandbox) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for instance in _live(sb)["instances"]:
        out.setdefault(instance["region"], []).append(instance)
    return out


def _served_region(sb: Sandbox) -> tuple[int, str | None]:
    status, headers, _ = request(sb.settings.gateway_url, HEALTH)
    return status, headers.get("x-served-region")


def test_a_live_revision_runs_in_every_region_and_the_gateway_sends_users_to_the_first(regional: Sandbox) -> None:
    s = regional.settings
    regions = _by_region(regional)
    assert {r: [i["instance"] for i in v] for r, v in regions.items()} == {PRIMARY: [0, 1], SECONDARY: [2, 3]}
    assert all(i["running"] for v in regions.values() for i in v)
    assert regional.regions() == {"names": [PRIMARY, SECONDARY], "active": PRIMARY, "down": []}
    route = json.loads(s.routes_file.read_text())["routes"][SERVICE]
    assert route["region"] == PRIMARY and route["instances"] == [i["port"] for i in regions[PRIMARY]]
    assert _served_region(regional) == (200, PRIMARY)
    targets = {
        t["labels"]["sandbox_instance"]: t["labels"]["region"] for t in json.loads(s.scrape_targets_file.read_text())
    }
    assert targets == {"0": PRIMARY, "1": PRIMARY, "2": SECONDARY, "3": SECONDARY}


def test_a_lost_region_stays_lost_until_failover_and_comes_back_as_standby(regional: Sandbox) -> None:
    before = {i["instance"]: i["pid"] for i in _live(regional)["instances"]}
    lost = regional.region_down(PRIMARY)
    assert sorted(k["instance"] for k in lost["killed"]) == [0, 1]
    assert not any(processes.is_alive(before[i]) for i in (0, 1))
    # Users see the outage: the front end still sends them to the lost region.
    assert _served_region(regional)[0] == 502
    # Nothing brings it back: not the supervisor, not a heal, not `up`.
    assert regional.heal() == []
    regional.up()
    assert [i["running"] for i in _by_region(regional)[PRIMARY]] == [False, False]
    assert regional.status()["regions"]["down"] == [PRIMARY]
    with pytest.raises(SandboxError, match="its region us-central1 is down"):
        regional.start_candidate(SERVICE, "v1.0.1")
    with pytest.raises(SandboxError, match="it is down"):
        regional.fail_over(PRIMARY)

    moved = regional.fail_over(SECONDARY)
    assert (moved["active"], moved["previous"]) == (SECONDARY, PRIMARY)
    assert _served_region(regional) == (200, SECONDARY)
    assert regional.fail_over(SECONDARY)["previous"] == SECONDARY  # idempotent

    back = regional.region_up(PRIMARY)
    assert sorted(s["instance"] for s in back["started"]) == [0, 1]
    for instance in _by_region(regional)[PRIMARY]:
        wait_listening(regional.settings.url_for_port(instance["port"]))
    assert regional.regions() == {"names": [PRIMARY, SECONDARY], "active": SECONDARY, "down": []}
    assert _served_region(regional) == (200, SECONDARY)  # it stands by
    assert regional.region_up(PRIMARY)["started"] == []  # idempotent
    # Failing back the moment it is up waits for it to accept connections: users never meet a refusal.
    regional.region_down(PRIMARY)
    regional.region_up(PRIMARY)
    assert regional.fail_over(PRIMARY)["previous"] == SECONDARY and _served_region(regional) == (200, PRIMARY)
    regional.fail_over(SECONDARY)
    # A release goes on from here: the new revision goes live in both regions, users stay in the secondary.
    deploy(regional, SERVICE, "v1.0.1")
    wait_for(lambda: all(i["running"] for i in _live(regional)["instances"]), what="the new revision's instances")
    assert len(_live(regional)["instances"]) == 4
    assert _served_region(regional) == (200, SECONDARY)


def test_a_failover_is_refused_while_a_live_service_has_no_instance_there(regional: Sandbox) -> None:
    regional.stop_supervisor()
    for instance in _by_region(regional)[SECONDARY]:
        regional.kill_instance(SERVICE, instance["instance"])
    with pytest.raises(SandboxError, match=f"no instance of {SERVICE} runs there"):
        regional.fail_over(SECONDARY)
    assert regional.regions()["active"] == PRIMARY
    assert _served_region(regional) == (200, PRIMARY)


def test_killing_without_naming_an_instance_kills_one_serving_users(regional: Sandbox) -> None:
    regional.fail_over(SECONDARY)
    killed = regional.kill_instance(SERVICE)
    assert (killed["instance"], killed["region"]) == (2, SECONDARY)
