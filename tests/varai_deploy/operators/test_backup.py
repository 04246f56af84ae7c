"""Backup, verification and retention of one database, against the real PostgreSQL and the real
storage emulator, with writes going on while the snapshot is taken."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
from airflow.sdk.exceptions import AirflowFailException

from tests.support.cdn_stack import cdn_stack
from varai_deploy.backups.catalog import DUMP, MANIFEST, VERIFIED, folder, list_backups, newest_verified, stamp_of
from varai_deploy.backups.postgres import BackupError
from varai_deploy.hooks.backup_store import BackupStoreHook
from varai_deploy.operators.backup import BackupDatabaseOperator, EnforceRetentionOperator, VerifyBackupOperator
from varai_deploy.sandbox.storage import BACKUP_CONN_ID
from varai_deploy.sandbox.storage import COMPONENT as STORAGE

CONTEXT = {"run_id": "manual__backup_test"}
DATABASE = "ledger"  # a role in the shipped sandbox config's backups.databases


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    with cdn_stack(tmp_path_factory.mktemp("backups") / "sandbox") as running:
        yield STORAGE.connections(running.settings, running.settings.component_port("storage"))[BACKUP_CONN_ID]


@pytest.fixture
def store(storage, ledger_conn, monkeypatch) -> BackupStoreHook:
    """The backup bucket, empty of the sandbox's backups; the database to back up is the test's own."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{BACKUP_CONN_ID.upper()}", json.dumps(storage))
    hook = BackupStoreHook(BACKUP_CONN_ID)
    hook.delete_names(hook.names("sandbox/"))
    return hook


def sql(conn: dict, *statements: str):
    db = psycopg2.connect(
        host=conn["host"], port=conn["port"], user=conn["login"], password=conn["password"], dbname=conn["schema"]
    )
    db.autocommit = True
    try:
        with db.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return cur.fetchall() if cur.description else None
    finally:
        db.close()


def events_table(conn: dict, rows: int = 1000) -> None:
    sql(
        conn,
        "CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), note text)",
        f"INSERT INTO events (note) SELECT 'event ' || i FROM generate_series(1, {rows}) AS i",
    )


def backup_now() -> dict:
    return BackupDatabaseOperator(task_id="backup", environment="sandbox", database=DATABASE).execute(CONTEXT)


def verify(taken: dict) -> dict:
    return VerifyBackupOperator(task_id="verify", environment="sandbox", database=DATABASE, backup=taken).execute(
        CONTEXT
    )


def scratch_databases(conn: dict) -> list[str]:
    return [r[0] for r in sql(conn, "SELECT datname FROM pg_database WHERE datname LIKE 'varai_verify_%'")]


def test_a_backup_taken_while_rows_are_written_restores_to_exactly_its_snapshot(store, ledger_conn):
    events_table(ledger_conn)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            sql(ledger_conn, "INSERT INTO events (note) VALUES ('during the backup')")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        taken = backup_now()
        verified = verify(taken)
    finally:
        stop.set()
        writer.join()
    (backup,) = list_backups(store, "sandbox", DATABASE)
    assert backup.status == "verified" and backup.objects == {DUMP, MANIFEST, VERIFIED}
    in_backup = backup.manifest["tables"]["public.events"]["rows"]
    final = sql(ledger_conn, "SELECT count(*) FROM events")[0][0]
    assert 1000 <= in_backup < final, "the writes went on past the snapshot and are not in it"
    assert taken == {"database": DATABASE, "stamp": backup.stamp, "rows": in_backup, "size": backup.manifest["size"]}
    assert verified["rows"] == in_backup and verified["tables"] == 1
    assert scratch_databases(ledger_conn) == []
    assert ledger_conn["password"] not in json.dumps([backup.manifest, backup.verified, taken, verified])


def test_a_dump_changed_in_the_bucket_is_failed_for_good_and_never_counted(store, ledger_conn):
    events_table(ledger_conn, rows=50)
    taken = backup_now()
    name = folder("sandbox", DATABASE, taken["stamp"]) + DUMP
    store.upload(store.bucket, name, data=b"not a dump")  # past the hook's write-once guard, as decay would
    with pytest.raises(AirflowFailException, match="is not what was written"):
        verify(taken)
    (backup,) = list_backups(store, "sandbox", DATABASE)
    assert backup.status == "failed" and newest_verified([backup]) is None
    # A retry does not try again: a bad dump stays bad.
    with pytest.raises(AirflowFailException, match="is not what was written"):
        verify(taken)
    assert scratch_databases(ledger_conn) == []


def test_verifying_twice_or_after_a_crash_mid_restore_converges(store, ledger_conn):
    events_table(ledger_conn, rows=20)
    taken = backup_now()
    # A verify killed mid-restore left its scratch database behind, half full.
    name = f"varai_verify_{DATABASE}_{taken['stamp']}".lower()
    sql(ledger_conn, f"CREATE DATABASE {name}")
    first = verify(taken)
    assert scratch_databases(ledger_conn) == []
    again = verify(taken)
    assert again["verified_at"] == first["verified_at"]


