"""Backups with ``backups.method: cloud_sql``: the instance exports itself through the Cloud SQL Admin
API (the sandbox's stand-in, checked against the sqladmin discovery document, on the real PostgreSQL
and storage emulator), a scratch database on it imports the export to prove it, and a restore imports
it into the live database. Each wait is deferred: the trigger is run here as the triggerer would."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from tests.support.cloudsql_stack import cloudsql_stack
from tests.support.environments import write_environments
from varai_deploy.backups.catalog import EXPORT, MANIFEST, SOURCE_BEFORE, VERIFIED, folder, list_backups
from varai_deploy.hooks.backup_store import BackupStoreHook
from varai_deploy.operators.backup import BackupDatabaseOperator, RestoreBackupOperator, VerifyBackupOperator
from varai_deploy.sandbox.cloudsql import CONN_ID
from varai_deploy.sandbox.postgres import COMPONENT as POSTGRES
from varai_deploy.sandbox.postgres import CONN_ID as POSTGRES_CONN_ID
from varai_deploy.sandbox.storage import BACKUP_CONN_ID
from varai_deploy.sandbox.storage import COMPONENT as STORAGE

CONTEXT = {"run_id": "manual__cloud_sql_backup_test"}
DATABASE = "ledger"  # a role in the sandbox config's backups.databases


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with cloudsql_stack(tmp_path_factory.mktemp("cloudsql_backups") / "sandbox") as running:
        yield running


@pytest.fixture
def source(stack, tmp_path: Path, monkeypatch) -> str:
    """A database of the test's own with 500 events, backed up as the ``ledger`` role by Cloud SQL exports."""
    environments = write_environments(
        tmp_path / "environments", backups={"method": "cloud_sql"}, connections={"cloud_sql": CONN_ID}
    )
    monkeypatch.setenv("VARAI_ENVIRONMENTS_DIR", str(environments))
    name = stack.new_database()
    stack.sql(name, "CREATE TABLE events (id bigserial PRIMARY KEY, note text NOT NULL)")
    stack.sql(name, "INSERT INTO events (note) SELECT 'event ' || i FROM generate_series(1, 500) AS i")
    s = stack.settings
    postgres = POSTGRES.connections(s, s.component_port(POSTGRES.name))[POSTGRES_CONN_ID]
    storage = STORAGE.connections(s, s.component_port(STORAGE.name))[BACKUP_CONN_ID]
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_LEDGER", json.dumps({**postgres, "schema": name}))
    monkeypatch.setenv(f"AIRFLOW_CONN_{BACKUP_CONN_ID.upper()}", json.dumps(storage))
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", stack.connection_env())
    store = BackupStoreHook(BACKUP_CONN_ID)
    store.delete_names(store.names("sandbox/"))
    return name


@contextmanager
def locked(stack, database: str):
    """The events table locked: an export (a real pg_dump) waits on it, RUNNING, until the block ends."""
    lock = stack.connect(database)
    lock.autocommit = False
    try:
        with lock.cursor() as cur:
            cur.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        lock.rollback()
        lock.close()


def run_deferred(operator, call):
    """``call()`` until it stops deferring, each trigger run to its event as the triggerer would."""
    while True:
        try:
            return call()
        except TaskDeferred as deferred:
            event = asyncio.run(anext(deferred.trigger.run())).payload
            method = getattr(operator, deferred.method_name)
            call = lambda m=method, e=event, k=deferred.kwargs: m(CONTEXT, event=e, **(k or {}))  # noqa: E731


def backup_now() -> dict:
    operator = BackupDatabaseOperator(task_id="backup", environment="sandbox", database=DATABASE)
    return run_deferred(operator, lambda: operator.execute(CONTEXT))


def verify(taken: dict) -> dict:
    operator = VerifyBackupOperator(task_id="verify", environment="sandbox", database=DATABASE, backup=taken)
    return run_deferred(operator, lambda: operator.execute(CONTEXT))


def test_an_export_taken_while_rows_are_written_is_proven_by_an_import_and_restores_the_same(stack, source):
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            stack.sql(source, "INSERT INTO events (note) VALUES ('during the export')")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        taken = backup_now()
        verified = verify(taken)
    finally:
        stop.set()
        writer.join()
    store = BackupStoreHook(BACKUP_CONN_ID)
    (backup,) = list_backups(store, "sandbox", DATABASE)
    assert backup.status == "verified" and backup.objects == {SOURCE_BEFORE, EXPORT, MANIFEST, VERIFIED}
    manifest = backup.manifest
    assert manifest["method"] == "cloud_sql" and manifest["operation"] and manifest["snapshot_at"]
    assert manifest["protection"]["point_in_time_recovery"] is True
    before, after = (manifest[k]["public.events"]["rows"] for k in ("source_before", "source_after"))
    restored = backup.figures["public.events"]["rows"]
    assert 500 <= before <= restored <= after and verified["rows"] == restored
    assert not [d for d in stack.databases() if d.startswith("varai_verify_")], "the scratch database is dropped"
    # Verifying again is a no-op; a restore imports the export into the live database, identically.
    assert verify(taken)["verified_at"] == verified["verified_at"]
    stack.sql(source, "DROP TABLE events")
    back = RestoreBackupOperator(task_id="restore", environment="sandbox", database=DATABASE).execute(CONTEXT)
    assert back["rows"] == {"public.events": restored} and back["stamp"] == backup.stamp
    assert stack.sql(source, "SELECT count(*) FROM events")[0][0] == restored
    from varai_deploy.backups.postgres import Database, figures_of

    assert figures_of(Database.from_connection("varai_ledger"), source) == backup.figures


