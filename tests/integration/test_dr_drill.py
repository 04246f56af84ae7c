"""dr_drill through a real api-server, scheduler, LocalExecutor and triggerer: the services' data
destroyed for real while the load generator keeps writing, restored from a real verified backup; a
live service process killed for real, the gateway failing over and the supervisor replacing it; the
serving region lost for real and failed over from; everything gone and recreated.

The sandbox is configured as production is: every drill waits for one of its approvers (``sre``)
before anything is broken. Each test first has every service serving and writing, and a fresh
verified backup (its own database_backup run), so it passes alone and in any order.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.airflow_cluster import AirflowCluster, free_port
from tests.support.app_data import keep_writing, rows, sql
from tests.support.environments import write_environments
from tests.support.ledger_state import record_live_as_good
from tests.support.notifications_told import told
from tests.support.stack import gateway_versions
from varai_deploy.ledger import Ledger

pytestmark = pytest.mark.integration

DAG, BACKUP = "dr_drill", "database_backup"
TABLES = ("discovery_searches", "face_analyses", "recommendation_feedback", "analytics_events")


APPROVAL = {"requires_approval": True, "approvers": ["sre"], "approval_timeout_minutes": 5}


@pytest.fixture(scope="module")
def cluster(stack, sandbox, tmp_path_factory):
    environments = write_environments(tmp_path_factory.mktemp("environments"), dr_drills=APPROVAL)
    cluster = AirflowCluster(
        {**os.environ, "VARAI_ENVIRONMENTS_DIR": str(environments)},
        api_port=free_port(exclude={19880}),
        log_dir=tmp_path_factory.mktemp("dr_drill"),
        users={"sre": "op"},
    )
    cluster.start()
    try:
        for dag_id in (DAG, BACKUP):
            cluster.wait_for_dag(dag_id)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def steady(cluster, sandbox) -> None:
    """Nothing left running, every service writing, a fresh verified backup, and a quiet error window."""
    for dag_id in (DAG, BACKUP):
        if ended := cluster.end_unfinished_runs(dag_id):
            print(f"marked failed, left running by an earlier test: {ended}")
    keep_writing(sandbox)
    heal_live_revisions(sandbox)
    status, run = cluster.trigger(BACKUP, {"environment": "sandbox"})
    assert status == 200, run
    assert cluster.wait_for_run(BACKUP, run["dag_run_id"], timeout=180) == "success"
    time.sleep(10)  # the drill's 10 s error window, clear of whatever an earlier test did


def heal_live_revisions(sandbox) -> None:
    """The faults an earlier module left on the live versions cleared and taken now (a release fault
    test may leave one live on purpose: the module that runs next on this worker's sandbox inherits
    it), then every service healthy through the gateway: the steady state each drill starts from."""
    for version in {version for _, version, _ in gateway_versions().values() if version not in (None, "none")}:
        if sandbox.clear_faults(version):
            print(f"cleared the faults left on live version {version}")
            sandbox.apply_faults(version)
    deadline = time.monotonic() + 30
    while sick := {service: got for service, got in gateway_versions().items() if got[0] != 200}:
        assert time.monotonic() < deadline, f"not healthy through the gateway after 30 s: {sick}"
        time.sleep(0.5)


def misbehave(sandbox, version: str, rate: float | None) -> None:
    """The live analytics revision answers 5xx at ``rate`` from now on (None: well again)."""
    if rate is None:
        sandbox.clear_faults(version)
    else:
        sandbox.register_fault(version, "errors", services=["analytics"], rate=rate)
    assert sandbox.apply_faults(version)


def drill(cluster, scenario: str = "data_loss", answer: str | None = "Approve") -> str:
    """A drill triggered (by admin) and, with ``answer``, answered by the approver once it is asked."""
    status, run = cluster.trigger(DAG, {"environment": "sandbox", "scenario": scenario})
    assert status == 200, run
    run_id = run["dag_run_id"]
    if answer:
        cluster.wait_parked(DAG, run_id, "approval")
        status, body = cluster.as_user("sre").answer(DAG, run_id, "approval", answer, {"comment": "drill"})
        assert status == 200, body
    return run_id


def xcom(cluster, run_id: str, task_id: str, map_index: int = -1):
    return cluster.xcom(DAG, run_id, task_id, map_index)


def test_a_data_loss_drill_restores_the_newest_backup_and_measures_the_recovery(cluster, sandbox):
    run_id = drill(cluster)
    assert cluster.wait_for_run(DAG, run_id, timeout=240) == "success", cluster.describe_run(DAG, run_id)
    destroyed, restored = xcom(cluster, run_id, "inject_failure"), xcom(cluster, run_id, "recover")
    assert set(destroyed["rows"]) == set(TABLES) and all(n > 0 for n in destroyed["rows"].values()), destroyed
    report = xcom(cluster, run_id, "report")
    print(measured(report))
    objectives = report["objectives"]
    assert report["outcome"] == "recovered within every objective"
    assert all(objectives[name]["met"] for name in ("rto", "rpo", "mttr")), objectives
    assert 0 < objectives["rto"]["measured_seconds"] < 40 and objectives["rpo"]["measured_seconds"] > 0
    # What the load generator wrote after the backup's snapshot is lost, and counted.
    assert report["lost_rows"]["analytics_events"] == (
        destroyed["rows"]["analytics_events"] - restored["rows"]["public.analytics_events"]
    )
    assert report["restored_backup"] == restored["stamp"] and 0 <= report["time_to_detect_seconds"] < 5
    assert report["timeline"]["detected_at"] <= report["timeline"]["restored_at"] <= report["timeline"]["recovered_at"]
    # Recovered means it stayed back for the test config's settle period (3 s); the RTO ends where that began.
    back = xcom(cluster, run_id, "steady_state_after")
    settled = datetime.fromisoformat(back["settled_at"]) - datetime.fromisoformat(back["at"])
    assert settled.total_seconds() >= 3, back
    # The data is back and the services write again; the environment is free.
    after = rows(sandbox)
    time.sleep(1)
    assert rows(sandbox) > after >= restored["rows"]["public.analytics_events"]
    assert Ledger("sandbox").holder() is None
    said = told(sandbox, run_id)
    assert ("dr_drill_passed", "info", 200) in said["slack"], said


def test_a_drill_nobody_approved_breaks_nothing(cluster, sandbox):
    before = rows(sandbox)
    run_id = drill(cluster, answer=None)
    cluster.wait_parked(DAG, run_id, "approval")
    status, detail = cluster.hitl_detail(DAG, run_id, "approval")
    assert status == 200 and [u["id"] for u in detail["assigned_users"]] == ["sre"], detail
    assert "drops discovery_searches" in detail["body"], detail["body"]
    status, body = cluster.as_user("sre").answer(DAG, run_id, "approval", "Reject", {"comment": "not today"})
    assert status == 200, body
    assert cluster.wait_for_run(DAG, run_id, timeout=120) == "failed"
    ran = {task: ti["state"] for (task, _), ti in cluster.task_instances(DAG, run_id).items()}
    assert ran["approval"] == "failed" and ran["inject_failure"] == "upstream_failed" and ran["abort"] == "skipped"
    assert rows(sandbox) > before, "the data was never touched"
    said = told(sandbox, run_id)["slack"]
    for kind in ("dr_drill_approval_requested", "dr_drill_rejected", "dr_drill_not_started"):
        assert any(k == kind for k, _, _ in said), (kind, said)
    assert Ledger("sandbox").holder() is None


def test_a_drill_whose_steady_state_does_not_hold_breaks_nothing(cluster, sandbox):
    live = sandbox.status()["services"]["analytics"]["live"]["version"]
    misbehave(sandbox, live, 0.5)
    try:
        time.sleep(3)
        before = rows(sandbox)
        run_id = drill(cluster)
        assert cluster.wait_for_run(DAG, run_id, timeout=120) == "failed"
    finally:
        misbehave(sandbox, live, None)
    ran = {task: ti["state"] for (task, _), ti in cluster.task_instances(DAG, run_id).items()}
    assert ran["steady_state_before"] == "failed" and ran["inject_failure"] == "upstream_failed"
    assert ran["abort"] == "skipped", "nothing was broken, so nothing is restored"
    assert "error ratio" in cluster.task_log(DAG, run_id, "steady_state_before", 1)
    assert rows(sandbox) > before, "the data was never touched"
    assert ("dr_drill_not_started", "warning", 200) in told(sandbox, run_id)["slack"]
    assert Ledger("sandbox").holder() is None


def test_a_recovery_that_does_not_come_back_in_time_is_aborted_and_restored(cluster, sandbox):
    live = sandbox.status()["services"]["analytics"]["live"]["version"]
    run_id = drill(cluster)
    try:
        # Once the data is gone, a service goes bad as well: the steady state cannot come back in time.
        cluster.wait_for_task(DAG, run_id, "inject_failure", states=("success",), timeout=120)
        misbehave(sandbox, live, 0.5)
        assert cluster.wait_for_run(DAG, run_id, timeout=240) == "failed", cluster.describe_run(DAG, run_id)
    finally:
        misbehave(sandbox, live, None)
    ran = {task: ti["state"] for (task, _), ti in cluster.task_instances(DAG, run_id).items()}
    assert ran["recover"] == "success" and ran["steady_state_after"] == "failed"
    assert ran["abort"] == "success" and ran["finish"] == "success" and ran["report"] == "failed"
    assert xcom(cluster, run_id, "abort")["outcome"].startswith("restored ")
    for table in TABLES:
        assert sql(sandbox, f"SELECT count(*) FROM {table}")[0][0] > 0
    assert ("dr_drill_aborted", "critical", 200) in told(sandbox, run_id)["slack"]
    assert Ledger("sandbox").holder() is None


def measured(report: dict) -> str:
    """One line of what a drill measured, for the test's output (``-s`` or a failure)."""
    figures = {name: o["measured_seconds"] for name, o in report["objectives"].items()}
    return f"{report['scenario']}: detect {report['time_to_detect_seconds']} s, " + ", ".join(
        f"{name.upper()} {seconds} s" for name, seconds in figures.items()
    )


