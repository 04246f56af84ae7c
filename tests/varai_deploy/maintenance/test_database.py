"""The monthly database maintenance against a real PostgreSQL, with the live application's habits
played by other sessions: writes going on, a table locked, a rebuild that died half-way."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from varai_deploy.maintenance.database import MaintenanceError, maintain_database

CONN_ID = "varai_ledger"


def connect(conn: dict, *, login: str | None = None, password: str | None = None):
    db = psycopg2.connect(
        host=conn["host"],
        port=conn["port"],
        user=login or conn["login"],
        password=password or conn["password"],
        dbname=conn["schema"],
    )
    db.autocommit = True
    return db


def execute(conn: dict, *statements: str) -> None:
    """On a session of its own, closed at once: a backend sends its table statistics when it ends."""
    db = connect(conn)
    try:
        with db.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        db.close()


def scalar(conn: dict, query: str):
    db = connect(conn)
    try:
        with db.cursor() as cur:
            cur.execute(query)
            return cur.fetchone()[0]
    finally:
        db.close()


def make_bloated(conn: dict, name: str = "orders", *, secondary_index: bool = True, more: tuple = ()) -> None:
    """50k rows, nine in ten deleted: 45k dead rows, and indexes nine-tenths empty once vacuumed.

    ``more``: further statements (indexes) run before the delete, so they bloat too.
    """
    execute(
        conn,
        f"CREATE TABLE {name} (id int PRIMARY KEY, customer int NOT NULL, note text) WITH (autovacuum_enabled = false)",
        f"INSERT INTO {name} SELECT g, g % 997, md5(g::text) FROM generate_series(1, 50000) g",
        *([f"CREATE INDEX {name}_customer ON {name} (customer)"] if secondary_index else []),
        *more,
        f"DELETE FROM {name} WHERE id % 10 <> 0",
    )


def make_steady(conn: dict, name: str = "customers") -> None:
    """50k rows only ever inserted: nothing to clean, an index as dense as a fresh one."""
    execute(
        conn,
        f"CREATE TABLE {name} (id int PRIMARY KEY, email text) WITH (autovacuum_enabled = false)",
        f"INSERT INTO {name} SELECT g, g || '@example.com' FROM generate_series(1, 50000) g",
    )


def invalid_indexes(conn: dict) -> list[str]:
    db = connect(conn)
    try:
        with db.cursor() as cur:
            cur.execute(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE NOT i.indisvalid ORDER BY 1"
            )
            return [r[0] for r in cur.fetchall()]
    finally:
        db.close()


def open_writer(conn: dict, table: str = "orders"):
    """A session in the middle of a transaction that wrote to ``table`` (holds ROW EXCLUSIVE)."""
    db = connect(conn)
    db.autocommit = False
    with db.cursor() as cur:
        cur.execute(f"INSERT INTO {table} (id, customer, note) VALUES (-1, 1, 'in flight')")
    return db


def leave_invalid_index(conn: dict, index: str) -> None:
    """What a crashed run leaves: a concurrent rebuild that died after creating ``<index>_ccnew``."""
    writer = open_writer(conn)
    try:
        db = connect(conn)
        try:
            with db.cursor() as cur:
                cur.execute("SET lock_timeout = '200ms'")
                with pytest.raises(psycopg2.errors.LockNotAvailable):
                    cur.execute(f"REINDEX INDEX CONCURRENTLY {index}")
        finally:
            db.close()
    finally:
        writer.rollback()
        writer.close()


class Recorder:
    """Stands in for a task's logger: keeps every line, formatted."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _record(self, msg: str, *args) -> None:
        self.lines.append(msg % args)

    debug = info = warning = error = exception = _record


