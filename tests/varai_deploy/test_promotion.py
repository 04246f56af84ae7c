"""Production releases only what passed staging (``promoted_from``), read from staging's ledger (the real
ledger database) and a widget build compared byte for byte through its manifest digest."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from varai_deploy.config import load_environment
from varai_deploy.ledger import FAILED, PASSED, WIDGETS_BUILT, Actor, Ledger
from varai_deploy.services import SERVICE_NAMES
from varai_deploy.validation import ValidationError, check_promotion
from varai_deploy.widgets import build_release

STAGING_RUN = Actor(dag_id="ai_discovery_release", run_id="release__v1.4.2__staging", who="ci")
SERVICES = list(SERVICE_NAMES)


@pytest.fixture
def staging(ledger_conn, monkeypatch) -> Ledger:
    """Staging's ledger (its own connection id, as staging.yaml names it) on the test's database."""
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_STAGING_LEDGER", json.dumps(ledger_conn))
    return Ledger("staging", load_environment("staging").ledger_conn_id)


def released(
    ledger: Ledger, service: str, version: str, verdict: str = PASSED, reason: str = "", digest: str = "sha256:d"
) -> None:
    name = f"{service}-staging-{version}"
    revision = {"service": service, "version": version, "name": name, "url": "", "image": "i", "digest": digest}
    ledger.record_candidate(STAGING_RUN, revision)
    ledger.record_switch(STAGING_RUN, service, revision, None)
    ledger.record_verdict(STAGING_RUN, service, version, verdict, reason)


def widgets_built(ledger: Ledger, version: str, digest: str | None = None) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        digest = digest or build_release(version, Path(tmp) / "build").digest()
    ledger.record(STAGING_RUN, WIDGETS_BUILT, None, version, {"manifest": digest})
    return digest


def test_a_version_that_passed_staging_with_the_same_widgets_may_go_to_production(staging):
    for service in SERVICES:
        released(staging, service, "v1.4.2")
    digest = widgets_built(staging, "v1.4.2")
    rests_on = check_promotion(load_environment("production"), "v1.4.2", SERVICES, ["html", "shopify"])
    assert rests_on["from"] == "staging" and set(rests_on["services"]) == set(SERVICES)
    assert rests_on["services"]["analytics"] == {"run_id": STAGING_RUN.run_id, "image": "i", "digest": "sha256:d"}
    assert rests_on["widgets"] == {"manifest": digest, "run_id": STAGING_RUN.run_id}


def test_a_version_staging_never_saw_is_refused_naming_every_missing_piece(staging):
    with pytest.raises(ValidationError) as refused:
        check_promotion(load_environment("production"), "v9.9.9", ["analytics", "api-gateway"], ["html"])
    assert str(refused.value) == (
        "v9.9.9 cannot go to production before it passed staging: analytics v9.9.9 was never deployed to "
        "staging; api-gateway v9.9.9 was never deployed to staging; staging never built the widgets of v9.9.9"
    )


def test_a_service_that_failed_or_was_rolled_back_on_staging_is_named_with_why(staging):
    released(staging, "analytics", "v1.5.0")
    released(staging, "recommendation", "v1.5.0", FAILED, "error rate 12% over 300s")
    with pytest.raises(ValidationError, match=r"recommendation v1\.5\.0 did not pass on staging \(failed: error rate"):
        check_promotion(load_environment("production"), "v1.5.0", ["analytics", "recommendation"])


def test_a_service_staging_kept_no_image_digest_of_is_refused(staging):
    released(staging, "analytics", "v1.5.1", digest="")  # recorded before digests were kept
    with pytest.raises(ValidationError, match=r"staging kept no image digest of analytics v1\.5\.1"):
        check_promotion(load_environment("production"), "v1.5.1", ["analytics"])


def test_widgets_that_build_differently_from_stagings_are_refused_with_both_digests(staging):
    for service in SERVICES:
        released(staging, service, "v1.6.0")
    widgets_built(staging, "v1.6.0", digest="sha256:" + "0" * 64)  # staging built other sources
    with pytest.raises(ValidationError, match=r"the widgets of v1\.6\.0 build as sha256:[0-9a-f]{64} here, not as"):
        check_promotion(load_environment("production"), "v1.6.0", SERVICES, ["magento"])
    # A backend-only release publishes no widget: only the services are checked.
    assert check_promotion(load_environment("production"), "v1.6.0", SERVICES, [])["widgets"] == {}


def test_environments_without_the_rule_are_not_checked(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_VARAI_STAGING_LEDGER", raising=False)  # nothing is read
    assert check_promotion(load_environment("sandbox"), "v1.0.0", SERVICES, ["html"]) == {}
    assert check_promotion(load_environment("staging"), "v1.0.0", SERVICES, ["html"]) == {}


def test_an_unreadable_staging_ledger_refuses_rather_than_waves_through(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_VARAI_STAGING_LEDGER",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 9, "login": "x", "password": "y"}),
    )
    with pytest.raises(ValidationError, match="staging's ledger, which production releases rest on, cannot be read"):
        check_promotion(load_environment("production"), "v1.0.0", ["analytics"])


def test_the_approver_sees_each_service_stagings_run_and_image_digest(staging):
    from varai_deploy.operators.approval import ReleaseApprovalOperator

    released(staging, "analytics", "v1.7.0", digest="sha256:abc")
    released(staging, "recommendation", "v1.7.0", FAILED, "p95 6s")
    approval = ReleaseApprovalOperator(
        task_id="approval",
        environment="production",
        version="v1.7.0",
        services=["analytics", "recommendation", "ai-discovery"],
    )
    assert approval._evidence().splitlines() == [
        f"analytics: passed on staging in run {STAGING_RUN.run_id}, image sha256:abc",
        "recommendation: NOT passed on staging (failed)",
        "ai-discovery: NOT passed on staging (never deployed there)",
    ]
