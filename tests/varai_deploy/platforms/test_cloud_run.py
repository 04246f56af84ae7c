"""CloudRunPlatform against the sandbox's local Cloud Run (the run.v2 API, every request checked against its
discovery document, each revision a real service process), through the Google connection as a release uses it.

Each test has Cloud Run services of its own (``<service>-<id>``), created as Terraform creates them: a first
revision taking all traffic through ``LATEST``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from google.cloud import run_v2
from google.protobuf.field_mask_pb2 import FieldMask

from tests.support.cloud_run import (
    CONN_ID,
    PARENT,
    SERVICE,
    LocalCloudRun,
    cloud_name,
    created_by_terraform,
    image,
    local_cloud_run,
    platform_on,
)
from varai_deploy.hooks.cloud_run import EndpointCloudRunHook
from varai_deploy.ledger import FAILED, PASSED, Actor, Ledger
from varai_deploy.platforms.base import PlatformError, SwitchConflictError
from varai_deploy.platforms.cloud_run import CloudRunPlatform, revision_name
from varai_deploy.sandbox.cloudrun_fake import PROJECT

BY_REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION


@pytest.fixture(scope="module")
def cloud_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloudRun]:
    with local_cloud_run(tmp_path_factory.mktemp("cloudrun") / "sandbox") as stand_in:
        yield stand_in


@pytest.fixture
def platform(cloud_run: LocalCloudRun, monkeypatch) -> CloudRunPlatform:
    """A platform on services of this test's own, through an Airflow connection naming the API's address."""
    return platform_on(cloud_run, monkeypatch)


def service(platform: CloudRunPlatform, name: str = SERVICE) -> run_v2.Service:
    return platform.hook.services.get_service(name=f"{PARENT}/services/{cloud_name(platform, name)}")


def traffic(platform: CloudRunPlatform) -> list[tuple[str, int, str]]:
    """The traffic list Cloud Run holds: (revision, percent, tag), every entry pinned to a revision."""
    svc = service(platform)
    assert all(t.type_ == BY_REVISION for t in svc.traffic), svc.traffic
    return sorted((t.revision, t.percent, t.tag) for t in svc.traffic)


def served(url: str, n: int = 6) -> Counter:
    versions = Counter()
    for _ in range(n):
        answer = requests.get(url.rstrip("/") + "/health", timeout=10)
        assert answer.status_code == 200, answer.text
        versions[answer.headers["X-Served-Version"]] += 1
    return versions


def revisions(platform: CloudRunPlatform) -> set[str]:
    listed = platform.hook.revisions.list_revisions(parent=f"{PARENT}/services/{cloud_name(platform)}")
    return {r.name.rsplit("/", 1)[-1] for r in listed}


def test_a_candidate_starts_at_zero_under_its_version_tag_and_the_traffic_is_written_out(platform):
    created_by_terraform(platform)
    live = platform.current_revision(SERVICE)
    assert (live["version"], live["name"]) == ("v1.0.0", revision_name(cloud_name(platform), "v1.0.0"))

    candidate = platform.deploy_candidate(SERVICE, "v1.1.0", image("v1.1.0"))
    assert candidate["name"] == f"{cloud_name(platform)}-v1-1-0" and candidate["version"] == "v1.1.0"
    assert candidate["image"] == image("v1.1.0")
    # LATEST would have handed the new revision every request: the list names the live revision instead.
    assert traffic(platform) == [(live["name"], 100, ""), (candidate["name"], 0, "v1-1-0")]
    assert served(candidate["url"]) == {"v1.1.0": 6}
    assert served(service(platform).uri) == {"v1.0.0": 6}
    assert platform.current_revision(SERVICE)["version"] == "v1.0.0"

    again = platform.deploy_candidate(SERVICE, "v1.1.0", image("v1.1.0"))  # a retried task
    assert again == candidate and len(revisions(platform)) == 2


def test_a_split_pinned_by_hand_does_not_survive_a_deploy(platform):
    created_by_terraform(platform)
    first = platform.current_revision(SERVICE)["name"]
    other = platform.deploy_candidate(SERVICE, "v1.0.1", image("v1.0.1"))["name"]
    svc = service(platform)
    svc.traffic = [
        run_v2.TrafficTarget(type_=BY_REVISION, revision=first, percent=90),
        run_v2.TrafficTarget(type_=BY_REVISION, revision=other, percent=10),
    ]
    request = run_v2.UpdateServiceRequest(service=svc, update_mask=FieldMask(paths=["traffic"]))
    platform.hook.services.update_service(request=request).result(timeout=60)
    assert platform.current_revision(SERVICE) is None  # nobody has all of it

    candidate = platform.deploy_candidate(SERVICE, "v1.1.0", image("v1.1.0"))
    assert traffic(platform) == [(first, 100, ""), (candidate["name"], 0, "v1-1-0")]  # the 10 % is gone
    assert served(service(platform).uri, 10) == {"v1.0.0": 10}


def test_the_switch_moves_everything_and_the_previous_revision_keeps_a_url_for_a_rollback(platform):
    created_by_terraform(platform)
    live = platform.current_revision(SERVICE)
    candidate = platform.deploy_candidate(SERVICE, "v1.1.0", image("v1.1.0"))
    previous = platform.switch_traffic(SERVICE, candidate, expected=live)
    assert (previous["name"], previous["version"]) == (live["name"], "v1.0.0")
    assert served(service(platform).uri, 10) == {"v1.1.0": 10}
    assert traffic(platform) == [(live["name"], 0, "v1-0-0"), (candidate["name"], 100, "v1-1-0")]
    assert served(previous["url"]) == {"v1.0.0": 6}  # tagged: a URL a rollback checks before moving back
    now = platform.current_revision(SERVICE)
    assert (now["name"], now["version"]) == (candidate["name"], "v1.1.0")

    # The rollback's way back: the previous revision (tagged again if it lost its tag), then switched to.
    restored = platform.restore(SERVICE, previous)
    assert served(restored["url"]) == {"v1.0.0": 6}
    assert platform.switch_traffic(SERVICE, restored, expected=now)["name"] == candidate["name"]
    assert served(service(platform).uri) == {"v1.0.0": 6}


def test_a_switch_is_refused_and_moves_nothing_when_the_service_changed_meanwhile(platform, monkeypatch):
    created_by_terraform(platform)
    live = platform.current_revision(SERVICE)
    candidate = platform.deploy_candidate(SERVICE, "v1.1.0", image("v1.1.0"))

    # Not what was expected to serve: refused before anything is sent.
    with pytest.raises(SwitchConflictError, match="serves, not nothing"):
        platform.switch_traffic(SERVICE, candidate, expected=None)

    # Someone changes the service between the platform's read and its write: the etag refuses the write.
    services = platform.hook.services
    read = services.get_service

    def read_then_someone_else_writes(*args, **kwargs):
        svc = read(*args, **kwargs)
        theirs = read(*args, **kwargs)
        theirs.traffic = [
            run_v2.TrafficTarget(type_=BY_REVISION, revision=live["name"], percent=100, tag="theirs"),
            run_v2.TrafficTarget(type_=BY_REVISION, revision=candidate["name"], percent=0, tag="v1-1-0"),
        ]
        change = run_v2.UpdateServiceRequest(service=theirs, update_mask=FieldMask(paths=["traffic"]))
        services.update_service(request=change).result(timeout=60)
        return svc

    monkeypatch.setattr(services, "get_service", read_then_someone_else_writes)
    with pytest.raises(SwitchConflictError, match="changed since it was read"):
        platform.switch_traffic(SERVICE, candidate, expected=live)
    monkeypatch.undo()
    assert served(service(platform).uri, 10) == {"v1.0.0": 10}
    assert ("live", 100, "theirs") not in traffic(platform)  # their change stands, untouched
    assert (live["name"], 100, "theirs") in traffic(platform)


def test_a_candidate_that_cannot_start_fails_its_deploy_with_the_reason_and_a_retry_gets_a_fresh_revision(
    platform, cloud_run
):
    created_by_terraform(platform)
    faults = cloud_run.settings.home / "faults.json"
    faults.write_text(json.dumps({"faults": {"v6.6.6": [{"mode": "crash"}]}}))
    try:
        with pytest.raises(PlatformError, match="deploying v6.6.6 .*Cloud Run refused it: .*not ready"):
            platform.deploy_candidate(SERVICE, "v6.6.6", image("v6.6.6"))
    finally:
        faults.unlink()
    base = revision_name(cloud_name(platform), "v6.6.6")
    assert platform.current_revision(SERVICE)["version"] == "v1.0.0"
    assert served(service(platform).uri) == {"v1.0.0": 6}
    assert "failed to start and listen" in platform.diagnose({"service": SERVICE, "name": base})
    assert "failed to start and listen" in platform.stopped({"service": SERVICE, "name": base})
    # Cloud Run keeps the failed revision under its name: the next try is a revision of its own.
    retried = platform.deploy_candidate(SERVICE, "v6.6.6", image("v6.6.6"))
    assert retried["name"] == f"{base}-r2" and served(retried["url"]) == {"v6.6.6": 6}
    assert platform.stopped(retried) is None

    with pytest.raises(PlatformError, match="a version is built once"):
        platform.deploy_candidate(SERVICE, "v6.6.6", image("v6.6.6", "analytics"))


def test_retiring_untags_and_keeps_only_the_newest_ready_revisions_besides_what_serves(platform):
    created_by_terraform(platform)
    names = [revision_name(cloud_name(platform), "v1.0.0")]
    for version in ("v1.1.0", "v1.2.0", "v1.3.0"):
        live = platform.current_revision(SERVICE)
        candidate = platform.deploy_candidate(SERVICE, version, image(version))
        platform.switch_traffic(SERVICE, candidate, expected=live)
        platform.retire(SERVICE, live)
        names.append(candidate["name"])
        assert traffic(platform) == [(candidate["name"], 100, candidate["name"][-6:])]  # the retired one untagged
    # keep_revisions 2: v1.3.0 (serving) and v1.2.0 (the rollback target); the older ones are gone.
    assert revisions(platform) == set(names[-2:])
    assert traffic(platform) == [(names[-1], 100, "v1-3-0")]
    with pytest.raises(PlatformError, match="it serves all traffic"):
        platform.retire(SERVICE, platform.current_revision(SERVICE))


def test_a_discarded_candidate_loses_its_tag_and_never_serves(platform):
    created_by_terraform(platform)
    live = platform.current_revision(SERVICE)
    candidate = platform.deploy_candidate(SERVICE, "v1.1.0", image("v1.1.0"))
    platform.discard(SERVICE, candidate)
    assert traffic(platform) == [(live["name"], 100, "")]
    assert served(service(platform).uri) == {"v1.0.0": 6}


def test_known_revisions_are_those_that_served_and_did_not_fail_per_the_ledger(platform, ledger_conn):
    ledger = Ledger("sandbox")
    platform.ledger = ledger
    actor = Actor(dag_id="ai_discovery_release", run_id="manual__1", who="tester")
    created_by_terraform(platform)
    first = platform.current_revision(SERVICE)
    ledger.record_candidate(actor, first)
    ledger.record_switch(actor, SERVICE, first, None)
    ledger.record_verdict(actor, SERVICE, "v1.0.0", PASSED)
    for version, verdict in (("v1.1.0", FAILED), ("v1.2.0", None)):
        candidate = platform.deploy_candidate(SERVICE, version, image(version))
        ledger.record_candidate(actor, candidate)
        if verdict:
            ledger.record_switch(actor, SERVICE, candidate, first)
            ledger.record_verdict(actor, SERVICE, version, verdict)
    assert [r["version"] for r in platform.known_revisions(SERVICE)] == ["v1.0.0"]


def test_a_service_terraform_never_created_is_named_with_what_to_do(platform):
    with pytest.raises(PlatformError, match=r"no Cloud Run service .*Terraform creates it"):
        platform.check_capacity([SERVICE])
    created_by_terraform(platform)
    assert platform.check_capacity([SERVICE])["services"][SERVICE] == service(platform).uri


def test_a_connection_that_does_not_say_where_the_services_live_is_named(monkeypatch, cloud_run):
    extra = {"is_anonymous": True, "project": PROJECT, "api_endpoint": cloud_run.url}  # no location
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
    )
    lost = CloudRunPlatform(EndpointCloudRunHook(gcp_conn_id=CONN_ID))
    with pytest.raises(PlatformError, match=f"connection {CONN_ID} names no location"):
        lost.check_capacity([SERVICE])
