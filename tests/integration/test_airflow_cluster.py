"""The AirflowCluster harness itself, against the real ai_discovery_release DAG and the sandbox.

Every run here goes through the REST API, the real scheduler and its LocalExecutor workers, and the
triggerer, each its own process. Each test releases its own version of analytics (v7.x: other modules
use other versions) on top of a platform where all five services are live (``live_platform``: post
deploy checks every service through the gateway), so each passes on its own (``pytest -k NAME``).
"""

from __future__ import annotations

import time
from datetime import datetime
from urllib.parse import quote

import psutil
import pytest

from tests.support.airflow_cluster import local_executor_workers, session_processes
from tests.support.stack import gateway_versions
from varai_deploy.services import SERVICE_NAMES

pytestmark = pytest.mark.integration

DAG = "ai_discovery_release"
DEPLOY = "backend.candidates.deploy_candidate"
BASELINE = "v7.0.0"


def release(cluster, version: str, services: list[str] | None = None) -> str:
    """Trigger a backend-only release through the REST API: its run id. Marketplaces null, as the
    trigger form sends an emptied selection."""
    cluster.wait_for_dag(DAG)
    conf = {"version": version, "services": services or ["analytics"], "marketplaces": None}
    status, run = cluster.trigger(DAG, conf)
    assert status == 200, run
    return run["dag_run_id"]


def assert_succeeded(cluster, run_id: str, timeout: float = 300) -> dict[tuple[str, int], dict]:
    state = cluster.wait_for_run(DAG, run_id, timeout=timeout)
    assert state == "success", f"run {run_id} {state}:\n{cluster.describe_run(DAG, run_id)}"
    return cluster.task_instances(DAG, run_id)


@pytest.fixture(autouse=True)
def no_release_in_flight(airflow_cluster) -> None:
    """Nothing left running by a test that failed before its run ended: each test starts free."""
    if ended := airflow_cluster.end_unfinished_runs(DAG):
        print(f"marked failed, left running by an earlier test: {ended}")


@pytest.fixture(scope="module")
def live_platform(airflow_cluster):
    """Every service live (a one-service release's post_deploy checks all five through the gateway)."""
    if all(status == 200 for status, _, _ in gateway_versions().values()):
        return
    assert_succeeded(airflow_cluster, release(airflow_cluster, BASELINE, list(SERVICE_NAMES)))
    assert all(status == 200 for status, _, _ in gateway_versions().values()), gateway_versions()


def test_a_release_runs_through_scheduler_executor_and_triggerer(airflow_cluster, live_platform):
    cluster = airflow_cluster
    run_id = release(cluster, "v7.1.0")
    # While it runs, the scheduler's session holds its LocalExecutor workers (what stop() must reap),
    # forked once the scheduler has imported what the tasks use (seconds after it reports healthy).
    assert local_executor_workers({cluster.pid("scheduler")}), [p.cmdline() for p in cluster.processes("scheduler")]
    tis = assert_succeeded(cluster, run_id)
    assert gateway_versions()["analytics"][1] == "v7.1.0"
    analysis = tis[("backend.analysis", -1)]
    assert analysis["state"] == "success"
    assert tis[("backend.candidates.wait_healthy", 0)]["state"] == "success"
    # The run's outcome, one click from the run (its asset event): what serves each service now.
    status, events = cluster.call("GET", f"/api/v2/assets/events?source_dag_id={DAG}&source_run_id={quote(run_id)}")
    assert status == 200 and events["total_entries"] == 1, events
    outcome = events["asset_events"][0]["extra"]
    assert outcome["outcome"] == "succeeded" and outcome["version"] == "v7.1.0", outcome
    assert outcome["live"]["analytics"].startswith("v7.1.0 ("), outcome
    assert outcome["widgets"] == {}, outcome
    assert "Where things are now in sandbox" in cluster.task_log(
        DAG, run_id, "finish", tis[("finish", -1)]["try_number"]
    )
    # Marketplaces null (an emptied form field) is a backend-only release: no channel published.
    assert tis[("widgets.marketplace.publish", -1)]["state"] == "skipped", tis[("widgets.marketplace.publish", -1)]
    # The analysis deferred to the triggerer and resumed on a worker: its log, through the REST API.
    log = cluster.task_log(DAG, run_id, "backend.analysis", analysis["try_number"])
    assert "Verdict pass" in log, log[-3000:]
    # Mapped TIs are keyed by map index, and their logs are reachable too.
    deploy_log = cluster.task_log(DAG, run_id, DEPLOY, tis[(DEPLOY, 0)]["try_number"], map_index=0)
    assert "analytics v7.1.0 started as" in deploy_log, deploy_log[-3000:]


def test_a_deferred_analysis_survives_restarting_the_scheduler_and_the_triggerer(airflow_cluster, live_platform):
    """Both components go away while backend.analysis waits in the triggerer: the deferral is only
    rows in the metadata DB, so a new triggerer runs the trigger again and a new scheduler resumes
    the task on a worker; the release passes."""
    cluster = airflow_cluster
    run_id = release(cluster, "v7.2.0")
    cluster.wait_for_task(DAG, run_id, "backend.analysis", {"deferred"}, timeout=240)
    old = {c: cluster.pid(c) for c in ("scheduler", "triggerer")}

    cluster.stop_component("triggerer")  # first, so the trigger cannot fire before the scheduler restarts
    cluster.restart("scheduler")
    # Nobody ran the trigger meanwhile: the TI is still deferred, the new scheduler has it waiting.
    assert cluster.task_instance(DAG, run_id, "backend.analysis")["state"] == "deferred"
    cluster.start_component("triggerer")

    assert {c: cluster.pid(c) for c in old} != old
    assert all(cluster.pid(c) for c in old)
    tis = assert_succeeded(cluster, run_id)
    assert gateway_versions()["analytics"][1] == "v7.2.0"
    analysis = tis[("backend.analysis", -1)]
    log = cluster.task_log(DAG, run_id, "backend.analysis", analysis["try_number"])
    assert "Verdict pass" in log, log[-3000:]


