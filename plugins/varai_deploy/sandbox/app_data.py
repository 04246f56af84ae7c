"""The services' own data: the ``varai_app`` database in the sandbox's PostgreSQL, its schema, and
the code that writes and reads it.

Every working request a service answers becomes one row in its table (see service.py), so the
steady synthetic traffic keeps the database changing and backups, restores and DR drills move
real data; ``created_at`` is each row's own time, by which data loss is measured. The schema is
the application's migration, applied by the sandbox on every ``up`` (idempotent), never by the
services: a DR drill that drops a table must see the service fail (503) until the table is
restored, not write on into a silently recreated empty one.

The services find the database through ``<home>/app_db.json`` (0600, written on ``up``), never
through their command line, which anyone on the machine can read. Staging and production point
the ``varai_app_db`` connection at Cloud SQL.

Only the standard library is imported up front: service processes load this module at start.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.state import write_text_atomic

if TYPE_CHECKING:
    from varai_deploy.sandbox.settings import SandboxSettings

DATABASE = "varai_app"
CONN_ID = "varai_app_db"
DSN_FILE = "app_db.json"
CONNECT_TIMEOUT_SECONDS = 2
#: The services' writes only: a dead database or a held lock fails a request within seconds, never hangs it.
STATEMENT_TIMEOUT_MS = 2000
#: Connections per service process; a request waits this long for one before it fails.
POOL_SIZE = 4
POOL_WAIT_SECONDS = 2.0

#: The table each service writes, one row per working request; the api-gateway keeps no data.
TABLES: dict[str, str] = {
    "ai-discovery": "discovery_searches",
    "face-analysis": "face_analyses",
    "recommendation": "recommendation_feedback",
    "analytics": "analytics_events",
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS discovery_searches (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    version text NOT NULL,
    query text NOT NULL,
    result_count integer NOT NULL,
    top_sku text
);
CREATE TABLE IF NOT EXISTS face_analyses (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    version text NOT NULL,
    image_sha256 text NOT NULL,
    face_shape text NOT NULL,
    confidence numeric(3, 2) NOT NULL
);
CREATE TABLE IF NOT EXISTS recommendation_feedback (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    version text NOT NULL,
    face_shape text NOT NULL,
    shown_skus text[] NOT NULL
);
CREATE TABLE IF NOT EXISTS analytics_events (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    version text NOT NULL,
    event_type text NOT NULL,
    event_count integer NOT NULL,
    payload jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS discovery_searches_created_at ON discovery_searches (created_at);
CREATE INDEX IF NOT EXISTS face_analyses_created_at ON face_analyses (created_at);
CREATE INDEX IF NOT EXISTS recommendation_feedback_created_at ON recommendation_feedback (created_at);
CREATE INDEX IF NOT EXISTS analytics_events_created_at ON analytics_events (created_at);
"""
#: Two ``up``s at once must not both create a table (CREATE ... IF NOT EXISTS is not safe against that).
_MIGRATION_LOCK = 0x76617261


class Unavailable(Exception):
    """A row could not be written: the database is down, or its table is gone."""


def dsn_file(home: Path) -> Path:
    return Path(home) / DSN_FILE


def write_dsn(settings: SandboxSettings, dsn: dict[str, Any]) -> None:
    write_text_atomic(dsn_file(settings.home), json.dumps(dsn, sort_keys=True) + "\n")