def reasons(result: dict, step: str) -> dict[str, str]:
    return {s["name"]: s["reason"] for s in result["skipped"] if s["step"] == step}


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_vacuums_every_table_and_rebuilds_only_the_bloated_indexes(ledger_conn, monkeypatch, driver):
    # The Postgres provider hands out psycopg 3 or psycopg2 connections depending on SQLAlchemy: both work.
    monkeypatch.setattr("airflow.providers.postgres.hooks.postgres.USE_PSYCOPG3", driver == "psycopg")
    make_bloated(ledger_conn)
    make_steady(ledger_conn)

    log = Recorder()
    result = maintain_database(CONN_ID, log=log)

    assert result["database"] == ledger_conn["schema"]
    assert (result["skipped"], result["errors"], result["leftovers"]) == ([], [], [])
    assert result["bloat_method"] == "pgstatindex"
    orders, customers = result["tables"]["public.orders"], result["tables"]["public.customers"]
    assert orders["vacuumed"] and customers["vacuumed"]
    assert orders["before"]["dead_tuples"] >= 40_000
    assert orders["after"]["dead_tuples"] <= 100
    assert orders["after"]["live_tuples"] == 5_000
    for figures in (orders["before"], orders["after"], customers["before"], customers["after"]):
        assert figures["table_bytes"] > 0 and figures["total_bytes"] > figures["table_bytes"]
        assert {"last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze"} <= set(figures)
    assert orders["before"]["last_vacuum"] is None and orders["after"]["last_vacuum"] is not None
    assert orders["after"]["total_bytes"] < orders["before"]["total_bytes"]

    for name in ("public.orders_pkey", "public.orders_customer"):
        index = result["indexes"][name]
        assert index["reindexed"], index
        assert index["bloat_method"] == "pgstatindex"
        assert index["bloat_after_vacuum"] > 0.8
        assert index["after"]["size_bytes"] < index["before"]["size_bytes"] / 3
        assert index["after"]["bloat_ratio"] < 0.3
    steady = result["indexes"]["public.customers_pkey"]
    assert not steady["reindexed"]
    assert steady["bloat_after_vacuum"] < 0.1
    assert steady["after"]["size_bytes"] == steady["before"]["size_bytes"]

    assert result["summary"].startswith("2 of 2 tables vacuumed, dead tuples ")
    assert " -> 0, 2 indexes reindexed, size " in result["summary"]
    assert invalid_indexes(ledger_conn) == []
    # JSON-able (no NaN either), and the password is nowhere.
    text = json.dumps(result, allow_nan=False)
    assert ledger_conn["password"] not in text
    assert not any(ledger_conn["password"] in line for line in log.lines)
    assert any(line.endswith(result["summary"]) for line in log.lines)


def test_a_deadline_already_past_changes_nothing_and_lists_everything_as_skipped(ledger_conn):
    make_bloated(ledger_conn)
    make_steady(ledger_conn)
    leave_invalid_index(ledger_conn, "orders_pkey")

    result = maintain_database(CONN_ID, deadline=datetime.now(UTC) - timedelta(minutes=1))

    assert result["errors"] == []
    assert not any(t["vacuumed"] for t in result["tables"].values())
    assert not any(i["reindexed"] for i in result["indexes"].values())
    closed = "the window closed at "
    assert set(reasons(result, "vacuum")) == {"public.orders", "public.customers"}
    assert set(reasons(result, "reindex")) == {"public.orders_pkey", "public.orders_customer", "public.customers_pkey"}
    assert set(reasons(result, "drop_leftover")) == {"public.orders_pkey_ccnew"}
    assert all(s["reason"].startswith(closed) for s in result["skipped"]), result["skipped"]
    for table in result["tables"].values():
        assert table["after"]["dead_tuples"] == table["before"]["dead_tuples"]
        assert table["after"]["last_vacuum"] is None
    for index in result["indexes"].values():
        assert index["after"]["size_bytes"] == index["before"]["size_bytes"]
    assert invalid_indexes(ledger_conn) == ["orders_pkey_ccnew"]
    assert result["summary"].startswith("0 of 2 tables vacuumed, dead tuples ")
    assert ", 0 indexes reindexed, " in result["summary"] and result["summary"].endswith(", 6 steps skipped")


def test_a_step_still_running_when_the_window_closes_is_cut_short_and_cleaned_up(ledger_conn):
    """A rebuild waiting on an application transaction is cancelled at the deadline, not after lock_timeout."""
    make_bloated(ledger_conn)
    writer = open_writer(ledger_conn)
    # The application's transaction ends a second after the window closes: the clean-up can go ahead then.
    letgo = threading.Timer(3.0, writer.rollback)
    letgo.start()
    try:
        started = time.monotonic()
        result = maintain_database(CONN_ID, deadline=datetime.now(UTC) + timedelta(seconds=2), lock_timeout_seconds=30)
        took = time.monotonic() - started
    finally:
        letgo.cancel()
        letgo.join()
        writer.close()

    assert 2 <= took < 8
    assert result["errors"] == []
    assert result["tables"]["public.orders"]["vacuumed"]
    skipped = reasons(result, "reindex")
    # The bigger index first; its rebuild was under way when the window closed, the other never started.
    assert skipped["public.orders_pkey"].startswith("cut short when the window closed at ")
    assert skipped["public.orders_customer"].startswith("the window closed at ")
    assert [(lo["index"], lo["dropped"]) for lo in result["leftovers"]] == [("public.orders_pkey_ccnew", True)]
    assert invalid_indexes(ledger_conn) == []


