"""The drills' scenarios by name: each breaks something for real (``inject``), says when the break was
noticed (``detected``) and when its recovery is done (``recover``), undoes it whatever it takes
(``abort``), and adds its own findings to the report. ``detected`` and ``recover`` answer None while
the answer is "not yet": the drill looks again, deferred, until its limit; ``recover`` keeps what it
has done in ``progress``, handed back to it on the next look.
"""

from __future__ import annotations

from typing import Any, Protocol

from varai_deploy.config import DRILL_SCENARIOS, DrillPolicy, EnvironmentConfig

Figures = dict[str, Any]


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

    def findings(self, steps: dict[str, Figures]) -> Figures: ...


def scenario(name: str) -> Scenario:
    from varai_deploy.drills.complete_outage import CompleteOutage
    from varai_deploy.drills.data_loss import DataLoss
    from varai_deploy.drills.service_failure import ServiceFailure

    known = {s.name: s for s in (DataLoss(), ServiceFailure(), CompleteOutage())}
    assert set(known) == set(DRILL_SCENARIOS), "every scenario the config allows has its module"
    if name not in known:
        raise ValueError(f"unknown drill scenario {name!r}; known: {', '.join(DRILL_SCENARIOS)}")
    return known[name]