def wait_for_attempt_end(cluster, run_id: str, timeout: float) -> tuple[dict, float]:
    """Until deploy_candidate's first attempt is over (up for retry, or its retry already started)."""
    start = time.monotonic()
    while True:
        ti = cluster.task_instance(DAG, run_id, DEPLOY, 0)
        if ti["state"] != "running" or ti["try_number"] > 1:
            return ti, time.monotonic() - start
        assert time.monotonic() - start < timeout, f"the killed attempt still running after {timeout}s: {ti}"
        time.sleep(0.2)


def deploy_blocked_on_the_sandbox_lock(cluster, sandbox, run_id: str) -> dict:
    """deploy_candidate's first attempt, running and blocked on the sandbox state lock the caller holds."""
    ti = cluster.wait_for_task(DAG, run_id, DEPLOY, {"running"}, map_index=0, timeout=180)
    time.sleep(2)  # still running: waiting for the lock, not racing to its end
    ti = cluster.task_instance(DAG, run_id, DEPLOY, 0)
    assert (ti["state"], ti["try_number"]) == ("running", 1), ti
    task, supervisor = psutil.Process(ti["pid"]), psutil.Process(ti["pid"]).parent()
    # The TI's pid is the task process; its parent, the supervisor, is a LocalExecutor worker.
    assert ti["id"] in " ".join(task.cmdline()), task.cmdline()
    assert "LocalExecutor" in " ".join(supervisor.cmdline()), supervisor.cmdline()
    assert supervisor.ppid() == cluster.pid("scheduler")
    return ti


def test_kill_task_fails_the_attempt_at_once_and_the_retry_runs(airflow_cluster, live_platform, sandbox):
    """deploy_candidate runs for well under a second, too fast to catch: the test holds the sandbox's
    state lock so the task process blocks on it mid-task (a real flock in ``start_candidate``), kills
    it, and lets go. The supervisor reports the SIGKILL'd attempt (no heartbeat timeout needed), the
    retry deploys the candidate and the release passes."""
    cluster = airflow_cluster
    with sandbox.store.locked():
        run_id = release(cluster, "v7.3.0")
        ti = deploy_blocked_on_the_sandbox_lock(cluster, sandbox, run_id)
        killed = cluster.kill_task(DAG, run_id, DEPLOY, map_index=0)
        assert killed == [ti["pid"]]
        ti, seconds = wait_for_attempt_end(cluster, run_id, timeout=20)
    print(f"attempt 1 ended {ti['state']} (try {ti['try_number']}) {seconds:.1f}s after the kill")
    assert seconds < 15  # reported by the supervisor, not found by the 30 s heartbeat timeout
    first = cluster.task_log(DAG, run_id, DEPLOY, 1, map_index=0)
    assert "Process terminated by signal" in first and "SIGKILL" in first, first[-3000:]

    tis = assert_succeeded(cluster, run_id)
    assert (tis[(DEPLOY, 0)]["state"], tis[(DEPLOY, 0)]["try_number"]) == ("success", 2)
    assert gateway_versions()["analytics"][1] == "v7.3.0"


def test_kill_task_with_its_worker_is_failed_over_by_the_heartbeat_timeout(airflow_cluster, live_platform, sandbox):
    """The same, killing the supervisor too (the worker machine died): nobody reports the attempt,
    the scheduler fails it over once its heartbeat is 30 s old, and the retry runs."""
    cluster = airflow_cluster
    with sandbox.store.locked():
        run_id = release(cluster, "v7.4.0")
        ti = deploy_blocked_on_the_sandbox_lock(cluster, sandbox, run_id)
        supervisor = psutil.Process(ti["pid"]).parent().pid
        assert cluster.kill_task(DAG, run_id, DEPLOY, map_index=0, worker=True) == [ti["pid"], supervisor]
        time.sleep(10)
        assert cluster.task_instance(DAG, run_id, DEPLOY, 0)["state"] == "running"  # nobody told Airflow
        ti, seconds = wait_for_attempt_end(cluster, run_id, timeout=60)
    print(f"attempt 1 ended {ti['state']} (try {ti['try_number']}) {seconds + 10:.1f}s after the kill")
    tis = assert_succeeded(cluster, run_id)
    assert (tis[(DEPLOY, 0)]["state"], tis[(DEPLOY, 0)]["try_number"]) == ("success", 2)
    assert gateway_versions()["analytics"][1] == "v7.4.0"


def test_a_killed_scheduler_leaves_no_process_and_start_component_brings_it_back(airflow_cluster):
    cluster = airflow_cluster
    pid = cluster.pid("scheduler")
    assert local_executor_workers({pid}), [p.cmdline() for p in cluster.processes("scheduler")]
    cluster.kill("scheduler")
    assert cluster.pid("scheduler") is None
    assert session_processes({pid}) == []  # its LocalExecutor workers and log server went with it
    started = time.time()
    cluster.start_component("scheduler")  # waits for a heartbeat of the new scheduler
    assert cluster.pid("scheduler") not in (None, pid)
    beat = cluster.call("GET", "/api/v2/monitor/health")[1]["scheduler"]["latest_scheduler_heartbeat"]
    assert datetime.fromisoformat(beat).timestamp() > started
