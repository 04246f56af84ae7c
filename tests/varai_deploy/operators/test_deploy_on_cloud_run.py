"""DeployCandidateOperator on Cloud Run (the sandbox's local one, real revision processes): the deploy's wait
runs in the triggerer, and production deploys only the image that passed staging: the candidate's digest,
as Cloud Run resolved it, must be the one staging's ledger kept, or it is discarded before any traffic
reaches it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from tests.support.cloud_run import SERVICE, LocalCloudRun, created_by_terraform, image, local_cloud_run, platform_on
from varai_deploy.config import load_environment
from varai_deploy.ledger import FAILED, PASSED, Actor, Ledger
from varai_deploy.operators.blue_green import DeployCandidateOperator, SwitchTrafficOperator
from varai_deploy.platforms import PlatformError
from varai_deploy.sandbox.cloudrun_fake import state_dir
from varai_deploy.triggers.cloud_run import CloudRunServiceTrigger

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


def deploy(op: DeployCandidateOperator, context: dict) -> dict:
    """As Airflow runs it: ``execute`` defers, the trigger waits for Cloud Run's operation, the method resumes."""
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, CloudRunServiceTrigger) and deferred.value.method_name == "candidate_started"
    assert "token" not in json.dumps(trigger.serialize()[1]).lower()  # credentials are read in the triggerer
    event = asyncio.run(anext(trigger.run())).payload
    assert not deferred.value.kwargs  # the event carries it all (`dags test` resumes with the event alone)
    return op.candidate_started(context, event)


def test_the_deploy_waits_for_cloud_run_in_the_triggerer_and_resumes_with_the_candidate(
    cloud_run, ledgers, monkeypatch
):
    staging, production, context = ledgers
    passed_on_staging(cloud_run, monkeypatch, staging, "v1.9.0")
    op, platform = deploy_to_production(cloud_run, monkeypatch, production, context, "v1.9.0")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    # The change is sent before the worker lets go: Cloud Run makes the revision while nobody waits.
    name = f"{platform.service_name.format(service=SERVICE)}-v1-9-0"
    carry = deferred.value.trigger.carry  # what the resumed task reads, in the trigger's event
    assert carry["revision"] == name and carry["replaces"] == f"{platform.service_name.format(service=SERVICE)}-v1-0-0"
    svc = platform.hook.services.get_service(name=platform._service_name(SERVICE))
    assert svc.template.containers[0].image == image("v1.9.0")
    # A retry (the worker died after sending it) finds the change, applied or still being applied, and waits too.
    candidate = deploy(op, context)
    assert (candidate["version"], candidate["name"]) == ("v1.9.0", name)
    assert platform.current_revision(SERVICE)["version"] == "v1.0.0"  # at 0 %, under its tag
    assert production.revision(SERVICE, "v1.9.0").verdict == "pending"


def test_a_candidate_cloud_run_cannot_start_fails_with_cloud_runs_reason(cloud_run, ledgers, monkeypatch):
    staging, production, context = ledgers
    passed_on_staging(cloud_run, monkeypatch, staging, "v1.9.1")
    op, platform = deploy_to_production(cloud_run, monkeypatch, production, context, "v1.9.1")
    faults = cloud_run.settings.home / "faults.json"
    faults.write_text(json.dumps({"faults": {"v1.9.1": [{"mode": "crash"}]}}))
    try:
        with pytest.raises(PlatformError, match=r"deploying v1\.9\.1 as .*: Cloud Run refused it: "):
            deploy(op, context)
    finally:
        faults.unlink()
    assert platform.current_revision(SERVICE)["version"] == "v1.0.0"


def test_the_image_that_passed_staging_is_deployed(cloud_run, ledgers, monkeypatch):
    staging, production, context = ledgers
    on_staging = passed_on_staging(cloud_run, monkeypatch, staging, "v2.0.0")
    assert on_staging["digest"].startswith("sha256:")
    op, _ = deploy_to_production(cloud_run, monkeypatch, production, context, "v2.0.0")
    candidate = deploy(op, context)
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
            deploy(op, context)
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
        deploy(op, context)
    assert platform.current_revision(SERVICE)["version"] == "v1.0.0"


def test_a_switch_refuses_when_traffic_moved_after_its_candidate_was_deployed(cloud_run, ledgers, monkeypatch):
    """A change made while the candidate was checked (a split set by hand in an incident) is not undone."""
    staging, production, context = ledgers
    passed_on_staging(cloud_run, monkeypatch, staging, "v1.7.0")
    op, platform = deploy_to_production(cloud_run, monkeypatch, production, context, "v1.7.0")
    candidate = deploy(op, context)
    live = platform.current_revision(SERVICE)
    assert candidate["replaces"] == live["name"]
    svc = platform.hook.services.get_service(name=platform._service_name(SERVICE))
    svc.traffic = platform._traffic({live["name"]: 50, candidate["name"]: 50}, {candidate["name"]: "v1-7-0"})
    platform.hook.services.update_service(service=svc).result(timeout=60)

    switch = SwitchTrafficOperator(task_id="switch", environment="production", candidate=candidate)
    switch.env_config, switch.platform, switch.ledger = op.env_config, platform, production
    with pytest.raises(AirflowFailException, match=r"not moved to v1\.7\.0: nothing serves, not .* someone else"):
        switch.execute(context)
    statuses = platform.hook.services.get_service(name=platform._service_name(SERVICE)).traffic_statuses
    assert sorted(s.percent for s in statuses) == [50, 50]  # left as the hand set it