def read_dsn(home: Path) -> dict[str, Any] | None:
    """The DSN ``up`` wrote, or None (a home from before the application database, or none at all)."""
    try:
        return json.loads(dsn_file(home).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def migrate(dsn: dict[str, Any]) -> None:
    """Apply the schema (idempotent): the sandbox's stand-in for the application's migrations."""
    conn = _connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(SCHEMA)
    finally:
        conn.close()


# -- readers, for tests and the backup / DR code ------------------------------------------------
def connect(settings: SandboxSettings) -> Any:
    """A psycopg2 connection to the application database, with the DSN the sandbox wrote."""
    dsn = read_dsn(settings.home)
    if dsn is None:
        raise SandboxError(
            f"no application database under {settings.home} (no {DSN_FILE}): "
            "run `python -m varai_deploy.sandbox up` with the postgres component"
        )
    return _connect(dsn)


def counts(settings: SandboxSettings) -> dict[str, int]:
    """Rows in each service's table."""
    return _per_table(settings, "SELECT count(*) FROM {}")


def newest(settings: SandboxSettings) -> dict[str, datetime | None]:
    """The newest row's ``created_at`` in each service's table (None: empty)."""
    return _per_table(settings, "SELECT max(created_at) FROM {}")


def _per_table(settings: SandboxSettings, query: str) -> dict[str, Any]:
    from psycopg2 import sql

    conn = connect(settings)
    try:
        with conn, conn.cursor() as cur:
            result = {}
            for table in TABLES.values():
                cur.execute(sql.SQL(query).format(sql.Identifier(table)))
                result[table] = cur.fetchone()[0]
            return result
    finally:
        conn.close()


def _connect(dsn: dict[str, Any], **options: Any) -> Any:
    import psycopg2

    return psycopg2.connect(**dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS, **options)


# -- the writer, in each service process ---------------------------------------------------------
class Writer:
    """One service's inserts from a ThreadingHTTPServer's threads: up to ``POOL_SIZE`` reused
    connections, each thrown away when it fails, so the writer recovers by itself once the
    database (or the table) is back. Logs only when writing starts failing and when it works again."""

    def __init__(self, dsn: dict[str, Any], table: str, version: str, name: str) -> None:
        self._dsn = dsn
        self._table = table
        self._version = version
        self._name = name
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(POOL_SIZE)
        self._failing = False

    @classmethod
    def for_service(cls, home: Path, service: str, version: str, name: str) -> Writer | None:
        """The service's writer, or None (and one log line) when it keeps no data or has no database."""
        table = TABLES.get(service)
        if table is None:
            return None
        dsn = read_dsn(home)
        if dsn is None:
            print(f"{name}: no application database ({dsn_file(home)} missing): not recording data", flush=True)
            return None
        print(f"{name}: recording each working request in {dsn.get('dbname')}.{table}", flush=True)
        return cls(dsn, table, version, name)

    def insert(self, row: dict[str, Any]) -> None:
        """Write one row (with the version; ``created_at`` is the database's now()), or raise
        Unavailable with the driver's reason."""
        import psycopg2

        if not self._slots.acquire(timeout=POOL_WAIT_SECONDS):
            raise self._unavailable(f"no database connection free within {POOL_WAIT_SECONDS:g}s")
        try:
            conn = self._take()
            try:
                with conn.cursor() as cur:
                    cur.execute(self._statement(row), {**row, "version": self._version})
            except BaseException:
                conn.close()
                self._drop_idle()  # after a database restart they are all dead: fail one request, not each
                raise
            with self._lock:
                self._idle.append(conn)
        except psycopg2.Error as exc:
            raise self._unavailable((str(exc).strip().splitlines() or [type(exc).__name__])[0]) from None
        finally:
            self._slots.release()
        self._set_failing(False, "database writes work again")

    def _take(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = _connect(self._dsn, options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")
        conn.autocommit = True
        return conn

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _statement(self, row: dict[str, Any]) -> Any:
        from psycopg2 import sql

        columns = ["version", *row]
        return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(self._table),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(map(sql.Placeholder, columns)),
        )

    def _unavailable(self, reason: str) -> Unavailable:
        self._set_failing(True, f"database unavailable: {reason}")
        return Unavailable(reason)

    def _set_failing(self, failing: bool, message: str) -> None:
        """Log ``message`` only when the state changes: a dead database must not flood the log."""
        with self._lock:
            changed, self._failing = self._failing != failing, failing
        if changed:
            print(f"{self._name}: {message}", flush=True)
