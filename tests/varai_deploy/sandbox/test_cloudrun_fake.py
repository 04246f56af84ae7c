"""The sandbox's local Cloud Run: the run.v2 stand-in started for real, driven with the real ``google.cloud.run_v2``
clients over REST with anonymous credentials (as ``CloudRunPlatform`` drives it), each revision a real service
process: blue-green under a tag, checked switches, real splits, revisions, failures, metrics and a restart."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from google.api_core import exceptions
from google.cloud import run_v2
from google.protobuf.field_mask_pb2 import FieldMask
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cloud_run import PARENT, LocalCloudRun, image, local_cloud_run
from tests.support.sandbox import wait_for
from tests.support.statuspage_stack import free_port
from varai_deploy import google_contract
from varai_deploy.sandbox import processes
from varai_deploy.sandbox.cloudrun import COMPONENT, CONN_ID
from varai_deploy.sandbox.cloudrun_fake import LOCATION, Picker, make_handler, state_dir
from varai_deploy.sandbox.google_identity import ACCOUNT
from varai_deploy.sandbox.serving import Server
from varai_deploy.sandbox.settings import SandboxSettings

CONTRACT = google_contract.load("run", "v2")
BY_REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
SUCCEEDED = run_v2.Condition.State.CONDITION_SUCCEEDED
FAILED = run_v2.Condition.State.CONDITION_FAILED
TIMEOUT = 60


@pytest.fixture(scope="module")
def cloud_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloudRun]:
    with local_cloud_run(tmp_path_factory.mktemp("cloudrun") / "sandbox") as stand_in:
        yield stand_in


@pytest.fixture
def clients(cloud_run: LocalCloudRun) -> tuple[run_v2.ServicesClient, run_v2.RevisionsClient]:
    return cloud_run.clients()


def new_service(clients, version: str = "v1.0.0", app: str = "recommendation", public: bool = True) -> run_v2.Service:
    """A service of the test's own, its first revision ``<id>-<version>`` serving 100 % through LATEST;
    callable by anyone unless not ``public`` (then IAM decides: an ID token is needed)."""
    services, _ = clients
    service_id = f"t-{uuid.uuid4().hex[:8]}"
    template = run_v2.RevisionTemplate(
        revision=revision_of(service_id, version), containers=[run_v2.Container(image=image(version, app))]
    )
    service = run_v2.Service(template=template, invoker_iam_disabled=public)
    operation = services.create_service(parent=PARENT, service_id=service_id, service=service)
    return operation.result(timeout=TIMEOUT)


def revision_of(service_id: str, version: str) -> str:
    return f"{service_id}-{version.replace('.', '-')}"


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def deploy_candidate(clients, svc: run_v2.Service, version: str, app: str = "recommendation") -> run_v2.Service:
    """What the platform does: the live revision at 100 %, the candidate at 0 % under a tag, in one patch."""
    services, _ = clients
    live = short(svc.latest_ready_revision)
    candidate = revision_of(short(svc.name), version)
    svc.template.revision = candidate
    svc.template.containers[0].image = image(version, app)
    svc.traffic = [
        run_v2.TrafficTarget(type_=BY_REVISION, revision=live, percent=100),
        run_v2.TrafficTarget(type_=BY_REVISION, revision=candidate, percent=0, tag=version.replace(".", "-")),
    ]
    request = run_v2.UpdateServiceRequest(service=svc, update_mask=FieldMask(paths=["template", "traffic"]))
    return services.update_service(request=request).result(timeout=TIMEOUT)


def set_traffic(clients, svc: run_v2.Service, percents: dict[str, int], tags: dict[str, str] | None = None):
    services, _ = clients
    tags = tags or {}
    svc.traffic = [
        run_v2.TrafficTarget(type_=BY_REVISION, revision=r, percent=percents.get(r, 0), tag=tags.get(r, ""))
        for r in dict.fromkeys([*percents, *tags])
    ]
    request = run_v2.UpdateServiceRequest(service=svc, update_mask=FieldMask(paths=["traffic"]))
    return services.update_service(request=request).result(timeout=TIMEOUT)


def served(url: str, n: int = 1, path: str = "/health") -> Counter:
    """The versions that answered ``n`` requests to ``url``."""
    versions = Counter()
    for _ in range(n):
        answer = requests.get(url + path, timeout=10)
        assert answer.status_code == 200, answer.text
        versions[answer.headers["X-Served-Version"]] += 1
    return versions


def tag_uri(svc: run_v2.Service, tag: str) -> str:
    return next(s.uri for s in svc.traffic_statuses if s.tag == tag)


def error_of(answer: requests.Response) -> dict:
    body = answer.json()
    assert set(body) == {"error"}, body
    return body["error"]


# -- the component ---------------------------------------------------------------------------------------
def test_the_component_is_offset_12_with_the_deploy_accounts_key_naming_project_and_location(tmp_path):
    settings = SandboxSettings(home=tmp_path / "sandbox", components=())
    assert COMPONENT.name == "cloudrun" and COMPONENT.offset == 12 and COMPONENT.shutdown is not None
    port = settings.component_port_base + COMPONENT.offset
    assert port == 18072
    (conn,) = COMPONENT.connections(settings, port).values()
    extra = dict(conn["extra"])
    key = json.loads(extra.pop("keyfile_dict"))
    assert conn["conn_type"] == "google_cloud_platform" and "is_anonymous" not in extra
    assert extra == {
        "project": "ml-datadriven-recos",
        "location": "us-central1",
        "api_endpoint": "http://127.0.0.1:18072",
    }
    assert key["type"] == "service_account" and key["client_email"] == ACCOUNT
    assert key["token_uri"] == "http://127.0.0.1:18072/token"  # its tokens come from this stand-in, not Google
    assert key == json.loads(
        json.loads(json.dumps(COMPONENT.connections(settings, port)))[CONN_ID]["extra"]["keyfile_dict"]
    )
    argv = COMPONENT.marker(settings, port).argv()
    assert argv[1:3] == ["-m", "varai_deploy.sandbox.cloudrun_fake"]
    assert dict(zip(argv[3::2], argv[4::2], strict=True)) == {
        "--home": str(settings.home),
        "--host": "127.0.0.1",
        "--port": "18072",
    }


# -- blue-green ---------------------------------------------------------------------------------------------
def test_a_service_then_a_candidate_at_zero_under_a_tag_that_only_its_tag_url_reaches(cloud_run, clients):
    svc = new_service(clients)
    first = revision_of(short(svc.name), "v1.0.0")
    assert short(svc.latest_ready_revision) == short(svc.latest_created_revision) == first
    assert svc.terminal_condition.state == SUCCEEDED and not svc.reconciling
    assert svc.generation == svc.observed_generation == 1
    assert [(s.type_, s.percent) for s in svc.traffic_statuses] == [(LATEST, 100)]
    assert svc.uri == f"{cloud_run.url}/run/{short(svc.name)}"
    assert served(svc.uri, 5) == {"v1.0.0": 5}

    updated = deploy_candidate(clients, svc, "v1.1.0")
    candidate = revision_of(short(svc.name), "v1.1.0")
    assert short(updated.latest_created_revision) == short(updated.latest_ready_revision) == candidate
    assert updated.generation == 2 and updated.etag != svc.etag
    assert [(s.revision, s.percent, s.tag) for s in updated.traffic_statuses] == [
        (first, 100, ""),
        (candidate, 0, "v1-1-0"),
    ]
    assert tag_uri(updated, "v1-1-0") == f"{cloud_run.url}/run/v1-1-0---{short(svc.name)}"
    assert served(tag_uri(updated, "v1-1-0"), 10) == {"v1.1.0": 10}
    assert served(updated.uri, 10) == {"v1.0.0": 10}
    answer = requests.get(tag_uri(updated, "v1-1-0") + "/recommendations?face_shape=oval", timeout=10)
    assert answer.status_code == 200 and answer.json()["version"] == "v1.1.0"  # paths and queries go through
    assert answer.headers["X-Served-Service"] == "recommendation"  # the service's own headers come back
    assert answer.headers["X-Served-Colour"] in ("blue", "green")
    assert requests.get(f"{cloud_run.url}/run/nope---{short(svc.name)}/health", timeout=10).status_code == 404


def test_a_switch_with_the_etag_moves_traffic_and_one_with_a_stale_etag_moves_nothing(clients):
    services, _ = clients
    svc = deploy_candidate(clients, new_service(clients), "v1.1.0")
    first, candidate = (s.revision for s in svc.traffic_statuses)
    read = services.get_service(name=svc.name)
    stale = services.get_service(name=svc.name)

    switched = set_traffic(clients, read, {candidate: 100}, {first: "v1-0-0", candidate: "v1-1-0"})
    assert {s.revision: s.percent for s in switched.traffic_statuses} == {first: 0, candidate: 100}
    assert served(switched.uri, 5) == {"v1.1.0": 5}
    assert served(tag_uri(switched, "v1-0-0"), 3) == {"v1.0.0": 3}  # the old one keeps a URL to roll back to

    with pytest.raises(exceptions.Conflict) as refused:
        set_traffic(clients, stale, {first: 100})
    assert refused.value.response.json()["error"]["status"] == "ABORTED"
    assert "etag" in refused.value.message
    after = services.get_service(name=svc.name)
    assert after.etag == switched.etag and after.generation == switched.generation
    assert list(after.traffic_statuses) == list(switched.traffic_statuses)
    assert served(after.uri, 5) == {"v1.1.0": 5}


def test_a_50_50_split_really_splits_and_round_robin_keeps_the_proportions_exact(clients):
    svc = deploy_candidate(clients, new_service(clients), "v1.1.0")
    first, candidate = (s.revision for s in svc.traffic_statuses)
    split = set_traffic(clients, svc, {first: 50, candidate: 50})
    assert served(split.uri, 100) == {"v1.0.0": 50, "v1.1.0": 50}
    picker = Picker()
    picks = [picker.pick("s", (("a", 90), ("b", 10))) for _ in range(100)]
    assert Counter(picks) == {"a": 90, "b": 10} and "b" in picks[:10]  # interleaved, not 90 then 10


# -- revisions -------------------------------------------------------------------------------------------------
def test_revisions_list_get_and_delete_refused_while_serving_or_tagged(cloud_run, clients):
    _, revisions = clients
    svc = deploy_candidate(clients, new_service(clients), "v1.1.0")
    first, candidate = (s.revision for s in svc.traffic_statuses)
    listed = list(revisions.list_revisions(parent=svc.name))
    assert [short(r.name) for r in listed] == [candidate, first]  # newest first
    found = revisions.get_revision(name=f"{svc.name}/revisions/{first}")
    assert found.service == svc.name and found.containers[0].image == image("v1.0.0")
    assert {c.type_: c.state for c in found.conditions}["Ready"] == SUCCEEDED

    for name, why in ((first, "serving traffic"), (candidate, "traffic tag 'v1-1-0'")):
        with pytest.raises(exceptions.BadRequest, match=why) as refused:
            revisions.delete_revision(name=f"{svc.name}/revisions/{name}")
        assert refused.value.response.json()["error"]["status"] == "FAILED_PRECONDITION"

    switched = set_traffic(clients, svc, {candidate: 100})  # the first one serves no more and has no tag
    pid = cloud_run.revision_record(first)["process"]["pid"]
    deleted = revisions.delete_revision(name=f"{svc.name}/revisions/{first}").result(timeout=TIMEOUT)
    assert short(deleted.name) == first
    assert not processes.is_alive(pid)
    with pytest.raises(exceptions.NotFound):
        revisions.get_revision(name=f"{svc.name}/revisions/{first}")
    assert [short(r.name) for r in revisions.list_revisions(parent=svc.name)] == [candidate]
    assert served(switched.uri, 3) == {"v1.1.0": 3}


def test_a_revision_name_used_by_another_template_is_refused(clients):
    services, _ = clients
    svc = new_service(clients)
    svc.template.containers[0].image = image("v2.0.0")  # same template.revision, another image
    with pytest.raises(exceptions.Conflict, match="with different configuration already exists"):
        services.update_service(service=svc)
    assert services.get_service(name=svc.name).generation == 1


# -- what Cloud Run refuses ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"bogus": 1}, "bogus", "unknown field (GoogleCloudRunV2Service has"),
        ({"ingress": "INGRESS_EVERYWHERE"}, "ingress", "'INGRESS_EVERYWHERE' is not one of"),
        (
            {"traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_SOMETIMES", "percent": 100}]},
            "traffic[0].type",
            "is not one of TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED",
        ),
        ({"traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 90}]}, "traffic", "sum to 90"),
        ({"traffic": [{"percent": 100}]}, "traffic[0].type", "names a revision or has type"),
        ({"traffic": [{"revision": "elsewhere", "percent": 100}]}, "traffic[0].revision", "does not exist"),
        (
            {"traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 50, "tag": "a"}] * 2},
            "traffic[1].tag",
            "given to more than one traffic target",
        ),
        (
            {"traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100, "tag": "A"}]},
            "traffic[0].tag",
            "",
        ),
        ({"template": {"containers": [{"image": image("v1.0.0")}], "revision": "other-1"}}, "template.revision", ""),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field_and_changes_nothing(cloud_run, clients, change, field, says):
    services, _ = clients
    svc = new_service(clients)
    mask = ",".join(change)
    refused = cloud_run.api("PATCH", f"/services/{short(svc.name)}", change, params={"updateMask": mask})
    assert refused.status_code == 400, refused.text
    error = error_of(refused)
    assert error["status"] == "INVALID_ARGUMENT" and says in error["message"]
    assert error["details"][0]["fieldViolations"][0]["field"] == field
    after = services.get_service(name=svc.name)
    assert after.generation == svc.generation and after.etag == svc.etag


@pytest.mark.parametrize(
    ("version", "app", "reason", "says"),
    [
        ("v1.0.1", "not-ours", "CONTAINER_MISSING", "Image 'us-central1-docker.pkg.dev/"),
        ("v6.6.6", "recommendation", "HEALTH_CHECK_CONTAINER_ERROR", "failed to start"),
    ],
)
def test_a_revision_that_cannot_start_fails_the_operation_and_traffic_stays(
    cloud_run, clients, version, app, reason, says
):
    services, revisions = clients
    faults = {"faults": {"v6.6.6": [{"mode": "crash"}]}}  # the sandbox's faults apply to Cloud Run's revisions
    (cloud_run.settings.home / "faults.json").write_text(json.dumps(faults))
    svc = new_service(clients)
    with pytest.raises(exceptions.GoogleAPICallError, match="is not ready and cannot serve traffic") as failed:
        deploy_candidate(clients, svc, version, app)
    assert says in failed.value.message
    candidate = revision_of(short(svc.name), version)
    broken = revisions.get_revision(name=f"{svc.name}/revisions/{candidate}")
    ready = next(c for c in broken.conditions if c.type_ == "Ready")
    assert ready.state == FAILED and says in ready.message
    assert reason in (ready.reason.name, ready.revision_reason.name)
    after = services.get_service(name=svc.name)
    assert short(after.latest_created_revision) == candidate
    assert short(after.latest_ready_revision) == revision_of(short(svc.name), "v1.0.0")
    assert after.terminal_condition.state == FAILED and not after.reconciling
    assert [(s.type_, s.percent) for s in after.traffic_statuses] == [(LATEST, 100)]  # as it was
    assert served(after.uri, 3) == {"v1.0.0": 3}
    assert cloud_run.revision_record(candidate)["process"] is None or not processes.is_alive(
        cloud_run.revision_record(candidate)["process"]["pid"]
    )


# -- operations, paths, the contract ------------------------------------------------------------------------------
def test_operations_get_wait_and_list_as_the_longrunning_api(cloud_run, clients):
    svc = new_service(clients)
    change = {"traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100, "tag": "edge"}]}
    submitted = cloud_run.api("PATCH", f"/services/{short(svc.name)}", change, params={"updateMask": "traffic"})
    assert submitted.status_code == 200, submitted.text
    operation = submitted.json()
    assert operation["name"].startswith(f"{PARENT}/operations/") and operation["done"] is True
    assert operation["response"]["@type"] == "type.googleapis.com/google.cloud.run.v2.Service"
    assert CONTRACT.check_response("run.projects.locations.operations.get", operation) == []
    path = operation["name"].removeprefix(PARENT)
    assert cloud_run.api("GET", path).json() == operation
    assert cloud_run.api("POST", f"{path}:wait", {"timeout": "5s"}).json() == operation
    listed = cloud_run.api("GET", "/operations", params={"pageSize": 1000}).json()["operations"]
    assert operation["name"] in {o["name"] for o in listed}
    assert cloud_run.api("GET", "/operations/nothing").status_code == 404
    assert served(operation["response"]["trafficStatuses"][0]["uri"], 2) == {"v1.0.0": 2}


def test_paths_methods_projects_and_credentials_outside_what_it_serves(cloud_run):
    assert error_of(cloud_run.api("GET", "/nothing"))["status"] == "NOT_FOUND"
    unimplemented = cloud_run.api("GET", "/services/x:getIamPolicy")
    assert unimplemented.status_code == 501 and "getIamPolicy is not served" in error_of(unimplemented)["message"]
    other = requests.get(f"{cloud_run.url}/v2/projects/someone-else/locations/{LOCATION}/services", timeout=10)
    assert other.status_code == 403
    basic = cloud_run.api("GET", "/services", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401 and error_of(basic)["status"] == "UNAUTHENTICATED"
    bearer = cloud_run.api("GET", "/services", headers={"Authorization": "Bearer anything"})
    assert bearer.status_code == 200
    assert cloud_run.api("GET", "/services/missing").status_code == 404
    extra = cloud_run.api("GET", "/services", params={"verbose": "true"})
    assert extra.status_code == 400 and error_of(extra)["details"][0]["fieldViolations"][0]["field"] == "verbose"
    numbers = cloud_run.api("PATCH", "/services/missing", {"ingress": 1})  # a number without enum-encoding=int
    assert numbers.status_code == 400 and "ingress" in error_of(numbers)["message"]


def test_an_answer_that_breaks_the_contract_goes_out_as_a_500_naming_the_problem():
    class Broken:
        def call(self, match, query, body):
            return {"name": "s", "generation": 3, "reconciling": "no"}

    port = free_port()
    server = Server("127.0.0.1", port, make_handler(Broken(), CONTRACT))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/v2/{PARENT}/services/s", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 500
    error = error_of(answer)
    assert error["status"] == "INTERNAL" and "broke the run.v2 contract" in error["message"]
    assert [v["field"] for v in error["details"][0]["fieldViolations"]] == ["generation", "reconciling"]


# -- metrics ----------------------------------------------------------------------------------------------------
def metric(cloud_run: LocalCloudRun, sample: str, **labels: str) -> float:
    text = requests.get(f"{cloud_run.url}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and labels.items() <= s.labels.items()
    )


def test_requests_are_counted_per_revision_and_code_class_at_the_proxy(cloud_run, clients):
    svc = deploy_candidate(clients, new_service(clients), "v1.1.0")
    service_id = short(svc.name)
    first, candidate = (s.revision for s in svc.traffic_statuses)
    served(svc.uri, 4)
    served(tag_uri(svc, "v1-1-0"), 2)
    assert requests.get(f"{svc.uri}/no-such-path", timeout=10).status_code == 404
    labels = {"service_name": service_id, "monitored_resource": "cloud_run_revision", "location": LOCATION}
    count = "run_googleapis_com:request_count"
    assert metric(cloud_run, count, **labels, revision_name=first, response_code_class="2xx") == 4
    assert metric(cloud_run, count, **labels, revision_name=first, response_code_class="4xx", response_code="404") == 1
    assert metric(cloud_run, count, **labels, revision_name=candidate, response_code_class="2xx") == 2
    assert metric(cloud_run, count, **labels, revision_name=candidate, response_code_class="4xx") == 0
    latencies = "run_googleapis_com:request_latencies_count"
    assert metric(cloud_run, latencies, **labels, revision_name=first) == 5
    assert metric(cloud_run, "run_googleapis_com:request_latencies_bucket", **labels, le="+Inf") == 7
    assert (
        "# TYPE run_googleapis_com:request_count untyped" in requests.get(f"{cloud_run.url}/metrics", timeout=10).text
    )


# -- restarts -----------------------------------------------------------------------------------------------------
def test_a_restart_keeps_services_revisions_and_their_processes_and_starts_again_what_died(cloud_run, clients):
    services, revisions = clients
    svc = deploy_candidate(clients, new_service(clients), "v1.1.0")
    first, candidate = (s.revision for s in svc.traffic_statuses)
    kept = cloud_run.revision_record(first)["process"]["pid"]
    died = cloud_run.revision_record(candidate)["process"]
    before = [short(r.name) for r in revisions.list_revisions(parent=svc.name)]

    cloud_run.stop()
    processes.stop([died["pid"]])  # an instance that dies while the control plane is away
    cloud_run.start()

    after = services.get_service(name=svc.name)
    assert (after.etag, after.generation, list(after.traffic_statuses)) == (
        svc.etag,
        svc.generation,
        list(svc.traffic_statuses),
    )
    assert [short(r.name) for r in revisions.list_revisions(parent=svc.name)] == before
    assert cloud_run.revision_record(first)["process"]["pid"] == kept and processes.is_alive(kept)
    assert served(after.uri, 3) == {"v1.0.0": 3}
    wait_for(
        lambda: requests.get(tag_uri(after, "v1-1-0") + "/health", timeout=5).status_code == 200,
        timeout=30,
        what="the dead revision started again",
    )
    assert cloud_run.revision_record(candidate)["process"]["pid"] != died["pid"]
    assert served(tag_uri(after, "v1-1-0"), 2) == {"v1.1.0": 2}


def test_deleting_a_service_stops_its_revisions(cloud_run, clients):
    services, _ = clients
    svc = new_service(clients)
    pid = cloud_run.revision_record(revision_of(short(svc.name), "v1.0.0"))["process"]["pid"]
    services.delete_service(name=svc.name).result(timeout=TIMEOUT)
    assert not processes.is_alive(pid)
    with pytest.raises(exceptions.NotFound):
        services.get_service(name=svc.name)
    assert requests.get(f"{svc.uri}/health", timeout=10).status_code == 404


def test_its_state_is_kept_under_the_home(cloud_run, clients):
    svc = new_service(clients)
    root = state_dir(cloud_run.settings.home)
    assert (root / "services" / f"{short(svc.name)}.json").is_file()
    record = json.loads((root / "services" / f"{short(svc.name)}.json").read_text())
    assert record["etag"] == svc.etag and Path(root / "logs").is_dir()


def test_a_patch_with_allow_missing_creates_and_a_snake_case_mask_path_is_honoured(clients):
    services, _ = clients
    name = f"{PARENT}/services/t-{uuid.uuid4().hex[:8]}"
    template = run_v2.RevisionTemplate(containers=[run_v2.Container(image=image("v1.0.0", "analytics"))])
    service = run_v2.Service(name=name, template=template, invoker_iam_disabled=True)
    request = run_v2.UpdateServiceRequest(service=service, allow_missing=True)
    created = services.update_service(request=request).result(timeout=TIMEOUT)
    assert created.name == name and short(created.latest_ready_revision).startswith(f"{short(name)}-00001-")
    assert served(created.uri, 2) == {"v1.0.0": 2}

    created.template.max_instance_request_concurrency = 5  # a template change: a new, generated revision
    created.description = "not in the mask: left alone"
    mask = FieldMask(paths=["template.max_instance_request_concurrency"])
    updated = services.update_service(service=created, update_mask=mask).result(timeout=TIMEOUT)
    assert updated.template.max_instance_request_concurrency == 5 and updated.description == ""
    assert short(updated.latest_ready_revision).startswith(f"{short(name)}-00002-")


# -- in the sandbox ---------------------------------------------------------------------------------------
def test_up_starts_it_prometheus_scrapes_its_request_metrics_and_down_stops_its_revisions(tmp_path):
    """As a component of ``sandbox up``: Prometheus (job varai-cloudrun) has Cloud Run's request count per
    revision and code class, as Managed Service for Prometheus has it, and ``down`` leaves no revision running."""
    from tests.support.pushgateway_stack import free_settings, prometheus_api
    from varai_deploy.sandbox import Sandbox, prometheus

    settings = free_settings(tmp_path / "sandbox", COMPONENT)
    run = settings.component_port(COMPONENT.name)
    box = Sandbox(settings)
    try:
        endpoints = box.up()["endpoints"]
        assert endpoints["cloudrun"] == f"http://127.0.0.1:{run}"
        stand_in = LocalCloudRun(settings, run)
        clients = stand_in.clients()
        svc = new_service(clients)
        served(svc.uri, 3)
        query = f'run_googleapis_com:request_count{{service_name="{short(svc.name)}",response_code_class="2xx"}}'
        found = wait_for(
            lambda: prometheus_api(settings, "/api/v1/query", query=query)["result"],
            timeout=20,
            interval=0.2,
            what="Prometheus to scrape the local Cloud Run",
        )
        assert found[0]["metric"]["revision_name"] == short(svc.latest_ready_revision)
        assert found[0]["value"][1] == "3"
        targets = prometheus_api(settings, "/api/v1/targets")["activeTargets"]
        assert {t["scrapeUrl"] for t in targets if t["labels"]["job"] == prometheus.CLOUD_RUN_JOB_NAME} == {
            f"http://127.0.0.1:{run}/metrics"
        }
        pid = stand_in.revision_record(short(svc.latest_ready_revision))["process"]["pid"]
    finally:
        box.down()
    assert not processes.is_alive(pid)
    assert processes.find_ours(settings.home, [COMPONENT.marker(settings, run)]) == []
