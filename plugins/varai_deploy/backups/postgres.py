"""PostgreSQL's side of a backup: a consistent snapshot with its figures, pg_dump, pg_restore.

The figures (rows and a content checksum per table) are computed inside the very transaction
whose snapshot ``pg_dump --snapshot`` dumps, so a restore can be compared with exactly what was
backed up while the services keep writing. Programs get argument lists and an environment of
their own (the password in ``PGPASSWORD``, nothing of Airflow's), never a shell string.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

#: Where Debian installs each PostgreSQL major's programs.
DEBIAN_BINDIRS = Path("/usr/lib/postgresql")
_SCRATCH_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class BackupError(RuntimeError):
    """A backup or restore step failed; the message says which and why, never a password."""


class RestoreFailed(BackupError):
    """pg_restore refused the dump: the backup cannot be restored, whatever the retries."""


@dataclass(frozen=True)
class Database:
    """Where one database is, from its Airflow connection (conn_type postgres)."""

    conn_id: str
    host: str
    port: int
    user: str
    password: str
    dbname: str

    @classmethod
    def from_connection(cls, conn_id: str) -> Database:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        if not conn.schema:
            raise BackupError(f"the connection {conn_id!r} names no database (its schema field)")
        return cls(
            conn_id,
            conn.host or "localhost",
            int(conn.port or 5432),
            conn.login or "",
            conn.password or "",
            conn.schema,
        )

    def connect(self, dbname: str | None = None, **options: Any):
        import psycopg2

        try:
            return psycopg2.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                dbname=dbname or self.dbname,
                connect_timeout=10,
                application_name="varai-backup",
                **options,
            )
        except psycopg2.Error as exc:
            raise BackupError(f"cannot connect to {self.describe(dbname)}: {str(exc).strip()}") from None

    def describe(self, dbname: str | None = None) -> str:
        return f"database {dbname or self.dbname} on {self.host}:{self.port} (connection {self.conn_id})"

    def program_args(self, dbname: str | None = None) -> list[str]:
        return [
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--username",
            self.user,
            "--dbname",
            dbname or self.dbname,
        ]

    def program_env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PGPASSWORD": self.password}


def tools_dir(configured: str | None = None) -> Path:
    """The directory of ``pg_dump`` and ``pg_restore``: the configured one, else Debian's newest
    major (a dump must come from a pg_dump at least as new as the server), else PATH's."""
    candidates = [Path(configured)] if configured else []
    if not configured and DEBIAN_BINDIRS.is_dir():
        majors = sorted((p for p in DEBIAN_BINDIRS.iterdir() if p.name.isdigit()), key=lambda p: -int(p.name))
        candidates += [p / "bin" for p in majors]
    if not configured and (found := shutil.which("pg_dump")):
        candidates.append(Path(found).parent)
    for candidate in candidates:
        if (candidate / "pg_dump").is_file() and (candidate / "pg_restore").is_file():
            return candidate
    where = configured or f"{DEBIAN_BINDIRS}/<major>/bin or PATH"
    raise BackupError(f"pg_dump and pg_restore are not in {where}: install postgresql-client (make setup does)")


def table_figures(cursor) -> dict[str, dict[str, Any]]:
    """Rows and an order-independent content checksum of every user table, as this transaction sees them."""
    from psycopg2 import sql

    cursor.execute(
        "SELECT schemaname, tablename FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
    )
    figures = {}
    for schema, table in cursor.fetchall():
        cursor.execute(
            sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) FROM {} AS t"
            ).format(sql.Identifier(schema, table))
        )
        rows, checksum = cursor.fetchone()
        figures[f"{schema}.{table}"] = {"rows": rows, "checksum": checksum}
    return figures


@dataclass(frozen=True)
class Snapshot:
    id: str
    taken_at: datetime
    server_version: str
    tables: dict[str, dict[str, Any]]


@contextlib.contextmanager
def snapshot(database: Database) -> Iterator[Snapshot]:
    """A read-only repeatable-read transaction whose snapshot is exported, held open while the caller dumps it."""
    conn = database.connect()
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot(), statement_timestamp(), current_setting('server_version')")
            snapshot_id, taken_at, version = cursor.fetchone()
            yield Snapshot(snapshot_id, taken_at, version, table_figures(cursor))
    finally:
        conn.rollback()
        conn.close()


def _run(
    argv: list[str],
    database: Database,
    what: str,
    timeout: float,
    error: type[BackupError] = BackupError,
    options: str | None = None,
) -> None:
    env = database.program_env() | ({"PGOPTIONS": options} if options else {})
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise error(f"{what} failed (exit {proc.returncode}): {tail}".replace(database.password or "\0", "***"))


def dump(database: Database, snapshot_id: str, path: Path, tools: Path, timeout: float) -> None:
    """``pg_dump`` of exactly the exported snapshot, custom format (compressed, restorable table by table)."""
    argv = [str(tools / "pg_dump"), "--format=custom", f"--snapshot={snapshot_id}", "--no-password"]
    _run([*argv, f"--file={path}", *database.program_args()], database, f"pg_dump of {database.describe()}", timeout)


def restore(database: Database, dbname: str, path: Path, tools: Path, timeout: float) -> None:
    argv = [str(tools / "pg_restore"), "--exit-on-error", "--no-owner", "--no-privileges", "--no-password"]
    _run(
        [*argv, *database.program_args(dbname), str(path)],
        database,
        f"pg_restore into {dbname}",
        timeout,
        RestoreFailed,
    )


def restore_live(database: Database, path: Path, tools: Path, timeout: float) -> None:
    """Puts a dump back into the live database itself, as a data-loss recovery does: every object in
    the dump is dropped if present and recreated with the dump's rows, in one transaction (a restore
    that fails changes nothing). Rows written since the snapshot in those tables are gone: that is
    the RPO. A table a session holds is waited for 10 s at most, then the restore fails."""
    argv = [str(tools / "pg_restore"), "--clean", "--if-exists", "--single-transaction", "--exit-on-error"]
    argv += ["--no-owner", "--no-privileges", "--no-password", *database.program_args(), str(path)]
    _run(argv, database, f"restoring {database.describe()}", timeout, RestoreFailed, "-c lock_timeout=10s")


@contextlib.contextmanager
def scratch_database(database: Database, name: str) -> Iterator[str]:
    """A fresh database beside ``database`` (one left by a crashed try is dropped first), dropped after."""
    if not _SCRATCH_RE.fullmatch(name):
        raise BackupError(f"{name!r} is not a safe scratch database name")
    from psycopg2 import sql

    def run(statement: sql.Composable) -> None:
        conn = database.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement)
        finally:
            conn.close()

    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    run(drop)
    run(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        run(drop)


def figures_of(database: Database, dbname: str) -> dict[str, dict[str, Any]]:
    conn = database.connect(dbname)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cursor:
            return table_figures(cursor)
    finally:
        conn.rollback()
        conn.close()
