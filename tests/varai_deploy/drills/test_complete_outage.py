"""A complete outage is recovered from what the project keeps elsewhere: it is refused, with nothing
broken, unless the ledger knows a good revision of every service (on the real ledger database)."""

from __future__ import annotations

import pytest

from varai_deploy.config import load_environment
from varai_deploy.drills.complete_outage import CompleteOutage, _terraform_release, known_good
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


def test_terraform_recreating_the_deleted_state_is_reported_applied_even_by_a_retry(tmp_path, monkeypatch):
    """A recover try that dies after Terraform applied loses its progress; the retry finds nothing to
    apply and must still say the state was recreated, by an earlier try (real Terraform, sandbox module)."""
    monkeypatch.setenv("VARAI_SANDBOX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_GATEWAY", '{"conn_type": "http", "host": "127.0.0.1", "port": 18080}')
    env = load_environment("sandbox")
    good = {s: {"version": "v1.4.1", "served_at": "2026-12-01T00:00:00+00:00"} for s in SERVICE_NAMES}
    broken = {"services": good, "terraform_state_deleted": str(env.terraform.state_path)}

    first = CompleteOutage._terraform(env, broken)
    assert (first["release"], first["applied"]) == ("v1.4.1", True) and "applied_by" not in first
    assert env.terraform.state_path.exists()
    retried = CompleteOutage._terraform(env, broken)
    assert (retried["applied"], retried["applied_by"]) == (True, "an earlier try")
    # A drill that deleted no state (another backend) reports an unchanged topology as such.
    untouched = CompleteOutage._terraform(env, {"services": good, "terraform_state_deleted": None})
    assert untouched["applied"] is False and "applied_by" not in untouched