def test_a_rebuild_left_invalid_by_an_earlier_run_is_dropped_and_a_second_run_rebuilds_nothing(ledger_conn):
    make_bloated(ledger_conn)
    leave_invalid_index(ledger_conn, "orders_customer")
    assert invalid_indexes(ledger_conn) == ["orders_customer_ccnew"]

    first = maintain_database(CONN_ID)

    assert first["errors"] == [] and first["skipped"] == []
    assert [(lo["index"], lo["dropped"]) for lo in first["leftovers"]] == [("public.orders_customer_ccnew", True)]
    assert "public.orders_customer_ccnew" not in first["indexes"]
    assert first["indexes"]["public.orders_customer"]["reindexed"]
    assert invalid_indexes(ledger_conn) == []

    second = maintain_database(CONN_ID)

    assert (second["errors"], second["skipped"], second["leftovers"]) == ([], [], [])
    assert not any(i["reindexed"] for i in second["indexes"].values()), second["indexes"]
    assert " 0 indexes reindexed" in second["summary"]


def test_a_rebuild_that_cannot_finish_is_cleaned_up_by_the_next_run(ledger_conn):
    """An application transaction that stays open makes the concurrent rebuild (and its clean-up) time out."""
    make_bloated(ledger_conn, secondary_index=False)
    writer = open_writer(ledger_conn)
    try:
        started = time.monotonic()
        first = maintain_database(CONN_ID, lock_timeout_seconds=1)
        took = time.monotonic() - started
    finally:
        writer.rollback()
        writer.close()

    assert took < 6
    assert first["tables"]["public.orders"]["vacuumed"]
    assert not first["indexes"]["public.orders_pkey"]["reindexed"]
    assert "lock_timeout" in reasons(first, "reindex")["public.orders_pkey"]
    assert "lock_timeout" in reasons(first, "drop_leftover")["public.orders_pkey_ccnew"]
    assert [(lo["index"], lo["dropped"]) for lo in first["leftovers"]] == [("public.orders_pkey_ccnew", False)]
    assert invalid_indexes(ledger_conn) == ["orders_pkey_ccnew"]

    second = maintain_database(CONN_ID, lock_timeout_seconds=1)

    assert (second["errors"], second["skipped"]) == ([], [])
    assert [(lo["index"], lo["dropped"]) for lo in second["leftovers"]] == [("public.orders_pkey_ccnew", True)]
    assert second["indexes"]["public.orders_pkey"]["reindexed"]
    assert invalid_indexes(ledger_conn) == []

    third = maintain_database(CONN_ID, lock_timeout_seconds=1)
    assert (third["errors"], third["skipped"], third["leftovers"]) == ([], [], [])
    assert not third["indexes"]["public.orders_pkey"]["reindexed"]


def test_the_applications_writes_go_on_while_it_runs(ledger_conn):
    make_bloated(ledger_conn)
    make_steady(ledger_conn)
    latencies: list[float] = []
    written_at: list[float] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        db = connect(ledger_conn)
        try:
            with db.cursor() as cur:
                key = 100_000
                while not stop.is_set():
                    key += 1
                    began = time.monotonic()
                    cur.execute("INSERT INTO orders (id, customer, note) VALUES (%s, %s, 'live')", (key, key % 997))
                    cur.execute("UPDATE customers SET email = email WHERE id = %s", (key % 50_000 + 1,))
                    latencies.append(time.monotonic() - began)
                    written_at.append(time.monotonic())
        except BaseException as exc:
            failures.append(exc)
        finally:
            db.close()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        time.sleep(0.3)
        started = time.monotonic()
        result = maintain_database(CONN_ID)
        ended = time.monotonic()
        time.sleep(0.3)
    finally:
        stop.set()
        writer.join(10)

    assert failures == []
    assert sum(started < at < ended for at in written_at) > 10
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    assert result["errors"] == [] and result["skipped"] == []
    assert result["indexes"]["public.orders_pkey"]["reindexed"]
    # The index built while rows kept coming has every one of them.
    db = connect(ledger_conn)
    try:
        with db.cursor() as cur:
            cur.execute("SET enable_indexscan = off; SET enable_bitmapscan = off")
            cur.execute("SELECT count(*) FROM orders")
            by_heap = cur.fetchone()[0]
            cur.execute("SET enable_seqscan = off; SET enable_indexonlyscan = on; SET enable_indexscan = on")
            cur.execute("SELECT count(*) FROM orders WHERE id > 0")
            by_index = cur.fetchone()[0]
    finally:
        db.close()
    assert by_heap == by_index == 5_000 + len(latencies)