def live_instances(sandbox, service: str) -> list[dict]:
    return sandbox.status()["services"][service]["live"]["instances"]


def test_a_killed_service_process_is_failed_over_and_replaced_while_users_barely_notice(cluster, sandbox):
    service = "recommendation"  # dr_drills.service in the sandbox config
    before = {i["instance"]: i["pid"] for i in live_instances(sandbox, service)}
    assert len(before) == 4, "a live revision runs two instances in each of two regions"
    started = time.time()
    run_id = drill(cluster, "service_failure")
    assert cluster.wait_for_run(DAG, run_id, timeout=240) == "success", cluster.describe_run(DAG, run_id)
    killed, recovered = xcom(cluster, run_id, "inject_failure"), xcom(cluster, run_id, "recover")
    assert killed["service"] == service and killed["pid"] == before[killed["instance"]]
    # The supervisor put a new process on the same instance; the other one served meanwhile.
    after = {i["instance"]: i for i in live_instances(sandbox, service)}
    assert (
        after[killed["instance"]]["running"] and after[killed["instance"]]["pid"] == recovered["pid"] != killed["pid"]
    )
    assert recovered["exit_code"] == -9 or recovered["exit_code"] is None, recovered
    report = xcom(cluster, run_id, "report")
    print(measured(report))
    assert report["outcome"] == "recovered within every objective", report
    assert report["killed"]["pid"] == killed["pid"] and report["instances_before"] == 2
    assert 0 <= report["time_to_detect_seconds"] < 5
    # Users: the load generator's requests to that service hardly failed (at most those in flight at the kill).
    seen = sandbox.traffic_report(since=started)["by_service"].get(service, {"total": 0, "failed": 0})
    assert seen["total"] > 50 and seen["failed"] <= 3, seen
    assert ("dr_drill_passed", "info", 200) in told(sandbox, run_id)["slack"]
    assert Ledger("sandbox").holder() is None


