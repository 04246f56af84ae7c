"""database_backup through a real api-server, scheduler, LocalExecutor and triggerer, on the sandbox's
PostgreSQL while the services keep writing, with the real storage emulator, Pushgateway and Prometheus.

Each test takes its own backups and reads only what its run made, so it passes alone and in any order.
"""

from __future__ import annotations

import time

import psutil
import pytest
import requests

from tests.support.app_data import keep_writing, rows, sql
from tests.support.notifications_told import told

pytestmark = pytest.mark.integration

DAG = "database_backup"
DATABASES = ["app_db", "ledger"]  # the shipped sandbox config's backups.databases, in map order


def backup(cluster) -> str:
    status, run = cluster.trigger(DAG, {"environment": "sandbox"})
    assert status == 200, run
    return run["dag_run_id"]


def xcom(cluster, run_id: str, task_id: str, map_index: int = -1):
    return cluster.xcom(DAG, run_id, task_id, map_index)


def prometheus(sandbox, query: str) -> list[dict]:
    url = f"http://{sandbox.settings.host}:{sandbox.settings.prometheus_port}/api/v1/query"
    answer = requests.get(url, params={"query": query}, timeout=5)
    return answer.json()["data"]["result"]


@pytest.fixture(scope="module")
def cluster(airflow_cluster):
    airflow_cluster.wait_for_dag(DAG)
    return airflow_cluster


@pytest.fixture(scope="module")
def writing(sandbox) -> None:
    keep_writing(sandbox)


@pytest.fixture(autouse=True)
def nothing_in_flight(cluster, writing) -> None:
    if ended := cluster.end_unfinished_runs(DAG):
        print(f"marked failed, left running by an earlier test: {ended}")


def test_two_runs_back_up_every_database_under_live_writes_each_proven_by_a_restore(cluster, sandbox):
    written_before = rows(sandbox)
    first, second = backup(cluster), backup(cluster)  # the second waits for the first (one at a time)
    for run_id in (first, second):
        assert cluster.wait_for_run(DAG, run_id, timeout=180) == "success", cluster.describe_run(DAG, run_id)
    backups = set()  # a backup is its database's folder and its stamp: two databases may share a millisecond
    for run_id in (first, second):
        for index, database in enumerate(DATABASES):
            verified = xcom(cluster, run_id, "database.verify", index)
            assert verified["database"] == database, verified
            backups.add((database, verified["stamp"]))
        report = xcom(cluster, run_id, "report")
        assert set(report) == set(DATABASES) and all("newest verified" in line for line in report.values()), report
    assert len(backups) == 4, "every run's backups are their own"
    # The services were writing throughout: the app backup holds rows, and rows kept coming.
    app = xcom(cluster, second, "database.verify", 0)
    assert app["tables"] == 4 and app["rows"] >= written_before, app
    assert rows(sandbox) > written_before
    # The age of the newest verified backup reaches Prometheus, and its alert stays quiet.
    deadline = time.time() + 15
    while time.time() < deadline:
        ages = prometheus(sandbox, 'time() - varai_backup_last_verified_timestamp_seconds{environment="sandbox"}')
        if {r["metric"]["database"] for r in ages} == set(DATABASES):
            break
        time.sleep(1)
    assert {r["metric"]["database"] for r in ages} == set(DATABASES), ages
    assert all(float(r["value"][1]) < 600 for r in ages), ages
    assert prometheus(sandbox, 'ALERTS{alertname="DatabaseBackupTooOld", environment="sandbox"}') == []
    # No scratch database is left behind.
    assert sql(sandbox, "SELECT datname FROM pg_database WHERE datname LIKE 'varai_verify_%'") == []


def test_a_worker_killed_mid_restore_is_retried_and_leaves_no_scratch_database(cluster, sandbox):
    # Enough data that the restore takes a moment to be caught in.
    sql(sandbox, "CREATE TABLE backup_test_bulk AS SELECT i, md5(i::text) AS note FROM generate_series(1, 400000) AS i")
    try:
        run_id = backup(cluster)
        deadline = time.time() + 120
        while time.time() < deadline:
            restoring = [
                p
                for p in psutil.process_iter(["name", "cmdline"])
                if p.info["name"] == "pg_restore" and any("varai_verify_app_db" in a for a in p.info["cmdline"] or [])
            ]
            if restoring:
                break
            time.sleep(0.05)
        assert restoring, cluster.describe_run(DAG, run_id)
        cluster.kill_task(DAG, run_id, "database.verify", map_index=0)
        assert cluster.wait_for_run(DAG, run_id, timeout=180) == "success", cluster.describe_run(DAG, run_id)
    finally:
        sql(sandbox, "DROP TABLE IF EXISTS backup_test_bulk")
    tries = cluster.task_tries(DAG, run_id, "database.verify", 0)
    assert [t["state"] for t in tries][-1] == "success" and len(tries) == 2, tries
    verified = xcom(cluster, run_id, "database.verify", 0)
    assert verified["rows"] >= 400000
    assert sql(sandbox, "SELECT datname FROM pg_database WHERE datname LIKE 'varai_verify_%'") == []


def test_a_database_that_cannot_be_reached_fails_its_backup_critical_and_the_others_still_back_up(cluster, sandbox):
    # New sessions are refused (the services keep the connections they have): as when the database is down.
    sql(sandbox, "ALTER DATABASE varai_app WITH ALLOW_CONNECTIONS false", "AIRFLOW_CONN_VARAI_LEDGER")
    try:
        run_id = backup(cluster)
        assert cluster.wait_for_run(DAG, run_id, timeout=180) == "failed", cluster.describe_run(DAG, run_id)
    finally:
        sql(sandbox, "ALTER DATABASE varai_app WITH ALLOW_CONNECTIONS true", "AIRFLOW_CONN_VARAI_LEDGER")
    ran = {(task, index): ti["state"] for (task, index), ti in cluster.task_instances(DAG, run_id).items()}
    assert ran[("database.backup", 0)] == "failed" and ran[("database.verify", 0)] == "upstream_failed"
    assert ran[("database.verify", 1)] == "success", "the ledger's backup does not depend on the app's"
    assert ran[("report", -1)] == "failed"
    said = told(sandbox, run_id)
    assert ("backup_failed", "critical", 200) in said["slack"], said
    assert any(kind == "backup_failed" and severity == "critical" for kind, severity, _ in said["email"]), said
    log = cluster.task_log(DAG, run_id, "report", 1)
    assert "app_db" in log and "this run's backup failed" in log
    failed_at = 'varai_backup_last_failure_timestamp_seconds{environment="sandbox",database="app_db"}'
    deadline = time.time() + 15
    while not (failures := prometheus(sandbox, failed_at)) and time.time() < deadline:
        time.sleep(1)
    assert failures and float(failures[0]["value"][1]) > time.time() - 300, failures
