"""Staging on Cloud Run, through a real scheduler, LocalExecutor workers and triggerer, against the local Cloud Run.

The sandbox's ``staging`` component is staging as a user runs it: the shipped ``staging.yaml`` (its Terraform the
sandbox's module, its windows the tests'), its Connections pointing at the local Cloud Run, whose change requests
are logged as received (``cloudrun/requests.jsonl``), and a load balancer in front. Each test sends its own steady
load through that load balancer and starts from a version the ledger passed (released first when needed), so it
passes alone and in any order; versions are v20.x, this module's own.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.airflow_cluster import AirflowCluster, free_port
from tests.support.sandbox import wait_for
from varai_deploy.ledger import FAILED, PASSED, ROLLED_BACK, Ledger
from varai_deploy.platforms.cloud_run import revision_name, slug
from varai_deploy.sandbox.cloudrun_fake import LOCATION, PROJECT, received_log
from varai_deploy.sandbox.serving import SignalFlag
from varai_deploy.sandbox.traffic import Generator, RequestLog, is_failure, read_records, shoppers_key
from varai_deploy.services import SERVICE_NAMES, SERVICES

pytestmark = pytest.mark.integration

RELEASE = "ai_discovery_release"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
_versions = iter(range(1, 1000))
#: A revision target as the client sends it (enums as numbers: ``$alt=json;enum-encoding=int``) or by name.
BY_REVISION = (2, "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION")


def next_version() -> str:
    return f"v20.{next(_versions)}.0"


def cloud_name(service: str) -> str:
    return f"{service}-staging"


@pytest.fixture(scope="module")
def cluster(stack, sandbox, tmp_path_factory):
    cluster = AirflowCluster(
        {**os.environ}, api_port=free_port(exclude={19880}), log_dir=tmp_path_factory.mktemp("cloud_run")
    )
    cluster.start()
    cluster.wait_for_dag(RELEASE)
    try:
        yield cluster
    finally:
        cluster.stop()


class Staging:
    """The sandbox's staging: its load balancer, the local Cloud Run's API, and what that API received."""

    def __init__(self, sandbox) -> None:
        self.home = sandbox.settings.home
        self.lb = sandbox.settings.component_url("staging")
        self.api = f"{sandbox.settings.component_url('cloudrun')}/v2/{PARENT}/services"

    def service(self, service: str) -> dict:
        answer = requests.get(f"{self.api}/{cloud_name(service)}", timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def traffic(self, service: str) -> dict[str, int]:
        """Revision -> percent, of the targets with traffic."""
        return {
            t.get("revision", "LATEST"): t["percent"]
            for t in self.service(service)["trafficStatuses"]
            if t.get("percent")
        }

    def serving(self, service: str) -> str | None:
        path = SERVICES[service].health_path
        return requests.get(self.lb + path, timeout=10).headers.get("X-Served-Version")

    def mark(self) -> int:
        log = received_log(self.home)
        return log.stat().st_size if log.exists() else 0

    def received(self, since: int, service: str) -> list[dict]:
        """The change requests to ``service`` since ``mark()``, as the API received them."""
        with open(received_log(self.home), encoding="utf-8") as log:
            log.seek(since)
            lines = [json.loads(line) for line in log if line.strip()]
        return [r for r in lines if r["path"].endswith(f"/services/{cloud_name(service)}")]

    def set_traffic(self, service: str, percents: dict[str, int]) -> None:
        """A change by hand (gcloud run services update-traffic): the traffic list replaced, tags kept at 0 %."""
        svc = self.service(service)
        tags = {t["revision"]: t["tag"] for t in svc["trafficStatuses"] if t.get("tag") and t.get("revision")}
        traffic = [
            {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": r, "percent": percents.get(r, 0)}
            | ({"tag": tags[r]} if r in tags else {})
            for r in dict.fromkeys([*percents, *tags])
        ]
        answer = requests.patch(
            f"{self.api}/{cloud_name(service)}",
            params={"updateMask": "traffic"},
            json={"traffic": traffic, "etag": svc["etag"]},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        wait_for(lambda: not self.service(service)["reconciling"], timeout=30, what=f"{service} to apply the change")


class Load:
    """Steady requests through staging's load balancer (the sandbox's traffic generator, with staging's shoppers'
    API key), logged to a file."""

    def __init__(self, url: str, log: Path, api_key: str, rps: float = 30) -> None:
        parts = urlsplit(url)
        self.log = log
        self.flag = SignalFlag(signals=())
        generator = Generator(parts.hostname, parts.port, rps, RequestLog(log), api_key=api_key)
        self.thread = threading.Thread(target=generator.run, args=(self.flag, 3600), daemon=True)
        self.thread.start()

    def failures(self, since: float, until: float) -> tuple[int, list[dict]]:
        records = list(read_records(self.log, since, until))
        return len(records), [r for r in records if is_failure(r)]

    def stop(self) -> None:
        self.flag.raised = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="module")
def staging(sandbox) -> Staging:
    return Staging(sandbox)


@pytest.fixture(scope="module")
def load(staging, sandbox, tmp_path_factory):
    key = shoppers_key(sandbox.settings.home, "staging")
    load = Load(staging.lb, tmp_path_factory.mktemp("load") / "requests.jsonl", key)
    try:
        yield load
    finally:
        load.stop()


def release(
    cluster: AirflowCluster, version: str, services: list[str], environment: str = "staging"
) -> tuple[str, str]:
    status, run = cluster.trigger(
        RELEASE, {"version": version, "services": services, "marketplaces": [], "environment": environment}
    )
    assert status == 200, run
    run_id = run["dag_run_id"]
    return run_id, cluster.wait_for_run(RELEASE, run_id, timeout=360)


def verdict(service: str, version: str, environment: str = "staging") -> str | None:
    record = Ledger(environment).revision(service, version)
    return record.verdict if record else None


def good_release(cluster: AirflowCluster, staging: Staging, services: list[str]) -> str:
    """One version that ``services`` serve and the ledger passed on staging: the state a test starts from."""
    serving = {staging.serving(s) for s in services}
    if len(serving) == 1 and None not in serving:
        (version,) = serving
        if all(verdict(s, version) == PASSED for s in services) and Ledger("staging").holder() is None:
            return version
    version = next_version()
    run_id, state = release(cluster, version, services)
    assert state == "success", cluster.describe_run(RELEASE, run_id)
    return version


def test_a_staging_release_flips_every_service_with_the_traffic_lists_it_sends_and_fails_no_request(
    cluster, staging, load
):
    good = good_release(cluster, staging, list(SERVICE_NAMES))
    live_before = {s: staging.service(s)["trafficStatuses"] for s in SERVICE_NAMES}
    version, mark, started = next_version(), staging.mark(), time.time()
    run_id, state = release(cluster, version, list(SERVICE_NAMES))
    ended = time.time()
    assert state == "success", cluster.describe_run(RELEASE, run_id)

    for service in SERVICE_NAMES:
        candidate = revision_name(cloud_name(service), version)
        (live,) = [t["revision"] for t in live_before[service] if t.get("percent") == 100]
        assert staging.serving(service) == version
        assert staging.traffic(service) == {candidate: 100}
        assert verdict(service, version) == PASSED and verdict(service, good) == PASSED
        changes = [r for r in staging.received(mark, service) if r["method"] == "PATCH" and r["status"] == 200]
        deploy, switch = changes[0], next(c for c in changes if {candidate: 100}.items() <= percents(c).items())
        # The candidate: a new revision with the release's image, the whole traffic list written out.
        assert deploy["query"].startswith("updateMask=template")
        assert deploy["body"]["template"]["revision"] == candidate
        assert deploy["body"]["template"]["containers"][0]["image"].endswith(f"/varai/{service}:{version}")
        assert percents(deploy) == {live: 100, candidate: 0}
        assert tag_of(deploy, candidate) == slug(version)
        assert all(t["type"] in BY_REVISION for t in deploy["body"]["traffic"]), "no LATEST target"
        # The switch: all traffic to the candidate, only if the service is as it was read (its etag).
        assert switch["body"].get("etag"), switch
        assert percents(switch)[live] == 0 and tag_of(switch, live) == slug(good)

    sent, failed = load.failures(started, ended)
    print(f"{sent} requests through staging's load balancer during the release, {len(failed)} failed")
    assert sent > 100, "the load did not run"
    assert failed == [], failed[:5]


def percents(change: dict) -> dict[str, int]:
    return {t["revision"]: t.get("percent", 0) for t in change["body"]["traffic"]}


def tag_of(change: dict, revision: str) -> str | None:
    return next((t.get("tag") for t in change["body"]["traffic"] if t["revision"] == revision), None)


def test_a_bad_version_on_staging_is_rolled_back_by_the_etag_checked_switch(cluster, sandbox, staging, load):
    service = "recommendation"
    good = good_release(cluster, staging, [service])
    good_revision = revision_name(cloud_name(service), good)
    bad, mark = next_version(), staging.mark()
    sandbox.register_fault(bad, "errors", services=[service], rate=0.6)
    run_id, state = release(cluster, bad, [service])
    assert state == "failed", cluster.describe_run(RELEASE, run_id)

    assert staging.serving(service) == good
    assert staging.traffic(service) == {good_revision: 100}
    assert verdict(service, bad) == ROLLED_BACK and verdict(service, good) == PASSED
    changes = [r for r in staging.received(mark, service) if r["method"] == "PATCH" and r["status"] == 200]
    bad_revision = revision_name(cloud_name(service), bad)
    to_bad = [c for c in changes if percents(c).get(bad_revision) == 100]
    back = [c for c in changes[changes.index(to_bad[0]) :] if percents(c).get(good_revision) == 100]
    assert to_bad and back, changes
    assert back[0]["body"].get("etag"), back[0]


def test_a_split_pinned_by_hand_does_not_survive_a_release(cluster, staging, load):
    service = "analytics"
    first = good_release(cluster, staging, [service])
    second = next_version()
    run_id, state = release(cluster, second, [service])
    assert state == "success", cluster.describe_run(RELEASE, run_id)
    old, live = (revision_name(cloud_name(service), v) for v in (first, second))
    staging.set_traffic(service, {live: 50, old: 50})  # someone pinned a split
    assert staging.traffic(service) == {live: 50, old: 50}

    third = next_version()
    run_id, state = release(cluster, third, [service])
    assert state == "success", cluster.describe_run(RELEASE, run_id)
    assert staging.traffic(service) == {revision_name(cloud_name(service), third): 100}
    assert {staging.serving(service) for _ in range(20)} == {third}


def test_a_change_made_to_the_service_meanwhile_makes_the_switch_refuse(cluster, sandbox, staging, load):
    service = "face-analysis"
    first = good_release(cluster, staging, [service])
    second = next_version()
    run_id, state = release(cluster, second, [service])
    assert state == "success", cluster.describe_run(RELEASE, run_id)
    older = revision_name(cloud_name(service), first)
    version = next_version()
    candidate = revision_name(cloud_name(service), version)
    # Healthy while Cloud Run starts it (so it is made), unhealthy from 1.5 s on: held at the health gate.
    sandbox.register_fault(version, "unhealthy", services=[service], after_seconds=1.5)
    status, run = cluster.trigger(
        RELEASE, {"version": version, "services": [service], "marketplaces": [], "environment": "staging"}
    )
    assert status == 200, run
    run_id = run["dag_run_id"]
    record_file = Path(sandbox.settings.home) / "cloudrun" / "revisions" / f"{candidate}.json"
    tag_health = f"{staging.api.split('/v2/')[0]}/run/{slug(version)}---{cloud_name(service)}/health"
    record = wait_for(
        lambda: (
            record_file.exists()
            and (r := json.loads(record_file.read_text())).get("state") == "READY"
            and requests.get(tag_health, timeout=5).status_code == 503
            and r
        ),
        timeout=120,
        what=f"{candidate} made, then failing its health checks",
    )
    gate = cluster.task_instance(RELEASE, run_id, "backend.candidates.wait_healthy", 0)
    assert gate is None or gate["state"] != "success", "the candidate passed its health gate before its fault began"
    staging.set_traffic(service, {older: 100})  # meanwhile, someone moves the traffic by hand
    sandbox.clear_faults(version)
    os.kill(record["process"]["pid"], signal.SIGHUP)  # the candidate answers healthy from now on
    state = cluster.wait_for_run(RELEASE, run_id, timeout=360)

    assert state == "failed", cluster.describe_run(RELEASE, run_id)
    assert staging.traffic(service) == {older: 100}, "the switch overwrote a change it did not make"
    assert verdict(service, version) == FAILED
    switch = cluster.task_instance(RELEASE, run_id, "backend.traffic.switch_traffic", 0)
    assert switch["state"] == "failed", switch
    log = cluster.task_log(RELEASE, run_id, "backend.traffic.switch_traffic", switch["try_number"], 0)
    assert f"not moved to {version}" in log and "someone else changed it meanwhile" in log, log[-3000:]


def test_production_is_refused_a_version_staging_never_passed(cluster, staging):
    version, mark = next_version(), staging.mark()
    run_id, state = release(cluster, version, ["recommendation"], environment="production")
    assert state == "failed", cluster.describe_run(RELEASE, run_id)
    promotion = cluster.task_instance(RELEASE, run_id, "validate.promotion")
    assert promotion["state"] == "failed", promotion
    log = cluster.task_log(RELEASE, run_id, "validate.promotion", promotion["try_number"])
    assert f"recommendation {version}" in log and "staging" in log, log[-2000:]
    assert staging.mark() == mark, "a refused release changed Cloud Run"
    assert Ledger("production").revision("recommendation", version) is None