def test_a_killed_process_nothing_replaces_is_healed_by_the_abort_and_reported(cluster, sandbox):
    service = "recommendation"
    sandbox.stop_supervisor()
    try:
        run_id = drill(cluster, "service_failure")
        assert cluster.wait_for_run(DAG, run_id, timeout=240) == "failed", cluster.describe_run(DAG, run_id)
        ran = {task: ti["state"] for (task, _), ti in cluster.task_instances(DAG, run_id).items()}
        assert ran["inject_failure"] == "success" and ran["detect"] == "failed"
        assert ran["abort"] == "success" and ran["finish"] == "success" and ran["report"] == "failed"
        assert xcom(cluster, run_id, "abort")["outcome"] == "restarted 1 instance(s)"
        assert all(i["running"] for i in live_instances(sandbox, service))
        assert ("dr_drill_aborted", "critical", 200) in told(sandbox, run_id)["slack"]
        assert Ledger("sandbox").holder() is None
    finally:
        sandbox.up()  # the supervisor back
    assert sandbox.status()["supervisor"]["running"]


def test_a_complete_outage_is_recreated_from_terraform_the_newest_backup_and_the_ledger(cluster, sandbox):
    from varai_deploy.config import load_environment

    good = record_live_as_good(sandbox)
    state = load_environment("sandbox", Path(cluster.env["VARAI_ENVIRONMENTS_DIR"])).terraform.state_path
    run_id = drill(cluster, "complete_outage")
    assert cluster.wait_for_run(DAG, run_id, timeout=240) == "success", cluster.describe_run(DAG, run_id)
    broken, recovered = xcom(cluster, run_id, "inject_failure"), xcom(cluster, run_id, "recover")
    assert {s: g["version"] for s, g in broken["services"].items()} == good
    assert broken["terraform_state_deleted"] == str(state) and state.exists(), "Terraform wrote its state again"
    report = xcom(cluster, run_id, "report")
    print(measured(report))
    assert report["outcome"] == "recovered within every objective", report
    assert report["redeployed"] == good and report["restored_backup"] == recovered["stamp"]
    assert report["terraform"]["applied"] is True
    # Every service serves its last known good revision again, and the data is back and growing.
    services = sandbox.status()["services"]
    assert {s: (v["live"]["version"], v["live"]["running"]) for s, v in services.items()} == {
        s: (v, True) for s, v in good.items()
    }
    assert report["lost_rows"]["analytics_events"] == (
        broken["rows"]["analytics_events"] - recovered["rows"]["public.analytics_events"]
    )
    after = rows(sandbox)
    time.sleep(1)
    assert rows(sandbox) > after >= recovered["rows"]["public.analytics_events"]
    assert ("dr_drill_passed", "info", 200) in told(sandbox, run_id)["slack"]
    assert Ledger("sandbox").holder() is None


