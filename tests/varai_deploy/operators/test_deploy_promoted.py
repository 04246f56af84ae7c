"""Production deploys only the image that passed staging: the candidate's digest, as the (local) Cloud Run
resolved it, must be the one staging's ledger kept, or it is discarded before any traffic reaches it."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tests.support.cloud_run import SERVICE, LocalCloudRun, created_by_terraform, image, local_cloud_run, platform_on
from varai_deploy.config import load_environment
from varai_deploy.ledger import FAILED, PASSED, Actor, Ledger
from varai_deploy.operators.blue_green import DeployCandidateOperator
from varai_deploy.sandbox.cloudrun_fake import state_dir

STAGING_RUN = Actor(dag_id="ai_discovery_release", run_id="release__staging", who="ci")


@pytest.fixture(scope="module")
def cloud_run(tmp_path_factory):
    with local_cloud_run(tmp_path_factory.mktemp("promoted") / "sandbox") as stand_in:
        yield stand_in


@pytest.fixture
def ledgers(ledger_conn, monkeypatch) -> tuple[Ledger, Ledger, dict]:
    """Staging's and production's ledgers (one database, as Cloud SQL can hold both), and a production
    run's task context holding production's lock."""
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_STAGING_LEDGER", json.dumps(ledger_conn))
    production = Ledger("production")
    dag_run = SimpleNamespace(dag_id="ai_discovery_release", run_id="release__production", triggering_user_name="rm")
    production.acquire(Actor.from_context({"dag_run": dag_run}), "release", lambda d, r: True)
    return Ledger("staging", load_environment("staging").ledger_conn_id), production, {"dag_run": dag_run}


def passed_on_staging(cloud_run: LocalCloudRun, monkeypatch, staging: Ledger, version: str) -> dict:
    """``version`` released to staging's own Cloud Run services and passed there."""
    platform = platform_on(cloud_run, monkeypatch)
    created_by_terraform(platform)
    revision = platform.deploy_candidate(SERVICE, version, image(version))
    staging.record_candidate(STAGING_RUN, revision)
    staging.record_switch(STAGING_RUN, SERVICE, revision, None)
    staging.record_verdict(STAGING_RUN, SERVICE, version, PASSED)
    return revision


def deploy_to_production(cloud_run, monkeypatch, production: Ledger, context: dict, version: str):
    platform = platform_on(cloud_run, monkeypatch)
    created_by_terraform(platform)
    op = DeployCandidateOperator(
        task_id="deploy",
        environment="production",
        service=SERVICE,
        version=version,
        infra={"images": {SERVICE: image(version)}},
    )
    op.env_config = dataclasses.replace(load_environment("production"), services=(SERVICE,))
    op.platform, op.ledger = platform, production
    return op, platform


def test_the_image_that_passed_staging_is_deployed(cloud_run, ledgers, monkeypatch):
    staging, production, context = ledgers
    on_staging = passed_on_staging(cloud_run, monkeypatch, staging, "v2.0.0")
    assert on_staging["digest"].startswith("sha256:")
    op, _ = deploy_to_production(cloud_run, monkeypatch, production, context, "v2.0.0")
    candidate = op.execute(context)
    assert candidate["digest"] == on_staging["digest"]
    assert production.revision(SERVICE, "v2.0.0").digest == on_staging["digest"]


def test_a_tag_pushed_again_after_staging_is_discarded_before_any_traffic(cloud_run, ledgers, monkeypatch):
    staging, production, context = ledgers
    on_staging = passed_on_staging(cloud_run, monkeypatch, staging, "v2.1.0")
    pushed_again = "sha256:" + "f" * 64
    (state_dir(cloud_run.settings.home) / "registry.json").write_text(json.dumps({image("v2.1.0"): pushed_again}))
    try:
        op, platform = deploy_to_production(cloud_run, monkeypatch, production, context, "v2.1.0")
        with pytest.raises(AirflowFailException) as refused:
            op.execute(context)
    finally:
        (state_dir(cloud_run.settings.home) / "registry.json").unlink()
    assert str(refused.value) == (
        f"{SERVICE} v2.1.0 resolved to {pushed_again} here, not to {on_staging['digest']} that passed staging: "
        "not the same image; discarded before any traffic reached it"
    )
    assert platform.current_revision(SERVICE)["version"] == "v1.0.0"  # all traffic where it was
    svc = platform.hook.services.get_service(name=platform._service_name(SERVICE))
    assert [t.tag for t in svc.traffic if t.tag] == []  # no tag URL left to reach it either
    record = production.revision(SERVICE, "v2.1.0")
    assert (record.verdict, record.digest) == (FAILED, pushed_again)


def test_a_version_staging_kept_no_digest_of_is_refused(cloud_run, ledgers, monkeypatch):
    staging, production, context = ledgers
    revision = {"service": SERVICE, "version": "v2.2.0", "name": "r", "url": "", "image": image("v2.2.0")}
    staging.record_candidate(STAGING_RUN, revision)  # a record from before digests were kept
    staging.record_verdict(STAGING_RUN, SERVICE, "v2.2.0", PASSED)
    op, platform = deploy_to_production(cloud_run, monkeypatch, production, context, "v2.2.0")
    with pytest.raises(AirflowFailException, match="not to a digest that passed staging"):
        op.execute(context)
    assert platform.current_revision(SERVICE)["version"] == "v1.0.0"
