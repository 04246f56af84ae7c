"""The drills' scenarios by name: each breaks something for real (``inject``), says when the break was
noticed (``detected``) and when its recovery is done (``recover``), undoes it whatever it takes
(``abort``), ends what the break left in place once the drill is over (``lift``: None when nothing
was), and adds its own findings to the report. ``detected`` and ``recover`` answer None while
the answer is "not yet": the drill looks again, deferred, until its limit; ``recover`` keeps what it
has done in ``progress``, handed back to it on the next look.
"""

from __future__ import annotations

from typing import Any, Protocol

from varai_deploy.config import DRILL_SCENARIOS, DrillPolicy, EnvironmentConfig

Figures = dict[str, Any]


class ScenarioUnsupported(RuntimeError):
    """The environment's platform cannot do what the scenario breaks or watches: nothing was broken."""


def platform_for(env: EnvironmentConfig, scenario: str, methods: tuple[str, ...]) -> Any:
    """The environment's platform, if it has every method the scenario needs."""
    from varai_deploy.platforms import get_platform

    platform = get_platform(env)
    missing = [m for m in methods if not hasattr(platform, m)]
    if missing:
        raise ScenarioUnsupported(
            f"{env.name}'s platform ({type(platform).__name__}) has no {', '.join(missing)}: no {scenario} drill there"
        )
    return platform


def answers_healthy(url: str, service: str) -> bool:
    """One health check of a revision or instance on its own URL (not through the gateway)."""
    import requests

    from varai_deploy.services import SERVICES

    try:
        return requests.get(url + SERVICES[service].health_path, timeout=2).status_code == 200
    except requests.RequestException:
        return False


class Scenario(Protocol):
    name: str
    #: Does recovering from it take a verified backup within the RPO?
    needs_backup: bool

    def inject(self, env: EnvironmentConfig, policy: DrillPolicy) -> Figures: ...

    def detected(
        self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]
    ) -> dict[str, Any] | None: ...

    def recover(
        self, env: EnvironmentConfig, policy: DrillPolicy, broken: Figures, progress: Figures
    ) -> Figures | None: ...

    def abort(self, env: EnvironmentConfig, policy: DrillPolicy, broken: Figures) -> Figures: ...

    def lift(self, env: EnvironmentConfig, policy: DrillPolicy, broken: Figures) -> Figures | None: ...

    def findings(self, steps: dict[str, Figures]) -> Figures: ...


def scenario(name: str) -> Scenario:
    from varai_deploy.drills.complete_outage import CompleteOutage
    from varai_deploy.drills.data_loss import DataLoss
    from varai_deploy.drills.region_failure import RegionFailure
    from varai_deploy.drills.service_failure import ServiceFailure

    known = {s.name: s for s in (DataLoss(), ServiceFailure(), RegionFailure(), CompleteOutage())}
    assert set(known) == set(DRILL_SCENARIOS), "every scenario the config allows has its module"
    if name not in known:
        raise ValueError(f"unknown drill scenario {name!r}; known: {', '.join(DRILL_SCENARIOS)}")
    return known[name]
