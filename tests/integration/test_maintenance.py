"""The maintenance window and emergency maintenance through a real api-server, scheduler and
triggerer, under steady traffic.

The cluster reads a copy of the tests' sandbox config (``VARAI_ENVIRONMENTS_DIR``) with short step
budgets (security updates 1.1 min, the least a blue-green update with the tests' windows can take)
and a 6 s wait for a running release. Each test first has every service serving a judged release
(v7.x, this module's own), so it passes alone and in any order.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime

import pytest

from tests.support.airflow_cluster import AirflowCluster, free_port
from tests.support.environments import write_environments
from tests.support.notifications_told import told
from tests.support.stack import gateway_versions
from varai_deploy.config import release_of
from varai_deploy.ledger import Ledger
from varai_deploy.services import SERVICE_NAMES

pytestmark = pytest.mark.integration

WINDOW, RELEASE, EMERGENCY = "maintenance_window", "ai_discovery_release", "emergency_maintenance"
#: The CTO (maintenance.emergency_approvers in the shipped sandbox config) and an engineer.
USERS = {"cto": "op", "bob": "op"}


def quiet_hour(now: datetime) -> int:
    """02 (the guide's), unless a first Sunday's 02:00 window is within hours: one that fell due
    mid-run would hold the environment (the schedules are on in this module)."""
    from datetime import timedelta

    from varai_deploy.maintenance.window import WindowRule

    next_window = WindowRule.parse("first sunday", "02:00", 120, 48).next_start(now - timedelta(hours=2))
    return 14 if next_window - now < timedelta(hours=6) else 2


WINDOW_HOUR = quiet_hour(datetime.now(UTC))
MAINTENANCE = {
    "start": f"{WINDOW_HOUR:02d}:00",
    "wait_for_operation_minutes": 0.1,
    # The database's budget is small so that, in a 1.2-minute window, it still fits after a backup that
    # took up to a minute on a loaded machine, while security updates (1.1 min) never fit once one ran.
    "budgets_minutes": {"backup": 0.4, "security_updates": 1.1, "database": 0.2},
}
_versions = iter(range(1, 1000))
DRILL_CRON = "0 3 1 1 *"  # 1 January, 03:00 UTC


@pytest.fixture(scope="module")
def cluster(stack, sandbox, tmp_path_factory):
    # The DR drill's cron long past this year's slot: catch-up off must not run that one at start (a
    # drill would take the environment mid-module), and the next one is next year's.
    environments = write_environments(
        tmp_path_factory.mktemp("environments"), maintenance=MAINTENANCE, dr_drills={"schedule": DRILL_CRON}
    )
    # The schedules on (the other modules' clusters have none), drawn from the sandbox's window.
    env = {**os.environ, "VARAI_ENVIRONMENTS_DIR": str(environments), "VARAI_SCHEDULED_ENVIRONMENT": "sandbox"}
    cluster = AirflowCluster(
        env, api_port=free_port(exclude={19880}), log_dir=tmp_path_factory.mktemp("maintenance"), users=USERS
    )
    cluster.start()
    for dag_id in (WINDOW, RELEASE, EMERGENCY, "database_backup", "dr_drill"):
        cluster.wait_for_dag(dag_id)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def nothing_in_flight(cluster) -> None:
    for dag_id in (WINDOW, RELEASE, EMERGENCY):
        if ended := cluster.end_unfinished_runs(dag_id):
            print(f"marked failed, left running by an earlier test: {ended}")


def release(cluster: AirflowCluster) -> tuple[str, str]:
    version = f"v7.{next(_versions)}.0"
    conf = {"version": version, "services": list(SERVICE_NAMES), "marketplaces": [], "environment": "sandbox"}
    status, run = cluster.trigger(RELEASE, conf)
    assert status == 200, run
    return version, run["dag_run_id"]


def all_released(cluster: AirflowCluster) -> dict[str, str]:
    """Every service serving one judged release, with no fault registered: what serves."""
    version, run_id = release(cluster)
    assert cluster.wait_for_run(RELEASE, run_id, timeout=360) == "success", cluster.describe_run(RELEASE, run_id)
    served = {service: version for service, (_, version, _) in gateway_versions().items()}
    assert set(served.values()) == {version}
    return served


def open_window(cluster: AirflowCluster, **conf) -> str:
    status, run = cluster.trigger(WINDOW, {"environment": "sandbox", **conf})
    assert status == 200, run
    return run["dag_run_id"]


def xcom(cluster: AirflowCluster, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
    status, body = cluster.call(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true"
    )
    return body.get("value") if status == 200 else None


def states(cluster: AirflowCluster, run_id: str) -> dict[str, str]:
    return {task: ti["state"] for (task, _), ti in cluster.task_instances(WINDOW, run_id).items()}


def patch_label() -> str:
    return f"sec.{datetime.now(UTC):%Y%m%d}"


def status_page_history(sandbox, name_part: str) -> list[str]:
    """The statuses the one status page entry whose name has ``name_part`` went through, oldest first."""
    from varai_deploy.sandbox.statuspage import history, incidents

    entries = [i for i in incidents(sandbox.settings) if name_part in i["name"]]
    assert len(entries) == 1, [i["name"] for i in incidents(sandbox.settings)]
    return [status for _, status, _ in history(entries[0])]


def kinds(sandbox, run_id: str) -> set[tuple[str, str]]:
    """(kind, severity) of every notification about ``run_id``, on any channel."""
    return {(kind, severity) for said in told(sandbox, run_id).values() for kind, severity, _ in said}


def test_a_window_patches_every_service_under_load_without_failing_a_request_and_refuses_releases(cluster, sandbox):
    before = all_released(cluster)
    started = time.time()
    run_id = open_window(cluster)
    # While it holds the environment, a release is refused at once, naming when the window ends.
    cluster.wait_for_task(WINDOW, run_id, "open_window", states=("success",), timeout=120)
    refused_version, refused = release(cluster)
    assert cluster.wait_for_run(RELEASE, refused, timeout=120) == "failed"
    lock_log = cluster.task_log(RELEASE, refused, "lock", 1)
    end = xcom(cluster, WINDOW, run_id, "window", "end")
    assert f"maintenance run '{run_id}' of {WINDOW}" in lock_log
    assert f"until {datetime.fromisoformat(end):%Y-%m-%d %H:%M:%S} UTC" in lock_log

    assert cluster.wait_for_run(WINDOW, run_id, timeout=480) == "success", cluster.describe_run(WINDOW, run_id)
    report = sandbox.traffic_report(since=started, until=time.time())
    assert report["total"] > 200
    assert report["failed"] == 0, report["failures"][:5]
    patched = {service: f"{release_of(v)}+{patch_label()}" for service, v in before.items()}
    assert {s: v for s, (_, v, _) in gateway_versions().items()} == patched
    ledger = Ledger("sandbox")
    assert all(ledger.revision(s, v).verdict == "passed" for s, v in patched.items())
    assert ledger.holder() is None
    # What ran, on the status page and to the team.
    assert status_page_history(sandbox, xcom(cluster, WINDOW, run_id, "window", "start")[:16].replace("T", " ")) == [
        "scheduled",
        "in_progress",
        "verifying",
        "completed",
    ]
    said = kinds(sandbox, run_id)
    assert ("maintenance_started", "info") in said and ("maintenance_succeeded", "info") in said
    outcome = xcom(cluster, WINDOW, run_id, "report")
    assert outcome["outcome"] == "completed"
    # A database_backup run of its own, verified before anything changed.
    backup_run = xcom(cluster, WINDOW, run_id, "backup.take_backup", "trigger_run_id")
    assert backup_run == f"maintenance__{run_id}"
    assert outcome["Backup"] == f"taken and verified (database_backup run {backup_run})"
    assert cluster.run_state("database_backup", backup_run) == "success"
    backed_up = cluster.task_instance("database_backup", backup_run, "report")["end_date"]
    switched = cluster.task_instance(WINDOW, run_id, "security_updates.targets")["start_date"]
    assert backed_up < switched
    assert "ledger: " in outcome["Database"]
    assert refused_version not in str(gateway_versions())


def test_a_step_that_would_overrun_the_window_is_not_started(cluster, sandbox):
    before = all_released(cluster)
    run_id = open_window(cluster, length_minutes=1.2)
    assert cluster.wait_for_run(WINDOW, run_id, timeout=240) == "success", cluster.describe_run(WINDOW, run_id)
    ran = states(cluster, run_id)
    # backup (0.4 min), then database (0.2 min) fit in a 1.2-minute window; security updates (1.1 min) no
    # longer do once the backup has run.
    assert ran["security_updates.fits"] == "skipped"
    assert ran["security_updates.targets"] == "skipped"
    assert ran["database.maintain"] == "success"
    not_started = xcom(cluster, WINDOW, run_id, "security_updates.fits", "not_started")
    assert re.fullmatch(
        r"security_updates needs up to 1.1 min and the window closes in (0\.\d|1\.0) min \(at .* UTC\): not started",
        not_started,
    ), not_started
    assert {s: v for s, (_, v, _) in gateway_versions().items()} == before
    outcome = xcom(cluster, WINDOW, run_id, "report")
    assert outcome["outcome"] == "completed, with steps left out"
    assert outcome["Did not fit"] == not_started
    assert ("maintenance_step_skipped", "warning") in kinds(sandbox, run_id)


def test_a_security_update_that_breaks_a_service_rolls_every_service_back(cluster, sandbox):
    before = all_released(cluster)
    broken = f"{release_of(before['recommendation'])}+{patch_label()}"
    sandbox.register_fault(broken, "errors", services=["recommendation"], rate=0.6)
    try:
        run_id = open_window(cluster)
        assert cluster.wait_for_run(WINDOW, run_id, timeout=480) == "failed"
    finally:
        sandbox.clear_faults(broken)
    assert {s: v for s, (_, v, _) in gateway_versions().items()} == before
    ran = states(cluster, run_id)
    assert ran["security_updates.rollback_on_failure"] == "failed"
    assert ran["report"] == "failed"
    assert ran["database.maintain"] == "success"  # the next step still ran: the window goes on
    assert Ledger("sandbox").revision("recommendation", broken).verdict == "rolled_back"
    assert ("maintenance_rolled_back", "critical") in kinds(sandbox, run_id)
    assert Ledger("sandbox").holder() is None


def test_a_release_running_at_the_window_start_is_waited_for_then_the_window_is_skipped(cluster, sandbox):
    all_released(cluster)
    version, release_run = release(cluster)
    cluster.wait_for_task(RELEASE, release_run, "lock", states=("success",), timeout=120)
    run_id = open_window(cluster)
    assert cluster.wait_for_run(WINDOW, run_id, timeout=120) == "success", cluster.describe_run(WINDOW, run_id)
    ran = states(cluster, run_id)
    assert ran["lock"] == "skipped"
    assert all(ran[task] == "skipped" for task in ("security_updates.targets", "database.maintain"))
    refused = xcom(cluster, WINDOW, run_id, "lock", "refused")
    assert f"release run '{release_run}'" in refused and "(waited 6 s)" in refused
    # It waited in the triggerer (deferred), asking again, before it gave up.
    assert "asking again until" in cluster.task_log(WINDOW, run_id, "lock", 1)
    assert xcom(cluster, WINDOW, run_id, "report") == {"outcome": "skipped", "reason": refused}
    assert ("maintenance_skipped", "warning") in kinds(sandbox, run_id)
    # The release was not disturbed.
    assert cluster.wait_for_run(RELEASE, release_run, timeout=360) == "success"
    assert {v for _, v, _ in gateway_versions().values()} == {version}


def emergency(cluster: AirflowCluster, **conf) -> str:
    conf = {"environment": "sandbox", "reason": "openssl in the base image: remote code execution", **conf}
    status, run = cluster.as_user("bob").trigger(EMERGENCY, conf)
    assert status == 200, run
    return run["dag_run_id"]


def incident_history(sandbox, run_id: str) -> list[str]:
    return status_page_history(sandbox, f"Emergency maintenance (sandbox) {run_id}")


def test_an_emergency_fix_waits_for_the_cto_alone_then_goes_out_through_blue_green(cluster, sandbox):
    before = all_released(cluster)
    run_id = emergency(cluster, cve="CVE-2026-12345", services=["recommendation", "analytics"])
    cluster.wait_parked(EMERGENCY, run_id, "approval")
    status, detail = cluster.hitl_detail(EMERGENCY, run_id, "approval")
    assert status == 200 and [u["id"] for u in detail["assigned_users"]] == ["cto"], detail
    # Nobody but the CTO: the engineer who asked is refused by the API.
    status, body = cluster.as_user("bob").answer(EMERGENCY, run_id, "approval", "Approve")
    assert status == 403, (status, body)
    assert incident_history(sandbox, run_id) == ["investigating"]
    started = time.time()
    status, body = cluster.as_user("cto").answer(EMERGENCY, run_id, "approval", "Approve", {"comment": "go"})
    assert status == 200, body
    assert cluster.wait_for_run(EMERGENCY, run_id, timeout=360) == "success", cluster.describe_run(EMERGENCY, run_id)
    fixed = {s: f"{release_of(v)}+cve-2026-12345" for s, v in before.items() if s in ("recommendation", "analytics")}
    assert {s: v for s, (_, v, _) in gateway_versions().items()} == {**before, **fixed}
    assert sandbox.traffic_report(since=started, until=time.time())["failed"] == 0
    assert incident_history(sandbox, run_id) == ["investigating", "identified", "monitoring", "resolved"]
    said = kinds(sandbox, run_id)
    for kind in ("emergency_requested", "emergency_update", "emergency_succeeded"):
        assert any(k == kind for k, _ in said), (kind, said)
    assert Ledger("sandbox").holder() is None


def test_an_emergency_fix_that_fails_its_checks_is_rolled_back_at_once(cluster, sandbox):
    before = all_released(cluster)
    run_id = emergency(cluster, services=["analytics"])
    cluster.wait_parked(EMERGENCY, run_id, "approval")
    fix = xcom(cluster, EMERGENCY, run_id, "validate")
    assert fix == ["analytics"]
    # The rebuild the run will deploy is named after the minute it was asked for; break whichever it is.
    run = cluster.run(EMERGENCY, run_id)
    broken = f"{release_of(before['analytics'])}+hotfix.{datetime.fromisoformat(run['run_after']):%Y%m%d%H%M}"
    sandbox.register_fault(broken, "errors", services=["analytics"], rate=0.6)
    try:
        status, body = cluster.as_user("cto").answer(EMERGENCY, run_id, "approval", "Approve")
        assert status == 200, body
        assert cluster.wait_for_run(EMERGENCY, run_id, timeout=360) == "failed"
    finally:
        sandbox.clear_faults(broken)
    assert {s: v for s, (_, v, _) in gateway_versions().items()} == before
    assert Ledger("sandbox").revision("analytics", broken).verdict == "rolled_back"
    assert incident_history(sandbox, run_id) == ["investigating", "identified", "resolved"]
    assert ("emergency_rolled_back", "critical") in kinds(sandbox, run_id)


def test_the_scheduler_plans_the_next_window_and_its_notice_from_the_registered_timetable(cluster, sandbox):
    from datetime import date, timedelta

    now = datetime.now(UTC)
    first_sundays = []
    for i in range(3):
        y, m = now.year + (now.month - 1 + i) // 12, (now.month - 1 + i) % 12 + 1
        day = next(d for d in range(1, 8) if date(y, m, d).weekday() == 6)
        first_sundays.append(datetime(y, m, day, WINDOW_HOUR, 0, tzinfo=UTC))
    window = next(s for s in first_sundays if s + timedelta(hours=2) > now)
    notice_for = next(s for s in first_sundays if s > now)
    planned = {dag_id: cluster.call("GET", f"/api/v2/dags/{dag_id}")[1] for dag_id in (WINDOW, "maintenance_notice")}
    assert datetime.fromisoformat(planned[WINDOW]["next_dagrun_run_after"]) == window, planned[WINDOW]
    hours = f"{WINDOW_HOUR:02d}:00-{WINDOW_HOUR + 2:02d}:00"
    assert planned[WINDOW]["timetable_summary"] == f"window: first Sunday of the month, {hours} UTC"
    notice = planned["maintenance_notice"]
    assert datetime.fromisoformat(notice["next_dagrun_run_after"]) == notice_for - timedelta(hours=48), notice
    assert datetime.fromisoformat(notice["next_dagrun_data_interval_end"]) == notice_for
    # The drill waits for its next time; the one that passed earlier this year never ran.
    drill = cluster.call("GET", "/api/v2/dags/dr_drill")[1]
    assert datetime.fromisoformat(drill["next_dagrun_run_after"]) == datetime(now.year + 1, 1, 1, 3, tzinfo=UTC), drill
    assert cluster.call("GET", "/api/v2/dags/dr_drill/dagRuns?run_type=scheduled")[1]["total_entries"] == 0


def test_a_notice_announces_the_next_window_once_on_the_status_page_and_to_the_team(cluster, sandbox):
    from varai_deploy.sandbox.statuspage import incidents

    runs = []
    for _ in range(2):  # announcing twice (a retry, a second click) posts one entry
        status, run = cluster.trigger("maintenance_notice", {"environment": "sandbox"})
        assert status == 200, run
        assert cluster.wait_for_run("maintenance_notice", run["dag_run_id"], timeout=120) == "success"
        runs.append(run["dag_run_id"])
    announced = xcom(cluster, "maintenance_notice", runs[0], "announce")
    assert announced == xcom(cluster, "maintenance_notice", runs[1], "announce")
    start = datetime.fromisoformat(announced["start"])
    assert (start.weekday(), start.hour, start.day <= 7) == (6, WINDOW_HOUR, True)
    name = f"Scheduled maintenance (sandbox), {start:%Y-%m-%d %H:%M} UTC"
    [entry] = [i for i in incidents(sandbox.settings) if i["name"] == name]
    assert (entry["status"], entry["id"]) == ("scheduled", announced["status_page"])
    assert datetime.fromisoformat(entry["scheduled_until"].replace("Z", "+00:00")) == datetime.fromisoformat(
        announced["end"]
    )
    for run_id in runs:
        assert ("maintenance_announced", "info") in kinds(sandbox, run_id)
