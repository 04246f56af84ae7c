"""The ledger of the integration sandbox, set to what is live: each live revision recorded as deployed,
served and passed, as a release through the DAG leaves it (what a recovery from the ledger needs)."""

from __future__ import annotations

from varai_deploy.ledger import PASSED, Actor, Ledger
from varai_deploy.services import SERVICE_NAMES

SETUP = Actor(dag_id="tests", run_id="setup__live_revisions_passed", who="tests")


def record_live_as_good(sandbox) -> dict[str, str]:
    """Every live revision of the sandbox recorded as good in its ledger; ``{service: version}``."""
    ledger, recorded = Ledger("sandbox"), {}
    for service in SERVICE_NAMES:
        live = sandbox.status()["services"][service]["live"]
        assert live and live["running"], f"{service} has no running live revision to record"
        revision = {
            "service": service,
            "version": live["version"],
            "name": live["colour"],
            "url": live["url"],
            "image": live.get("image") or f"sandbox.local/varai/{service}:{live['version']}",
        }
        ledger.record_candidate(SETUP, revision)
        ledger.record_switch(SETUP, service, revision, None)
        ledger.record_verdict(SETUP, service, live["version"], PASSED)
        recorded[service] = live["version"]
    return recorded