def test_a_worker_killed_mid_recreation_is_retried_and_the_retry_finishes_it(cluster, sandbox):
    """The recovery's steps are each checked before they are done again, so a try that died halfway
    (here in Terraform) is simply retried: the retry finds what the dead try did and finishes it."""
    good = record_live_as_good(sandbox)
    run_id = drill(cluster, "complete_outage")
    # The first pass of the recovery runs Terraform (seconds): the worker dies in the middle of it.
    cluster.wait_for_task(DAG, run_id, "recover", states=("running",), timeout=120, poll=0.2)
    assert cluster.kill_task(DAG, run_id, "recover")
    assert cluster.wait_for_run(DAG, run_id, timeout=240) == "success", cluster.describe_run(DAG, run_id)
    tis = cluster.task_instances(DAG, run_id)
    assert tis[("recover", -1)]["state"] == "success" and tis[("recover", -1)]["try_number"] >= 2
    assert tis[("abort", -1)]["state"] == "skipped"
    recovered = xcom(cluster, run_id, "recover")
    assert recovered["redeployed"] == good
    services = sandbox.status()["services"]
    assert {s: (v["live"]["version"], v["live"]["running"]) for s, v in services.items()} == {
        s: (v, True) for s, v in good.items()
    }
    keep_writing(sandbox)  # the data is back and the services write it
    assert Ledger("sandbox").holder() is None


def test_a_lost_region_is_failed_over_to_the_standby_which_then_serves_while_it_comes_back(cluster, sandbox):
    regions = sandbox.regions()
    lost, standby = regions["active"], next(r for r in regions["names"] if r != regions["active"])
    serving = [
        i["pid"] for s in sandbox.status()["services"].values() for i in s["live"]["instances"] if i["region"] == lost
    ]
    assert len(serving) == 10, "every service serves from two instances in the active region"
    started = time.time()
    run_id = drill(cluster, "region_failure")
    assert cluster.wait_for_run(DAG, run_id, timeout=240) == "success", cluster.describe_run(DAG, run_id)
    broken, recovered = xcom(cluster, run_id, "inject_failure"), xcom(cluster, run_id, "recover")
    assert (broken["region"], broken["standby"], broken["killed"]) == (lost, standby, 10)
    report = xcom(cluster, run_id, "report")
    print(measured(report))
    assert report["outcome"] == "recovered within every objective", report
    assert report["failed_over"] == {"from": lost, "to": standby, "killed": 10}
    assert 0 <= report["time_to_detect_seconds"] < 5 and report["objectives"]["rpo"]["measured_seconds"] < 5
    # Users were served from the standby from the failover on; the lost region came back as the standby.
    assert sandbox.regions() == {"names": regions["names"], "active": standby, "down": []}
    back = [i for s in sandbox.status()["services"].values() for i in s["live"]["instances"] if i["region"] == lost]
    assert all(i["running"] and i["pid"] not in serving for i in back) and len(back) == 10
    failed_over = datetime.fromisoformat(recovered["restored_at"]).timestamp()
    during, since = (
        sandbox.traffic_report(since=started, until=failed_over),
        sandbox.traffic_report(since=failed_over + 1),
    )
    assert during["failed"] > 0 and since["total"] > 50 and since["failed"] == 0, (during["by_status"], since)
    ran = {task: ti["state"] for (task, _), ti in cluster.task_instances(DAG, run_id).items()}
    assert ran["abort"] == "skipped" and ran["lift_failure"] == "success"
    assert ("dr_drill_passed", "info", 200) in told(sandbox, run_id)["slack"]
    assert Ledger("sandbox").holder() is None