def test_an_export_cloud_sql_cannot_make_fails_the_backup_with_its_error(stack, source, monkeypatch):
    ledger = json.loads(os.environ["AIRFLOW_CONN_VARAI_LEDGER"])
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_LEDGER", json.dumps({**ledger, "schema": "no_such_db"}))
    operator = BackupDatabaseOperator(task_id="backup", environment="sandbox", database=DATABASE)
    with pytest.raises(Exception, match="no_such_db"):
        run_deferred(operator, lambda: operator.execute(CONTEXT))
    assert not [
        b for b in list_backups(BackupStoreHook(BACKUP_CONN_ID), "sandbox", DATABASE) if b.status != "incomplete"
    ]


def test_an_export_changed_in_the_bucket_is_failed_for_good(stack, source):
    taken = backup_now()
    store = BackupStoreHook(BACKUP_CONN_ID)
    name = folder("sandbox", DATABASE, taken["stamp"]) + EXPORT
    store.upload(store.bucket, name, data=b"not an export")  # past the write-once guard, as decay would
    with pytest.raises(AirflowFailException, match="does not import"):
        verify(taken)
    (backup,) = list_backups(store, "sandbox", DATABASE)
    assert backup.status == "failed"
    with pytest.raises(AirflowFailException, match="does not import"):
        verify(taken)  # a retry does not try again: a bad export stays bad
    assert not [d for d in stack.databases() if d.startswith("varai_verify_")]


def test_a_retried_backup_waits_for_the_export_a_dead_try_started_instead_of_asking_twice(stack, source):
    from varai_deploy.backups.cloud_sql import Instance
    from varai_deploy.backups.postgres import Database, figures_of

    store = BackupStoreHook(BACKUP_CONN_ID)
    stamp = "20261206T120000000Z"
    base = folder("sandbox", DATABASE, stamp)
    # What the first try did before its worker died: the source's figures kept, the export asked for. The
    # table is locked, so the export (a real pg_dump) waits on it, RUNNING.
    store.put_json(base + SOURCE_BEFORE, {"tables": figures_of(Database.from_connection("varai_ledger"), source)})
    with locked(stack, source):
        started = Instance(CONN_ID).start_export(source, f"gs://{store.bucket}/{base}{EXPORT}")
        retry = BackupDatabaseOperator(task_id="backup", environment="sandbox", database=DATABASE)
        with pytest.raises(TaskDeferred) as waits:
            retry.execute(CONTEXT)
        assert waits.value.trigger.operation == started and waits.value.kwargs == {"stamp": stamp}
    event = asyncio.run(anext(waits.value.trigger.run())).payload
    taken = retry.export_done(CONTEXT, event=event, **waits.value.kwargs)
    assert [b.stamp for b in list_backups(store, "sandbox", DATABASE)] == [stamp] == [taken["stamp"]]
    assert verify(taken)["rows"] == 500


def test_a_backup_waits_deferred_while_the_instance_runs_another_operation_and_writes_nothing_meanwhile(stack, source):
    from varai_deploy.backups.cloud_sql import Instance

    store = BackupStoreHook(BACKUP_CONN_ID)
    with locked(stack, source):
        # Another database's export (here: another folder's) holds the instance: Cloud SQL runs one at a time.
        other = Instance(CONN_ID).start_export(source, f"gs://{store.bucket}/elsewhere/export.sql.gz")
        operator = BackupDatabaseOperator(task_id="backup", environment="sandbox", database=DATABASE)
        with pytest.raises(TaskDeferred) as waits:
            operator.execute(CONTEXT)
        assert waits.value.method_name == "execute" and type(waits.value.trigger).__name__ == "DateTimeTrigger"
        assert store.names("sandbox/") == [], "nothing is written while it waits"
    Instance(CONN_ID).done(other)
    taken = run_deferred(operator, lambda: operator.execute(CONTEXT, event=None))
    assert verify(taken)["rows"] == 500
    store.delete_names(store.names("elsewhere/"))


def test_a_proof_whose_scratch_database_cannot_be_dropped_yet_waits_deferred_then_writes_its_verdict(stack, source):
    from varai_deploy.backups.cloud_sql import Instance

    store = BackupStoreHook(BACKUP_CONN_ID)
    taken = backup_now()
    operator = VerifyBackupOperator(task_id="verify", environment="sandbox", database=DATABASE, backup=taken)
    with pytest.raises(TaskDeferred) as imports:
        operator.execute(CONTEXT)
    imported = asyncio.run(anext(imports.value.trigger.run())).payload
    scratch = operator.scratch_name(taken["stamp"])
    with locked(stack, source):
        other = Instance(CONN_ID).start_export(source, f"gs://{store.bucket}/elsewhere/export.sql.gz")
        with pytest.raises(TaskDeferred) as waits:
            operator.import_done(CONTEXT, event=imported, **imports.value.kwargs)
        assert waits.value.method_name == "judged" and scratch in stack.databases()
        (backup,) = list_backups(store, "sandbox", DATABASE)
        assert backup.status == "unverified", "no verdict before the scratch database is gone"
    Instance(CONN_ID).done(other)
    verified = run_deferred(operator, lambda: operator.judged(CONTEXT, **waits.value.kwargs))
    assert verified["rows"] == 500 and scratch not in stack.databases()
    (backup,) = list_backups(store, "sandbox", DATABASE)
    assert backup.status == "verified" and backup.figures["public.events"]["rows"] == 500
    store.delete_names(store.names("elsewhere/"))
