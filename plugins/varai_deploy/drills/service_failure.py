"""The service-failure scenario: a live service process killed for real (SIGKILL, no goodbye).

The guide's recovery is automatic failover to healthy instances: the load balancer stops sending
requests to the dead instance and the platform replaces it. Nothing in this project acts: the drill
proves the platform's own supervision does it, and measures it. Noticed when the platform has
replaced the killed instance (its restart record names the killed process); recovered once that new
instance runs and answers its health check on its own port; the users' side is the steady state,
judged through the gateway as for every scenario. An abort asks the platform to heal now.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from varai_deploy.config import DrillPolicy, EnvironmentConfig
from varai_deploy.drills.scenarios import answers_healthy, platform_for


def _platform(env: EnvironmentConfig) -> Any:
    return platform_for(env, "service_failure", ("kill_instance", "instances", "restarts", "heal"))


def _replacement(platform: Any, service: str, broken: dict[str, Any]) -> dict[str, Any] | None:
    """The restart record of the killed process, if the platform has replaced it."""
    return next((r for r in platform.restarts(service) if r["old_pid"] == broken["pid"]), None)


class ServiceFailure:
    name = "service_failure"
    needs_backup = False

    def inject(self, env: EnvironmentConfig, policy: DrillPolicy) -> dict[str, Any]:
        platform = _platform(env)
        serving = [i for i in platform.instances(policy.service) if i["running"] and i.get("serving", True)]
        killed = platform.kill_instance(policy.service)
        return {
            **killed,
            "broken_at": killed["killed_at"],
            "instances_before": len(serving),
        }

    def detected(self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]) -> dict[str, Any] | None:
        replaced = _replacement(_platform(env), policy.service, broken)
        return (
            None
            if replaced is None
            else {"at": replaced["restarted_at"], "by": "the platform's supervisor", **replaced}
        )

    def recover(
        self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any], progress: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The replacement instance runs and answers its health check: the service has its capacity back."""
        platform = _platform(env)
        replaced = _replacement(platform, policy.service, broken)
        if replaced is None:
            return None
        instance = next(i for i in platform.instances(policy.service) if i["instance"] == broken["instance"])
        if not instance["running"] or instance["pid"] != replaced["pid"]:
            return None
        if not answers_healthy(instance["url"], policy.service):
            return None
        return {
            "restored_at": datetime.now(UTC).isoformat(),
            "replaced_at": replaced["restarted_at"],
            "service": policy.service,
            "instance": broken["instance"],
            "pid": replaced["pid"],
            "exit_code": replaced.get("exit_code"),
        }

    def abort(self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]) -> dict[str, Any]:
        healed = _platform(env).heal()
        if not healed:
            return {"outcome": "every instance runs: nothing to restart"}
        return {"outcome": f"restarted {len(healed)} instance(s)", "restarted": healed}

    def lift(self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]) -> None:
        """Nothing the break did outlasts the recovery."""
        return None

    def findings(self, steps: dict[str, dict]) -> dict[str, Any]:
        killed, recovered = steps["inject_failure"], steps["recover"]
        return {
            "killed": {k: killed[k] for k in ("service", "colour", "version", "instance", "pid")},
            "instances_before": killed["instances_before"],
            "exit_code": recovered.get("exit_code"),
        }
