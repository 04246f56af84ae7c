"""A complete outage is recovered from what the project keeps elsewhere: it is refused, with nothing
broken, unless the ledger knows a good revision of every service (on the real ledger database)."""

from __future__ import annotations

import pytest

from varai_deploy.config import load_environment
from varai_deploy.drills.complete_outage import _terraform_release, known_good
from varai_deploy.drills.scenarios import ScenarioUnsupported
from varai_deploy.ledger import FAILED, PASSED, Actor, Ledger
from varai_deploy.services import SERVICE_NAMES

RELEASE = Actor(dag_id="ai_discovery_release", run_id="manual__1", who="tester")


def released(ledger: Ledger, service: str, version: str, verdict: str) -> None:
    revision = {"service": service, "version": version, "name": "blue", "url": "", "image": f"img/{service}:{version}"}
    ledger.record_candidate(RELEASE, revision)
    ledger.record_switch(RELEASE, service, revision, None)
    ledger.record_verdict(RELEASE, service, version, verdict)


def test_without_a_good_revision_of_every_service_nothing_may_be_broken(ledger_conn):
    ledger, env = Ledger("sandbox"), load_environment("sandbox")
    for service in SERVICE_NAMES[:-1]:
        released(ledger, service, "v1.4.1", PASSED)
    with pytest.raises(ScenarioUnsupported, match=f"no good revision of {SERVICE_NAMES[-1]}.*Nothing was broken"):
        known_good(env)


def test_the_last_good_revision_of_each_service_is_what_comes_back(ledger_conn):
    ledger, env = Ledger("sandbox"), load_environment("sandbox")
    for service in SERVICE_NAMES:
        released(ledger, service, "v1.4.1", PASSED)
    released(ledger, "analytics", "v1.4.2", PASSED)
    released(ledger, "recommendation", "v1.4.3", FAILED)  # served, then failed its analysis: not good
    good = known_good(env)
    assert {s: g["version"] for s, g in good.items()} == {
        **{s: "v1.4.1" for s in SERVICE_NAMES},
        "analytics": "v1.4.2",
    }
    assert good["analytics"]["image"] == "img/analytics:v1.4.2"
    # Terraform recreates the topology of the good release served last.
    assert _terraform_release(good) == "v1.4.2"