def test_a_table_another_session_holds_is_reported_and_passed_over_not_waited_on(ledger_conn):
    make_bloated(ledger_conn)
    make_steady(ledger_conn)
    holder = connect(ledger_conn)
    holder.autocommit = False
    try:
        with holder.cursor() as cur:
            cur.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        result = maintain_database(CONN_ID, lock_timeout_seconds=1)
        took = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()

    # Waited about a second each for its sizes (before, after) and its VACUUM, then moved on.
    assert took < 6
    assert result["errors"] == []
    orders = result["tables"]["public.orders"]
    assert not orders["vacuumed"]
    assert "lock_timeout" in reasons(result, "vacuum")["public.orders"]
    assert "locked by another session" in orders["before"]["note"]
    assert orders["before"]["dead_tuples"] == orders["after"]["dead_tuples"] >= 40_000
    assert "its table was not vacuumed" in reasons(result, "reindex")["public.orders_pkey"]
    assert result["tables"]["public.customers"]["vacuumed"]
    assert result["summary"].startswith("1 of 2 tables vacuumed")


def test_without_pgstattuple_or_ownership_it_estimates_and_passes_over_tables_it_may_not_vacuum(
    ledger_conn, monkeypatch
):
    """A role that owns some tables only, and may not install extensions (Cloud SQL's application user)."""
    role, password = f"maint_{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}"
    # An expression index (estimated from the index's own statistics) and one that is not a B-tree.
    more = (
        "CREATE INDEX orders_lower_note ON orders (lower(note))",
        "CREATE INDEX orders_note ON orders USING hash (note)",
    )
    make_bloated(ledger_conn, more=more)
    make_steady(ledger_conn)
    execute(
        ledger_conn,
        f"CREATE ROLE {role} LOGIN PASSWORD '{password}'",
        f"ALTER TABLE orders OWNER TO {role}",
        f"GRANT USAGE ON SCHEMA public TO {role}",
    )
    monkeypatch.setenv("AIRFLOW_CONN_MAINT_ROLE", json.dumps({**ledger_conn, "login": role, "password": password}))
    try:
        first = maintain_database("maint_role")
        second = maintain_database("maint_role")
    finally:
        execute(ledger_conn, f"REASSIGN OWNED BY {role} TO {ledger_conn['login']}", f"DROP OWNED BY {role}")
        execute(ledger_conn, f"DROP ROLE {role}")

    assert first["bloat_method"] == "estimate"
    assert "cannot create pgstattuple" in first["bloat_method_note"]
    assert first["errors"] == []
    assert first["tables"]["public.orders"]["vacuumed"]
    assert not first["tables"]["public.customers"]["vacuumed"]
    assert "not the table's owner" in reasons(first, "vacuum")["public.customers"]
    pkey = first["indexes"]["public.orders_pkey"]
    assert pkey["bloat_method"] == "estimate"
    assert 0.7 < pkey["bloat_after_vacuum"] < 0.95
    assert pkey["reindexed"]
    assert pkey["after"]["size_bytes"] < pkey["before"]["size_bytes"] / 3
    expression = first["indexes"]["public.orders_lower_note"]
    assert expression["bloat_after_vacuum"] > 0.3 and expression["reindexed"]
    hashed = first["indexes"]["public.orders_note"]
    assert not hashed["reindexed"] and hashed["bloat_method"] is None
    assert hashed["decision"] == "left alone: a hash index (only B-tree indexes are rebuilt)"
    assert second["indexes"]["public.orders_pkey"]["bloat_after_vacuum"] < 0.3
    assert second["indexes"]["public.orders_lower_note"]["bloat_after_vacuum"] < 0.3
    assert not any(i["reindexed"] for i in second["indexes"].values())


def test_an_unreachable_database_raises_naming_the_connection_not_the_password(ledger_conn, monkeypatch):
    wrong = f"not-the-password-{uuid.uuid4().hex}"
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_LEDGER", json.dumps({**ledger_conn, "password": wrong}))
    with pytest.raises(MaintenanceError) as refused:
        maintain_database(CONN_ID)
    assert "'varai_ledger'" in str(refused.value)
    assert wrong not in str(refused.value)
    # Not chained either: a driver's message may quote the connection string.
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_a_lock_timeout_of_zero_is_refused_as_it_would_mean_waiting_forever():
    with pytest.raises(ValueError, match="positive"):
        maintain_database(CONN_ID, lock_timeout_seconds=0)