def test_retention_deletes_what_it_does_not_keep_and_keeps_the_newest_verified(store, ledger_conn, tmp_path: Path):
    dump = tmp_path / "dump"
    dump.write_bytes(b"x")
    now = datetime.now(UTC)
    stamps = {
        "old_verified": stamp_of(now - timedelta(days=45)),
        "old_failed": stamp_of(now - timedelta(days=40)),
        "unfinished": stamp_of(now - timedelta(days=39)),
    }
    for key, stamp in stamps.items():
        base = folder("sandbox", DATABASE, stamp)
        store.put_file(base + DUMP, dump)
        if key != "unfinished":
            store.put_json(base + MANIFEST, {"sha256": "x"})
        if key == "old_verified":
            store.put_json(base + VERIFIED, {"verified_at": "then"})
        if key == "old_failed":
            store.put_json(base + "failed.json", {"reason": "differs"})
    events_table(ledger_conn, rows=5)
    fresh = backup_now()
    verify(fresh)
    result = EnforceRetentionOperator(task_id="retention", environment="sandbox", database=DATABASE).execute(CONTEXT)
    assert result == {"database": DATABASE, "kept": 1, "deleted": 3}
    assert [b.stamp for b in list_backups(store, "sandbox", DATABASE)] == [fresh["stamp"]]
    # Without the fresh one, the 45-day-old verified backup would be the newest, and kept.
    store.delete_names(store.names(folder("sandbox", DATABASE, fresh["stamp"])))
    base = folder("sandbox", DATABASE, stamps["old_verified"])
    store.put_file(base + DUMP, dump)
    store.put_json(base + MANIFEST, {"sha256": "x"})
    store.put_json(base + VERIFIED, {"verified_at": "then"})
    result = EnforceRetentionOperator(task_id="retention", environment="sandbox", database=DATABASE).execute(CONTEXT)
    assert result["kept"] == 1 and result["deleted"] == 0


def test_a_database_that_refuses_the_login_fails_the_backup_saying_where_without_the_password(
    store, ledger_conn, monkeypatch
):
    wrong = {**ledger_conn, "password": "wrong-password-123"}
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_LEDGER", json.dumps(wrong))
    with pytest.raises(BackupError) as raised:
        backup_now()
    message = str(raised.value)
    assert f"{ledger_conn['host']}:{ledger_conn['port']}" in message and "varai_ledger" in message
    assert "wrong-password-123" not in message
    assert store.names("sandbox/") == []


def test_a_written_object_is_never_overwritten(store, tmp_path: Path):
    from varai_deploy.hooks.backup_store import BackupStoreError

    store.put_json("sandbox/ledger/x/manifest.json", {"a": 1})
    store.put_json("sandbox/ledger/x/manifest.json", {"a": 1})  # a retry of the same write
    with pytest.raises(BackupStoreError, match="never overwritten"):
        store.put_json("sandbox/ledger/x/manifest.json", {"a": 2})
    assert store.read_json("sandbox/ledger/x/manifest.json") == {"a": 1}


def restore_now() -> dict:
    from varai_deploy.operators.backup import RestoreBackupOperator

    return RestoreBackupOperator(task_id="restore", environment="sandbox", database=DATABASE).execute(CONTEXT)


def test_a_destroyed_table_comes_back_from_the_newest_verified_backup_and_again_the_same(store, ledger_conn):
    events_table(ledger_conn, rows=300)
    verify(backup_now())
    sql(ledger_conn, "INSERT INTO events (note) VALUES ('after the backup')", "DROP TABLE events")
    restored = restore_now()
    assert restored["rows"] == {"public.events": 300}
    assert sql(ledger_conn, "SELECT count(*) FROM events")[0][0] == 300  # the later row is the RPO's loss
    sql(ledger_conn, "INSERT INTO events (note) VALUES ('written again')")  # the sequence goes on from the backup's
    again = restore_now()
    assert again["stamp"] == restored["stamp"]
    assert sql(ledger_conn, "SELECT count(*) FROM events")[0][0] == 300


def test_only_a_verified_untampered_backup_is_restored(store, ledger_conn):
    from varai_deploy.backups.postgres import BackupError

    events_table(ledger_conn, rows=10)
    taken = backup_now()
    with pytest.raises(BackupError, match="no verified backup"):
        restore_now()
    verify(taken)
    store.upload(store.bucket, folder("sandbox", DATABASE, taken["stamp"]) + DUMP, data=b"not a dump")
    sql(ledger_conn, "DROP TABLE events")
    with pytest.raises(BackupError, match="not what was written.*nothing was restored"):
        restore_now()
