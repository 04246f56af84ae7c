"""Release state under faults, through a real scheduler, LocalExecutor workers and triggerer.

Each test breaks something for real (a worker killed mid-switch, the scheduler and triggerer
restarted mid-analysis, a rollback alert racing a release, a run abandoned after its switch, a
previous revision that died) and ends by checking that traffic is on a healthy revision the ledger
judged, and that the ledger tells the truth. Each sets up the state it needs (a good release of its
own services first), so it passes alone and in any order; versions are v8.x, this module's own.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time

import pytest

from tests.support.airflow_cluster import AirflowCluster, free_port
from tests.support.stack import gateway_versions
from varai_deploy.ledger import FAILED, PASSED, PENDING, ROLLED_BACK, Ledger
from varai_deploy.sandbox import Sandbox
from varai_deploy.services import SERVICE_NAMES

pytestmark = pytest.mark.integration

RELEASE, ROLLBACK = "ai_discovery_release", "ai_discovery_rollback"
WEBHOOK_TOKEN = secrets.token_hex(16)
_versions = iter(range(1, 1000))


def next_version() -> str:
    return f"v8.{next(_versions)}.0"


@pytest.fixture(scope="module")
def cluster(stack, sandbox, tmp_path_factory):
    env = {
        **os.environ,
        "AIRFLOW_CONN_VARAI_ALERT_WEBHOOK": json.dumps({"conn_type": "generic", "password": WEBHOOK_TOKEN}),
    }
    cluster = AirflowCluster(env, api_port=free_port(exclude={19880}), log_dir=tmp_path_factory.mktemp("faults"))
    cluster.start()
    cluster.wait_for_dag(RELEASE)
    cluster.wait_for_dag(ROLLBACK)
    try:
        yield cluster
    finally:
        cluster.stop()


def trigger(cluster: AirflowCluster, version: str, services: list[str], **conf) -> str:
    status, run = cluster.trigger(
        RELEASE, {"version": version, "services": services, "marketplaces": [], "environment": "sandbox", **conf}
    )
    assert status == 200, run
    return run["dag_run_id"]


def release(cluster: AirflowCluster, version: str, services: list[str], **conf) -> tuple[str, str]:
    run_id = trigger(cluster, version, services, **conf)
    return run_id, cluster.wait_for_run(RELEASE, run_id, timeout=360)


def good_release(cluster: AirflowCluster, services: list[str]) -> str:
    """A version of ``services`` released and judged: the known good state a test starts from (of
    all five when one is not serving: a release's post-deploy checks go through every service).
    When ``services`` already serve one such version (an earlier test left it), that is the state."""
    answers = gateway_versions()
    if any(status != 200 for status, _, _ in answers.values()):
        services = list(SERVICE_NAMES)
    elif (known := known_good({answers[s][1] for s in services}, services)) is not None:
        return known
    version = next_version()
    run_id, state = release(cluster, version, services)
    assert state == "success", cluster.describe_run(RELEASE, run_id)
    return version


def known_good(serving: set[str | None], services: list[str]) -> str | None:
    """The one version ``services`` serve, if the ledger judged it passed and holds it as each one's
    live and last good revision, with no run holding the environment and no fault registered for it."""
    ledger = Ledger("sandbox")
    if len(serving) != 1 or None in serving or ledger.holder() is not None:
        return None
    (version,) = serving
    for service in services:
        state = ledger.service_state(service)
        if verdict(service, version) != PASSED or (state.live_version, state.last_good_version) != (version, version):
            return None
    return None if version in Sandbox().faults() else version


def served(service: str) -> str | None:
    return gateway_versions()[service][1]


def verdict(service: str, version: str) -> str | None:
    record = Ledger("sandbox").revision(service, version)
    return record.verdict if record else None


def assert_lock_free() -> None:
    holder = Ledger("sandbox").holder()
    assert holder is None, holder.describe()


def states(cluster: AirflowCluster, dag_id: str, run_id: str) -> dict[str, str]:
    return {
        (task if index < 0 else f"{task}[{index}]"): ti["state"]
        for (task, index), ti in cluster.task_instances(dag_id, run_id).items()
    }


def test_a_first_release_whose_analysis_fails_ends_failed_and_nothing_builds_on_it(cluster, sandbox):
    sandbox.remove("analytics")  # as before its first release: nothing to roll back to
    version = next_version()
    sandbox.register_fault(version, "errors", services=["analytics"], rate=0.6)
    run_id, state = release(cluster, version, ["analytics"], marketplaces=["woocommerce"])
    assert state == "failed"
    tis = states(cluster, RELEASE, run_id)
    assert tis["backend.analysis"] == "success"  # the verdict is a result, not an error...
    assert tis["backend.rollback_on_failure"] == "failed"  # ...and it fails the run
    assert tis["widgets.build"] != "success" and tis["post_deploy.health_checks"] != "success", tis
    assert verdict("analytics", version) == FAILED
    assert "nothing to roll back to" in Ledger("sandbox").revision("analytics", version).reason
    assert_lock_free()
    # The next good release replaces it and is judged on its own.
    fixed = good_release(cluster, ["analytics"])
    assert served("analytics") == fixed and verdict("analytics", fixed) == PASSED


def kill_mid_switch(cluster: AirflowCluster, version: str, service: str, before_kill=None) -> str:
    """Release ``version`` of ``service`` (with a slow_switch fault) and SIGKILL its switch task once
    the gateway serves the new version (after calling ``before_kill``), before the task could record
    or return anything."""
    run_id = trigger(cluster, version, [service])
    deadline = time.monotonic() + 180
    while served(service) != version:
        assert time.monotonic() < deadline, cluster.describe_run(RELEASE, run_id)
        time.sleep(0.2)
    if before_kill:
        before_kill()
    cluster.kill_task(RELEASE, run_id, "backend.traffic.switch_traffic", map_index=0)
    return run_id


def test_a_worker_killed_mid_switch_leaves_no_service_forgotten(cluster, sandbox):
    """Try 1 moved traffic and died before it could say so; try 2 reports the switch (it does not fail
    with "traffic stays where it was") and the release is judged and completes."""
    good_release(cluster, ["analytics"])
    version = next_version()
    sandbox.register_fault(version, "slow_switch", services=["analytics"], latency_seconds=30)
    run_id = kill_mid_switch(cluster, version, "analytics")
    assert cluster.wait_for_run(RELEASE, run_id, timeout=360) == "success", cluster.describe_run(RELEASE, run_id)
    tries = cluster.task_tries(RELEASE, run_id, "backend.traffic.switch_traffic", map_index=0)
    assert [t["state"] for t in tries][-1] == "success" and len(tries) == 2, tries
    retry_log = cluster.task_log(RELEASE, run_id, "backend.traffic.switch_traffic", 2, map_index=0)
    assert "the switch had happened" in retry_log
    assert served("analytics") == version and verdict("analytics", version) == PASSED
    state = Ledger("sandbox").service_state("analytics")
    assert (state.live_version, state.last_good_version) == (version, version)


def test_a_switch_retried_onto_a_candidate_gone_bad_is_rolled_back(cluster, sandbox):
    """The issue's case: try 2 finds the candidate unhealthy. Traffic had moved, so the service must
    go back to its last good revision, not stay on the bad one for want of a switch XCom."""
    good = good_release(cluster, ["analytics"])
    version = next_version()
    sandbox.register_fault(version, "slow_switch", services=["analytics"], latency_seconds=30)

    def go_bad() -> None:  # once it serves: healthy through its health gate however slow that was
        sandbox.register_fault(version, "unhealthy", services=["analytics"])
        assert sandbox.apply_faults(version), sandbox.status()["services"]["analytics"]

    run_id = kill_mid_switch(cluster, version, "analytics", before_kill=go_bad)
    assert cluster.wait_for_run(RELEASE, run_id, timeout=360) == "failed"
    assert served("analytics") == good
    assert verdict("analytics", version) == ROLLED_BACK
    assert Ledger("sandbox").service_state("analytics").live_version == good
    assert_lock_free()


def test_a_sibling_candidate_that_never_served_is_never_previous(cluster, sandbox):
    good_release(cluster, ["face-analysis", "analytics"])
    version = next_version()
    sandbox.register_fault(version, "crash", services=["face-analysis"])
    _, state = release(cluster, version, ["face-analysis", "analytics"])
    assert state == "failed"
    assert verdict("analytics", version) == FAILED  # healthy, but it never took traffic
    assert sandbox.status()["services"]["analytics"]["idle"]["state"] == "failed"
    status, run = cluster.trigger(
        ROLLBACK, {"environment": "sandbox", "reason": "testing previous", "services": ["analytics"]}
    )
    assert status == 200, run
    assert cluster.wait_for_run(ROLLBACK, run["dag_run_id"]) == "failed"
    log = cluster.task_log(ROLLBACK, run["dag_run_id"], "validate.targets", 1)
    assert "analytics: no previous revision" in log and version not in log.split("known good revisions:")[-1]
    # A refused rollback is in the audit too.
    finished = Ledger("sandbox").audit(action="rollback_finished")
    assert finished[-1]["run_id"] == run["dag_run_id"] and finished[-1]["detail"]["outcome"] == "failed"
    assert_lock_free()


def test_a_rollback_and_a_release_racing_a_release_are_refused_naming_it(cluster, sandbox):
    """While a release is being judged: the alert webhook answers 503 naming it (Alertmanager delivers
    again later), a rollback run started anyway and a second release are refused at their lock task,
    naming it; the release completes; the alert delivered again afterwards rolls back."""
    good = good_release(cluster, ["analytics"])
    version = next_version()
    run_id = trigger(cluster, version, ["analytics"])
    cluster.wait_for_task(RELEASE, run_id, "backend.analysis", {"deferred"}, timeout=180)
    holds = f"release run '{run_id}' of ai_discovery_release holds it"
    alert = {
        "version": "4",
        "status": "firing",
        "groupKey": f'{{}}:{{alertname="HighErrorRate",run="{run_id}"}}',
        "commonLabels": {"alertname": "HighErrorRate", "environment": "sandbox"},
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighErrorRate", "environment": "sandbox", "service": "analytics"},
                "annotations": {},
                "startsAt": "2026-12-01T02:00:00Z",
            }
        ],
    }
    status, body = cluster.call("POST", "/varai/alerts", alert, auth=f"Bearer {WEBHOOK_TOKEN}")
    assert status == 503 and holds in body["detail"], body
    status, manual = cluster.trigger(ROLLBACK, {"environment": "sandbox", "reason": "race", "services": ["analytics"]})
    assert status == 200, manual
    second = trigger(cluster, next_version(), ["recommendation"])
    for dag_id, other, lock in ((ROLLBACK, manual["dag_run_id"], "validate.lock"), (RELEASE, second, "lock")):
        assert cluster.wait_for_run(dag_id, other, timeout=120) == "failed"
        assert holds in cluster.task_log(dag_id, other, lock, 1)
    assert states(cluster, ROLLBACK, manual["dag_run_id"]).get("traffic.switch_traffic") in (None, "upstream_failed")
    assert states(cluster, RELEASE, second)["infrastructure.plan"] == "upstream_failed"
    assert cluster.wait_for_run(RELEASE, run_id, timeout=300) == "success"
    assert served("analytics") == version and verdict("analytics", version) == PASSED
    assert_lock_free()
    # Delivered again once the release is done, the alert rolls analytics back to what it replaced.
    status, body = cluster.call("POST", "/varai/alerts", alert, auth=f"Bearer {WEBHOOK_TOKEN}")
    assert status == 200 and body["status"] == "triggered", body
    assert cluster.wait_for_run(ROLLBACK, body["dag_run_id"]) == "success"
    assert served("analytics") == good and verdict("analytics", version) == ROLLED_BACK
    assert_lock_free()


def test_the_rollback_carries_on_past_a_service_it_cannot_restore(cluster, sandbox):
    """Both services' previous revisions die during the analysis; one can be restarted, the other's
    version now crashes at start. The first goes back, the second is named as still on the bad one."""
    good = good_release(cluster, ["analytics", "recommendation"])
    version = next_version()
    sandbox.register_fault(version, "errors", services=["analytics", "recommendation"], rate=0.6)
    run_id = trigger(cluster, version, ["analytics", "recommendation"])
    cluster.wait_for_task(RELEASE, run_id, "backend.analysis", {"deferred"}, timeout=180)
    sandbox.register_fault(good, "crash", services=["recommendation"])
    for service in ("analytics", "recommendation"):
        idle = sandbox.status()["services"][service]["idle"]
        assert (idle["version"], idle["running"]) == (good, True), idle
        os.kill(idle["pid"], signal.SIGKILL)
    try:
        assert cluster.wait_for_run(RELEASE, run_id, timeout=300) == "failed"
        log = cluster.task_log(RELEASE, run_id, "backend.rollback_on_failure", 1)
        assert f"analytics -> {good}" in log
        assert f"recommendation: {version} stays live: {good} did not come back healthy" in log
        assert served("analytics") == good and served("recommendation") == version
        assert verdict("analytics", version) == ROLLED_BACK and verdict("recommendation", version) == FAILED
        assert_lock_free()
    finally:
        sandbox.clear_faults(good)
    good_release(cluster, ["recommendation"])  # leave it healthy


def test_a_version_left_live_but_unjudged_is_judged_by_the_next_run(cluster, sandbox):
    """A run abandoned after its switch (marked failed: its teardown never ran) leaves the version
    live, pending and the lock held; the next release recovers the lock and judges the version."""
    good_release(cluster, ["analytics"])
    version = next_version()
    first = trigger(cluster, version, ["analytics"])
    cluster.wait_for_task(RELEASE, first, "backend.analysis", {"deferred"}, timeout=180)
    status, body = cluster.mark_run(RELEASE, first, "failed")
    assert status == 200, body
    assert served("analytics") == version and verdict("analytics", version) == PENDING
    second, state = release(cluster, version, ["analytics"])
    assert state == "success", cluster.describe_run(RELEASE, second)
    deploy_log = cluster.task_log(RELEASE, second, "backend.candidates.deploy_candidate", 1, map_index=0)
    assert "judging it again" in deploy_log
    assert states(cluster, RELEASE, second)["backend.analysis"] == "success"
    assert verdict("analytics", version) == PASSED
    audit = Ledger("sandbox").audit()
    released = [e for e in audit if e["run_id"] == first and e["action"] == "lock_released"]
    recovered = [e for e in audit if e["action"] == "lock_recovered" and e["run_id"] == second]
    assert released or recovered, "the abandoned run's lock was neither released nor recovered"
    assert_lock_free()


def test_the_scheduler_and_triggerer_restarted_mid_analysis_do_not_change_the_outcome(cluster, sandbox):
    good_release(cluster, ["analytics"])
    version = next_version()
    run_id = trigger(cluster, version, ["analytics"])
    cluster.wait_for_task(RELEASE, run_id, "backend.analysis", {"deferred"}, timeout=180)
    cluster.restart("triggerer")
    cluster.restart("scheduler")
    assert cluster.wait_for_run(RELEASE, run_id, timeout=360) == "success", cluster.describe_run(RELEASE, run_id)
    assert served("analytics") == version and verdict("analytics", version) == PASSED
    assert_lock_free()


def test_a_flapping_candidate_is_never_counted_as_three_consecutive_failures(cluster, sandbox):
    """Healthy through its streak and the switch, then (once the analysis watches) health 200 for
    2 s, 503 for 2 s, ... while the analysis probes every second and rolls back at 3 consecutive
    failures: it must see the failures, count at most 2 in a row, and pass."""
    good_release(cluster, ["analytics"])
    version = next_version()
    run_id = trigger(cluster, version, ["analytics"])
    cluster.wait_for_task(RELEASE, run_id, "backend.analysis", {"deferred"}, timeout=180)
    sandbox.register_fault(version, "flap", services=["analytics"], period_seconds=2)
    assert sandbox.apply_faults(version), sandbox.status()["services"]["analytics"]
    assert cluster.wait_for_run(RELEASE, run_id, timeout=300) == "success", cluster.describe_run(RELEASE, run_id)
    status, xcom = cluster.call(
        "GET", f"/api/v2/dags/{RELEASE}/dagRuns/{run_id}/taskInstances/backend.analysis/xcomEntries/return_value"
    )
    assert status == 200, xcom
    seen = xcom["value"]["health"]["analytics"]
    assert seen["failed"] >= 2, f"the flap was not seen: {seen}"
    assert seen["longest_failing_streak"] < 3, seen
    assert verdict("analytics", version) == PASSED


def test_no_secret_reaches_a_task_log_xcom_or_any_file_of_airflow(cluster, sandbox, stack):
    """After a full release (every marketplace), a rolled-back one and an alert's rollback: not one of
    the secrets the sandbox generated, nor the webhook token, is in any file under the Airflow home
    (task logs, the metadata DB with its XComs) or in the Airflow processes' own logs."""
    from pathlib import Path

    good_release(cluster, ["analytics"])
    version = next_version()
    run_id, state = release(cluster, version, ["analytics"], marketplaces=["html", "shopify", "woocommerce", "magento"])
    assert state == "success", cluster.describe_run(RELEASE, run_id)
    bad = next_version()
    sandbox.register_fault(bad, "errors", services=["analytics"], rate=0.6)
    assert release(cluster, bad, ["analytics"])[1] == "failed"
    alert = {
        "status": "firing",
        "groupKey": f"secrets-{bad}",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "X", "environment": "sandbox", "service": "analytics"},
                "startsAt": "2026-12-01T03:00:00Z",
            }
        ],
    }
    status, body = cluster.call("POST", "/varai/alerts", alert, auth=f"Bearer {WEBHOOK_TOKEN}")
    assert status == 200, body
    cluster.wait_for_run(ROLLBACK, body["dag_run_id"])

    generated = json.loads((sandbox.settings.credentials_file).read_text())
    secrets_ = {f"sandbox {name}": value for name, value in generated.items()}
    secrets_["webhook token"] = WEBHOOK_TOKEN
    assert len(secrets_) >= 6 and all(len(v) >= 16 for v in secrets_.values())
    roots = [Path(stack["VARAI_AIRFLOW_HOME"]), cluster.log_dir]
    files = [p for root in roots for p in root.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") for p in files) and any(p.suffix == ".log" for p in files)
    hits = [
        f"{label} in {path}"
        for path in files
        for label, value in secrets_.items()
        if value.encode() in path.read_bytes()
    ]
    assert not hits, hits


def test_a_revoked_check_key_fails_phase_5_naming_the_check_and_frees_the_environment(cluster, sandbox):
    """Phase 5 failing after the analysis passed: what passed stays live (the metrics judged it), the run fails
    naming the check and why, the lock is released, and the outcome lists what the checks saw."""
    from varai_deploy.sandbox import api_keys, credentials
    from varai_deploy.sandbox.gateway import gateway_dir

    good_release(cluster, ["analytics"])
    keys = gateway_dir(sandbox.settings.home) / api_keys.KEYS_FILE
    api_keys.revoke(keys, "release-check")
    try:
        version = next_version()
        run_id, state = release(cluster, version, ["analytics"])
    finally:
        plan = api_keys.SANDBOX_MERCHANTS["release-check"]
        api_keys.install(keys, "release-check", credentials.api_key(sandbox.settings, "release-check"), plan)
    assert state == "failed", cluster.describe_run(RELEASE, run_id)
    seen = states(cluster, RELEASE, run_id)
    assert (seen["post_deploy.integration"], seen["post_deploy.security"]) == ("failed", "upstream_failed")
    assert (seen["post_deploy.performance"], seen["post_deploy.monitoring"]) == ("success", "success")
    log = cluster.task_log(RELEASE, run_id, "post_deploy.integration", try_number=1)
    assert "HTTP 401" in log and "this API key was revoked" in log, log[-2000:]
    assert served("analytics") == version and verdict("analytics", version) == PASSED
    assert_lock_free()
    outcome = cluster.xcom(RELEASE, run_id, "finish")
    assert outcome["outcome"] == "failed" and "post_deploy.integration" in outcome["failed_tasks"]
    assert set(outcome["checks"]) == {"performance", "monitoring"}


def test_a_search_that_fails_in_every_shoppers_browser_rolls_the_release_back_after_phase_4(cluster, sandbox):
    """Its analysis passes (health, metrics and the scripted search see nothing wrong with a version that
    refuses browsers); the shopper's search on each channel's storefront, in headless Chromium, fails, so
    the backend goes back to what served before and the run fails saying what the browsers saw."""
    services = ["ai-discovery", "api-gateway"]
    good = good_release(cluster, services)
    version = next_version()
    sandbox.register_fault(version, "browser_refused", services=["ai-discovery"])
    run_id, state = release(cluster, version, services, marketplaces=["html", "woocommerce"])
    assert state == "failed", cluster.describe_run(RELEASE, run_id)
    seen = states(cluster, RELEASE, run_id)
    assert (seen["backend.analysis"], seen["backend.rollback_on_failure"]) == ("success", "skipped")
    assert seen["widgets.marketplace.storefront[0]"] == seen["widgets.marketplace.storefront[1]"] == "failed"
    assert seen["widgets.rollback_on_failure"] == "failed"
    assert seen["post_deploy.health_checks"] == "upstream_failed"
    for service in services:
        assert served(service) == good and verdict(service, version) == ROLLED_BACK, service
    log = cluster.task_log(RELEASE, run_id, "widgets.marketplace.storefront", try_number=1, map_index=0)
    assert "search for 'round' showed 'Frame suggestions are not available on this shop yet.'" in log, log[-2000:]
    (rolled,) = Ledger("sandbox").run_audit(run_id, ("release_rolled_back",))
    assert rolled["detail"]["reason"].startswith("Phase 4: the widget's search failed on every storefront: html: ")
    assert "ai-discovery -> " + good in rolled["detail"]["services"]["ai-discovery"]
    assert_lock_free()
