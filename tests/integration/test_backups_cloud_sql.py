"""database_backup with ``backups.method: cloud_sql`` through a real api-server, scheduler, LocalExecutor
and triggerer: each database's instance exports itself through the Cloud SQL Admin API (the sandbox's
stand-in, every request checked against the sqladmin discovery document, on the real PostgreSQL and
storage emulator) while the services keep writing, and a scratch database imports the export to prove
it; both waits deferred to the triggerer."""

from __future__ import annotations

import os

import pytest

from tests.support.airflow_cluster import AirflowCluster, free_port
from tests.support.app_data import keep_writing
from tests.support.environments import write_environments
from varai_deploy.backups.catalog import EXPORT, SOURCE_BEFORE, find
from varai_deploy.sandbox.cloudsql import CONN_ID

pytestmark = pytest.mark.integration

DAG = "database_backup"
DATABASES = ["app_db", "ledger"]  # the shipped sandbox config's backups.databases, in map order


@pytest.fixture(scope="module")
def cluster(stack, sandbox, tmp_path_factory):
    environments = write_environments(
        tmp_path_factory.mktemp("environments"), backups={"method": "cloud_sql"}, connections={"cloud_sql": CONN_ID}
    )
    cluster = AirflowCluster(
        {**os.environ, "VARAI_ENVIRONMENTS_DIR": str(environments)},
        api_port=free_port(exclude={19880}),
        log_dir=tmp_path_factory.mktemp("backups_cloud_sql"),
    )
    cluster.start()
    try:
        cluster.wait_for_dag(DAG)
        yield cluster
    finally:
        cluster.stop()


def xcom(cluster, run_id: str, task_id: str, map_index: int = -1):
    return cluster.xcom(DAG, run_id, task_id, map_index)


def test_each_instance_exports_itself_and_a_scratch_import_proves_it_deferred_to_the_triggerer(
    cluster, sandbox, monkeypatch
):
    from varai_deploy.hooks.backup_store import BackupStoreHook
    from varai_deploy.sandbox.components import read_connections_env

    # The test reads the bucket through the connection the tasks use.
    monkeypatch.setenv(
        "AIRFLOW_CONN_VARAI_BACKUPS", read_connections_env(sandbox.settings)["AIRFLOW_CONN_VARAI_BACKUPS"]
    )
    keep_writing(sandbox)
    if ended := cluster.end_unfinished_runs(DAG):
        print(f"marked failed, left running by an earlier test: {ended}")
    status, run = cluster.trigger(DAG, {"environment": "sandbox"})
    assert status == 200, run
    run_id = run["dag_run_id"]
    assert cluster.wait_for_run(DAG, run_id, timeout=180) == "success", cluster.describe_run(DAG, run_id)
    store = BackupStoreHook("varai_backups")
    for index, database in enumerate(DATABASES):
        verified = xcom(cluster, run_id, "database.verify", index)
        backup = find(store, "sandbox", database, verified["stamp"])
        assert backup.status == "verified" and {EXPORT, SOURCE_BEFORE} <= backup.objects, backup
        manifest = backup.manifest
        assert manifest["method"] == "cloud_sql" and manifest["protection"]["point_in_time_recovery"] is True
        # Every table of the proof lies between the source before the export and after it.
        for table, figures in backup.figures.items():
            low, high = manifest["source_before"][table]["rows"], manifest["source_after"][table]["rows"]
            assert low <= figures["rows"] <= high, (database, table, low, figures, high)
        # Both waits were deferred: the triggerer, not a worker slot, waited for Cloud SQL.
        for task in ("database.backup", "database.verify"):
            log = cluster.task_log(DAG, run_id, task, 1, map_index=index)
            assert "Pausing task as DEFERRED" in log, (task, log[-2000:])
    report = xcom(cluster, run_id, "report")
    assert set(report) == set(DATABASES) and all("newest verified" in line for line in report.values()), report
