"""The region-failure scenario: the region users are served from lost for real, every process of the
services there killed and kept down, while the global front end still sends users to it.

The guide's recovery is a manual failover to the secondary region; here the project's automation
does what the on-call engineer would: check that every service answers its health check in the
standby region, then point the front end there in one routing change. Noticed when the steady state
is gone through the gateway (users get errors); recovered once the front end serves from the standby.
Refused before anything is broken when there is no standby region, or when a service has no healthy
instance there (failing over would only move the outage). Once the drill is over, the lost region is
brought back as the new standby (``lift``); an abort brings it back and serves from it again.
"""

from __future__ import annotations

import time
from typing import Any

from varai_deploy.config import DrillPolicy, EnvironmentConfig
from varai_deploy.drills.scenarios import ScenarioUnsupported, answers_healthy, platform_for

#: How long an abort waits for the region it brought back to answer before failing back to it.
BACK_UP_SECONDS = 30.0


def _platform(env: EnvironmentConfig) -> Any:
    return platform_for(
        env, "region_failure", ("regions", "region_down", "region_up", "fail_over", "instances", "current_revision")
    )


def unhealthy_in(platform: Any, env: EnvironmentConfig, region: str) -> list[str]:
    """The live services with no instance in ``region`` answering its health check on its own URL."""
    return [
        service
        for service in env.services
        if platform.current_revision(service) is not None
        and not any(
            i["region"] == region and i["running"] and answers_healthy(i["url"], service)
            for i in platform.instances(service)
        )
    ]


class RegionFailure:
    name = "region_failure"
    needs_backup = False

    def inject(self, env: EnvironmentConfig, policy: DrillPolicy) -> dict[str, Any]:
        platform = _platform(env)
        regions = platform.regions()
        lost = regions["active"]
        standby = next((r for r in regions["names"] if r not in (lost, *regions["down"])), None)
        if standby is None:
            raise ScenarioUnsupported(
                f"{env.name} serves from {lost} with no standby region up ({', '.join(regions['names'])}): "
                "nothing to fail over to; nothing was broken"
            )
        unready = unhealthy_in(platform, env, standby)
        if unready:
            raise ScenarioUnsupported(
                f"{', '.join(unready)} not healthy in the standby region {standby}: failing over would only move "
                "the outage; nothing was broken"
            )
        down = platform.region_down(lost)
        return {"broken_at": down["down_at"], "region": lost, "standby": standby, "killed": len(down["killed"])}

    def detected(self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]) -> dict[str, Any] | None:
        from varai_deploy.drills.steady_state import gone

        return gone(env, policy)

    def recover(
        self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any], progress: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The failover: once every live service answers in the standby, the front end is moved there."""
        platform = _platform(env)
        standby = broken["standby"]
        unready = unhealthy_in(platform, env, standby)
        if unready:
            progress["waiting_for"] = unready
            return None
        moved = platform.fail_over(standby)
        return {"restored_at": moved["at"], "failed_over_to": standby, "failed_over_from": moved["previous"]}

    def abort(self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]) -> dict[str, Any]:
        """Every region that is down brought back, and the front end on a region whose services answer:
        the one it is on if they do there, else the region that was lost, once it answers again."""
        platform = _platform(env)
        regions = platform.regions()
        for region in regions["down"]:
            platform.region_up(region)
        brought = regions["down"]
        active = regions["active"]
        home = broken.get("region") or active
        deadline = time.monotonic() + BACK_UP_SECONDS
        while unhealthy_in(platform, env, active):
            if active != home and not unhealthy_in(platform, env, home):
                platform.fail_over(home)
                return {"outcome": f"brought back {', '.join(brought) or 'nothing'}; serving from {home} again"}
            if time.monotonic() > deadline:
                return {"outcome": f"brought back {', '.join(brought) or 'nothing'}; {active} still does not answer"}
            time.sleep(0.5)
        return {"outcome": f"brought back {', '.join(brought) or 'nothing'}; serving from {active}"}

    def lift(self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]) -> dict[str, Any] | None:
        """The drill is over: the lost region comes back, standing by for the next failover."""
        platform = _platform(env)
        if broken["region"] not in platform.regions()["down"]:
            return None
        back = platform.region_up(broken["region"])
        return {"region": broken["region"], "started": len(back["started"]), "serving": platform.regions()["active"]}

    def findings(self, steps: dict[str, dict]) -> dict[str, Any]:
        lost, recovered = steps["inject_failure"], steps["recover"]
        return {
            "failed_over": {"from": lost["region"], "to": recovered["failed_over_to"], "killed": lost["killed"]},
        }
