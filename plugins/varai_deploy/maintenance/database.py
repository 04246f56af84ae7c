"""The guide's monthly "database maintenance": vacuum, analyze and rebuild bloated indexes, online.

It runs against the live application's database, so nothing it does may hold up the application's
writes for long: every statement waits at most ``lock_timeout_seconds`` for a lock (a table another
session holds is reported and passed over, never queued on), indexes are rebuilt with ``REINDEX INDEX
CONCURRENTLY`` (writes go on meanwhile), and no step starts after the window's ``deadline``; a step
still running when the deadline comes is cancelled (``statement_timeout``), because the window
promises the platform is back to normal when it closes, and a cancelled VACUUM or concurrent rebuild
is harmless.

Re-running converges: a concurrent rebuild that failed (in this run, or in one that crashed) leaves
an INVALID ``<index>_ccnew`` (or, failing after the swap, ``<index>_ccold``) index behind, which costs
every write and serves no read; the run drops such leftovers before it vacuums, and again right after
a rebuild of its own fails.

Index bloat is the share of an index's pages a rebuild would give back. It is measured with the
pgstattuple extension's ``pgstatindex()`` when the extension exists or can be created here (exact:
it reads every page of the index), otherwise estimated from the catalog (see ``_estimated_bloat``).
It is measured again after the table's VACUUM and that figure decides: before the VACUUM, entries
pointing at dead rows still fill the leaves, so a badly bloated index looks dense.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

#: B-tree's default fillfactor: how full a freshly built index's leaves are.
DEFAULT_FILLFACTOR = 90
#: Smaller indexes are never rebuilt: their last, part-filled page alone reads as "bloat", so they
#: would be rebuilt on every run, and a rebuild gives back almost nothing.
MIN_REINDEX_PAGES = 16
#: The names ``REINDEX CONCURRENTLY`` gives the index it builds and the one it replaces.
LEFTOVER_NAME = re.compile(r"_cc(new|old)[0-9]*$")
#: PostgreSQL's on-page layout, for the estimate: page header, B-tree special space, index tuple
#: header, line pointer, and the alignment of a tuple's length.
PAGE_HEADER_BYTES = 24
BTREE_SPECIAL_BYTES = 16
INDEX_TUPLE_HEADER_BYTES = 8
LINE_POINTER_BYTES = 4
MAXALIGN = 8

LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"
INSUFFICIENT_PRIVILEGE = "42501"

PGSTATINDEX = "pgstatindex"
ESTIMATE = "estimate"

_DRIVER_SQL = {"psycopg": "psycopg.sql", "psycopg2": "psycopg2.sql"}

#: Every table and materialized view outside the system schemas (not other sessions' temp tables),
#: with whether this role may VACUUM it (``{may}``: one of two constant expressions).
_TABLES_QUERY = (
    "SELECT c.oid, n.nspname, c.relname,"
    " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
    " OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE')"
    " OR {may}"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't'"
    " AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'"
    " ORDER BY n.nspname, c.relname"
)


class MaintenanceError(RuntimeError):
    """The maintenance could not start at all (no connection); the message is for the operator."""


def maintain_database(
    conn_id: str,
    *,
    deadline: datetime | None = None,
    reindex_bloat_ratio: float = 0.3,
    lock_timeout_seconds: float = 5,
    log=None,
) -> dict:
    """VACUUM (ANALYZE) every user table and rebuild the B-tree indexes bloated beyond ``reindex_bloat_ratio``.

    ``deadline`` is when the maintenance window closes (a naive datetime is taken as UTC): nothing
    starts after it, and what was left undone is listed in ``skipped``. A table or index that cannot
    be had within ``lock_timeout_seconds`` is listed there too; other failures go to ``errors``: one
    table's trouble never stops the rest. An unreachable database raises ``MaintenanceError`` (a
    connection lost part-way raises the driver's error; running again is safe).

    Returns a JSON-able report: ``database``, ``started_at``, ``finished_at``, ``deadline``,
    ``bloat_method`` (``"pgstatindex"`` or ``"estimate"``) and ``bloat_method_note`` (why);
    ``tables`` and ``indexes`` keyed ``schema.name``, each with ``before`` and ``after`` figures and
    ``vacuumed`` / ``reindexed`` (an index also its ``bloat_method``, the ``bloat_after_vacuum`` that
    decided, and the ``decision`` in words); ``leftovers`` (invalid indexes found and whether they
    were dropped); ``skipped`` and ``errors`` as ``{"step", "name", "reason" | "error"}``; and
    ``summary``, the line a human reads.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    if lock_timeout_seconds <= 0:
        raise ValueError("lock_timeout_seconds must be positive: 0 would let a statement wait for a lock forever")
    if deadline is not None and deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=UTC)
    log = log or logging.getLogger(__name__)
    started_at = _now()
    secret = None
    try:
        hook = PostgresHook(postgres_conn_id=conn_id)
        secret = hook.connection.password
        conn = hook.get_conn()
    except Exception as exc:  # the driver's own words, minus the password; the original is not chained
        raise MaintenanceError(
            f"cannot reach the database of connection {conn_id!r}: {_redact(f'{type(exc).__name__}: {exc}', secret)}"
        ) from None
    try:
        session = _Session(conn, secret, log, lock_timeout_seconds)
        return _Run(session, deadline, reindex_bloat_ratio, started_at).run()
    finally:
        conn.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _redact(text: str, secret: str | None) -> str:
    text = str(text).strip()
    return text.replace(secret, "***") if secret else text


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    if n < 1024:
        return f"{n} B"
    size, units = n / 1024, ["kB", "MB", "GB", "TB"]
    while size >= 1024 and len(units) > 1:
        size, units = size / 1024, units[1:]
    return f"{size:.1f} {units[0]}"


class _Session:
    """One autocommit connection (VACUUM and the CONCURRENTLY commands refuse to run in a transaction).

    Works with either driver the Postgres provider may hand out (psycopg 3 when SQLAlchemy 2 is
    installed, else psycopg2): identifiers are composed with that driver's own ``sql`` module,
    since neither driver accepts the other's.
    """

    def __init__(self, conn: Any, secret: str | None, log: Any, lock_timeout_seconds: float):
        driver = type(conn).__module__.split(".")[0]
        if driver not in _DRIVER_SQL:
            raise MaintenanceError(f"unsupported PostgreSQL driver connection {type(conn).__name__}")
        self.sql = importlib.import_module(_DRIVER_SQL[driver])
        self.driver_error = importlib.import_module(driver).Error
        self.conn = conn
        self.secret = secret
        self.log = log
        self.lock_timeout_seconds = lock_timeout_seconds
        conn.autocommit = True
        self.query("SELECT set_config('application_name', 'varai-maintenance', false)")
        self.query("SELECT set_config('lock_timeout', %s, false)", (f"{math.ceil(lock_timeout_seconds * 1000)}ms",))
        self.statement_timeout_ms = 0
        self.query("SELECT set_config('statement_timeout', '0', false)")

    def query(self, query: Any, params: Any = None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def attempt(self, query: Any, params: Any = None) -> tuple[list[tuple], Exception | None]:
        """Rows, or the database's refusal (autocommit: a failed statement leaves the session usable)."""
        try:
            return self.query(query, params), None
        except self.driver_error as exc:
            return [], exc

    def statement_timeout(self, ms: int) -> None:
        if ms != self.statement_timeout_ms:
            self.query("SELECT set_config('statement_timeout', %s, false)", (f"{ms}ms",))
            self.statement_timeout_ms = ms

    def describe(self, exc: Exception) -> str:
        return _redact(f"{type(exc).__name__}: {exc}", self.secret).splitlines()[0]


def _sqlstate(exc: Exception) -> str | None:
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


@dataclass
class _Table:
    oid: int
    schema: str
    name: str
    can_vacuum: bool
    qualified: str = ""
    vacuumed: bool = False
    #: Why it was not vacuumed (as listed in skipped or errors).
    not_done: str | None = None
    before: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.qualified = f"{self.schema}.{self.name}"


@dataclass
class _Index:
    oid: int
    schema: str
    name: str
    table: _Table
    method: str
    valid: bool
    exclusion: bool
    fillfactor: int
    qualified: str = ""
    reindexed: bool = False
    before: dict = field(default_factory=dict)
    #: The latest bloat measurement: before, after its table's VACUUM, after a rebuild.
    bloat: dict = field(default_factory=dict)
    bloat_after_vacuum: float | None = None
    decision: str = ""

    def __post_init__(self) -> None:
        self.qualified = f"{self.schema}.{self.name}"

    @property
    def leftover(self) -> bool:
        return not self.valid and bool(LEFTOVER_NAME.search(self.name))


class _Run:
    def __init__(self, session: _Session, deadline: datetime | None, ratio: float, started_at: datetime):
        self.s = session
        self.sql = session.sql
        self.log = session.log
        self.deadline = deadline
        self.ratio = ratio
        self.started_at = started_at
        self.skipped: list[dict] = []
        self.errors: list[dict] = []
        self.leftovers: list[dict] = []

    # -- the steps ----------------------------------------------------------------------------
    def run(self) -> dict:
        s = self.s
        database = s.query("SELECT current_database()")[0][0]
        self.block_size = int(s.query("SELECT current_setting('block_size')")[0][0])
        self.server_version = int(s.query("SELECT current_setting('server_version_num')")[0][0])
        self.bloat_method, self.bloat_note, self.pgstattuple_schema = self._choose_bloat_method()
        self.log.info(
            "database maintenance of %s: index bloat by %s (%s)", database, self.bloat_method, self.bloat_note
        )

        tables = self._tables()
        indexes = self._indexes(tables)
        stats = self._table_stats()
        for table in tables:
            table.before = self._table_figures(table, stats)
        for index in indexes:
            if not index.leftover:
                index.bloat = self._measure_bloat(index)
                index.before = {**self._index_size(index), **index.bloat}

        for index in [i for i in indexes if i.leftover]:
            self._drop_leftover(index, found="before the run", at_deadline=True)
        indexes = [i for i in indexes if not i.leftover]

        self._vacuum_all(tables)
        self._reindex_all(indexes)

        stats = self._table_stats()
        result_tables = {
            t.qualified: {"before": t.before, "after": self._table_figures(t, stats), "vacuumed": t.vacuumed}
            for t in tables
        }
        result_indexes = {}
        for index in indexes:
            result_indexes[index.qualified] = {
                "table": index.table.qualified,
                "before": index.before,
                "after": {**self._index_size(index), **index.bloat},
                "reindexed": index.reindexed,
                "bloat_method": index.bloat.get("bloat_method"),
                "bloat_after_vacuum": index.bloat_after_vacuum,
                "decision": index.decision,
            }
        result = {
            "database": database,
            "started_at": self.started_at.isoformat(),
            "finished_at": _now().isoformat(),
            "deadline": _iso(self.deadline),
            "reindex_bloat_ratio": self.ratio,
            "lock_timeout_seconds": self.s.lock_timeout_seconds,
            "bloat_method": self.bloat_method,
            "bloat_method_note": self.bloat_note,
            "tables": result_tables,
            "indexes": result_indexes,
            "leftovers": self.leftovers,
            "skipped": self.skipped,
            "errors": self.errors,
        }
        result["summary"] = self._summary(result)
        self.log.info("database maintenance of %s: %s", database, result["summary"])
        return result

    def _vacuum_all(self, tables: list[_Table]) -> None:
        # The most dead rows first: if the window closes part-way, the work that mattered most is done.
        for table in sorted(tables, key=lambda t: (-(t.before.get("dead_tuples") or 0), t.qualified)):
            if not table.can_vacuum:
                reason = "not the table's owner (nor the database's): VACUUM would only warn and skip it"
                table.not_done = self._skip("vacuum", table.qualified, reason)
                continue
            started = time.monotonic()
            table.not_done = self._work("vacuum", table.qualified, "VACUUM (ANALYZE) {}", table.schema, table.name)
            if table.not_done is None:
                table.vacuumed = True
                self.log.info("vacuumed %s in %.1f s", table.qualified, time.monotonic() - started)

    def _reindex_all(self, indexes: list[_Index]) -> None:
        candidates = []
        for index in indexes:
            why_not = self._why_not_candidate(index)
            if why_not is None and not index.table.vacuumed:
                # A rebuild that did not happen because its table was not had: listed as skipped too.
                reason = self._closed() or f"its table was not vacuumed ({index.table.not_done})"
                index.decision = f"not rebuilt: {self._skip('reindex', index.qualified, reason)}"
                continue
            if why_not is None and self._closed():
                index.decision = f"not rebuilt: {self._skip('reindex', index.qualified, self._closed())}"
                continue
            if why_not is None:
                index.bloat = self._measure_bloat(index)
                index.bloat_after_vacuum = index.bloat.get("bloat_ratio")
                why_not = self._why_not_bloated(index)
            if why_not is None:
                candidates.append(index)
            else:
                index.decision = f"left alone: {why_not}"
        # The most space to give back first.
        candidates.sort(key=lambda i: -(i.bloat_after_vacuum or 0) * (i.before.get("size_bytes") or 0))
        for index in candidates:
            started = time.monotonic()
            closed_before = self._closed()
            why_not = self._work("reindex", index.qualified, "REINDEX INDEX CONCURRENTLY {}", index.schema, index.name)
            if why_not is None:
                index.reindexed = True
                index.decision = f"rebuilt: bloat {index.bloat_after_vacuum:.2f} > {self.ratio}"
                # The rebuilt index keeps the name but is a new relation (the swap): follow it.
                rows = self.s.query(
                    "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = %s AND c.relname = %s AND c.relkind = 'i'",
                    (index.schema, index.name),
                )
                index.oid = int(rows[0][0]) if rows else index.oid
                index.bloat = self._measure_bloat(index)
                self.log.info("rebuilt %s concurrently in %.1f s", index.qualified, time.monotonic() - started)
                continue
            index.decision = f"not rebuilt: {why_not}"
            if not closed_before:  # it started and failed part-way: what it built is garbage now
                tried = {record["index"] for record in self.leftovers}
                for leftover in self._indexes([index.table]):
                    if leftover.leftover and leftover.qualified not in tried:
                        self._drop_leftover(leftover, found="after a failed rebuild", at_deadline=False)

    def _why_not_candidate(self, index: _Index) -> str | None:
        if index.method != "btree":
            return f"a {index.method} index (only B-tree indexes are rebuilt)"
        if not index.valid:
            return "INVALID (not one of REINDEX CONCURRENTLY's leftovers: whoever built it decides)"
        if index.exclusion:
            return "backs an exclusion constraint, which cannot be rebuilt concurrently"
        return None

    def _why_not_bloated(self, index: _Index) -> str | None:
        bloat = index.bloat.get("bloat_ratio")
        if bloat is None:
            return f"bloat unknown ({index.bloat.get('bloat_note', 'no figures')})"
        if bloat <= self.ratio:
            return f"bloat {bloat:.2f} <= {self.ratio}"
        pages = (self._index_size(index)["size_bytes"] or 0) // self.block_size
        if pages < MIN_REINDEX_PAGES:
            return f"bloat {bloat:.2f}, but only {pages} pages (< {MIN_REINDEX_PAGES}): nothing worth a rebuild"
        return None

    def _drop_leftover(self, index: _Index, *, found: str, at_deadline: bool) -> None:
        """Drop an INVALID index a failed concurrent rebuild left behind; CONCURRENTLY, so writes go on."""
        record = {"index": index.qualified, "table": index.table.qualified, "found": found, "dropped": False}
        record.update(self._index_size(index))
        self.leftovers.append(record)
        statement = "DROP INDEX CONCURRENTLY IF EXISTS {}"
        why_not = self._work(
            "drop_leftover", index.qualified, statement, index.schema, index.name, at_deadline=at_deadline
        )
        if why_not is None:
            record["dropped"] = True
            self.log.info("dropped %s, left INVALID by a failed concurrent rebuild (%s)", index.qualified, found)

    # -- the deadline, skips and failures ------------------------------------------------------
    def _work(self, step: str, name: str, statement: str, *identifier: str, at_deadline: bool = True) -> str | None:
        """Run one maintenance statement on one object: None when done, else why not (also recorded).

        Not started once the window has closed; cut short (``statement_timeout``) when it closes.
        ``at_deadline=False`` is for cleaning up after a failure of this run's own, which is only
        bounded by ``lock_timeout``.
        """
        timeout = 0
        if at_deadline and self.deadline is not None:
            if self._closed():
                return self._skip(step, name, self._closed())
            timeout = max(1, math.ceil((self.deadline - _now()) / timedelta(milliseconds=1)))
        self.s.statement_timeout(timeout)
        try:
            _, exc = self.s.attempt(self.sql.SQL(statement).format(self.sql.Identifier(*identifier)))
        finally:
            self.s.statement_timeout(0)
        return None if exc is None else self._failed(step, name, exc)

    def _closed(self) -> str | None:
        """Why nothing may start any more, if the window has closed."""
        if self.deadline is not None and _now() >= self.deadline:
            return f"the window closed at {self.deadline.isoformat()}: not started"
        return None

    def _skip(self, step: str, name: str, reason: str) -> str:
        self.skipped.append({"step": step, "name": name, "reason": reason})
        self.log.warning("%s of %s skipped: %s", step, name, reason)
        return reason

    def _failed(self, step: str, name: str, exc: Exception) -> str:
        """Skipped when the cause is the live system (a lock, the deadline, a privilege); else an error."""
        state = _sqlstate(exc)
        if state == LOCK_NOT_AVAILABLE:
            return self._skip(
                step,
                name,
                f"another session held a conflicting lock for more than {self.s.lock_timeout_seconds:g} s"
                " (lock_timeout): not waited on",
            )
        if state == QUERY_CANCELED and self.deadline is not None and _now() >= self.deadline - timedelta(seconds=1):
            return self._skip(step, name, f"cut short when the window closed at {self.deadline.isoformat()}")
        if state == INSUFFICIENT_PRIVILEGE:
            return self._skip(step, name, self.s.describe(exc))
        error = self.s.describe(exc)
        self.errors.append({"step": step, "name": name, "error": error})
        self.log.warning("%s of %s failed: %s", step, name, error)
        return f"failed: {error}"

    # -- what is there ----------------------------------------------------------------------------
    def _tables(self) -> list[_Table]:
        """Every table and materialized view outside the system schemas (not other sessions' temp tables).

        Partitioned parents are left out: their partitions are listed themselves. Whether this role
        may VACUUM a table is checked up front, since VACUUM merely warns and skips one it may not.
        """
        # Since 17 the MAINTAIN privilege (and the pg_maintain role) says it; before, ownership.
        query = _TABLES_QUERY.format(
            may="has_table_privilege(c.oid, 'MAINTAIN')"
            if self.server_version >= 170000
            else "pg_has_role(c.relowner, 'USAGE')"
        )
        rows = self.s.query(query)
        return [_Table(oid=int(r[0]), schema=r[1], name=r[2], can_vacuum=bool(r[3])) for r in rows]

    def _indexes(self, tables: list[_Table]) -> list[_Index]:
        if not tables:
            return []
        by_oid = {t.oid: t for t in tables}
        rows = self.s.query(
            "SELECT i.indexrelid, n.nspname, ic.relname, i.indrelid, am.amname, i.indisvalid, i.indisexclusion,"
            " ic.reloptions"
            " FROM pg_index i"
            " JOIN pg_class ic ON ic.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = ic.relnamespace"
            " JOIN pg_am am ON am.oid = ic.relam"
            " WHERE i.indrelid = ANY(%s::oid[])"
            " ORDER BY n.nspname, ic.relname",
            (list(by_oid),),
        )
        return [
            _Index(
                oid=int(r[0]),
                schema=r[1],
                name=r[2],
                table=by_oid[int(r[3])],
                method=r[4],
                valid=bool(r[5]),
                exclusion=bool(r[6]),
                fillfactor=_fillfactor(r[7]),
            )
            for r in rows
        ]

    # -- figures ----------------------------------------------------------------------------------
    def _table_stats(self) -> dict[int, dict]:
        """The cumulative statistics: read from shared memory, no lock on any table."""
        rows = self.s.query(
            "SELECT relid, n_live_tup, n_dead_tup, last_vacuum, last_autovacuum, last_analyze, last_autoanalyze"
            " FROM pg_stat_user_tables"
        )
        keys = ("live_tuples", "dead_tuples", "last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze")
        return {int(r[0]): {k: _iso(v) for k, v in zip(keys, r[1:], strict=True)} for r in rows}

    def _table_figures(self, table: _Table, stats: dict[int, dict]) -> dict:
        figures = dict.fromkeys(
            ("live_tuples", "dead_tuples", "last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze")
        )
        figures.update(stats.get(table.oid, {}))
        # The size functions take an ACCESS SHARE lock: bounded by lock_timeout like everything else.
        rows, exc = self.s.attempt(
            "SELECT pg_table_size(%s::oid::regclass), pg_total_relation_size(%s::oid::regclass)", (table.oid, table.oid)
        )
        if exc is None:
            figures["table_bytes"], figures["total_bytes"] = rows[0]
        else:
            figures["table_bytes"] = figures["total_bytes"] = None
            figures["note"] = f"sizes unavailable: {self._why_unavailable(exc)}"
        return figures

    def _index_size(self, index: _Index) -> dict:
        rows, exc = self.s.attempt("SELECT pg_relation_size(%s::oid::regclass)", (index.oid,))
        if exc is None:
            return {"size_bytes": rows[0][0], "valid": index.valid}
        return {"size_bytes": None, "valid": index.valid, "note": f"size unavailable: {self._why_unavailable(exc)}"}

    def _why_unavailable(self, exc: Exception) -> str:
        if _sqlstate(exc) == LOCK_NOT_AVAILABLE:
            return f"locked by another session for more than {self.s.lock_timeout_seconds:g} s"
        return self.s.describe(exc)

    # -- bloat --------------------------------------------------------------------------------------
    def _choose_bloat_method(self) -> tuple[str, str, str | None]:
        """pgstatindex when pgstattuple is (or can be) installed and this role may call it, else the estimate."""
        rows = self.s.query(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'pgstattuple'"
        )
        note = "pgstattuple extension present"
        if not rows:
            _, exc = self.s.attempt("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            if exc is not None:
                return ESTIMATE, f"estimated from the catalog: cannot create pgstattuple ({self.s.describe(exc)})", None
            note = "created the pgstattuple extension"
            rows = self.s.query(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                " WHERE e.extname = 'pgstattuple'"
            )
        schema = rows[0][0]
        function = self.sql.Identifier(schema, "pgstatindex").as_string(self.s.conn) + "(regclass)"
        allowed = self.s.query("SELECT has_function_privilege(%s, 'EXECUTE')", (function,))[0][0]
        if not allowed:
            return ESTIMATE, f"estimated from the catalog: this role may not call {function}", None
        return PGSTATINDEX, note, schema

    def _measure_bloat(self, index: _Index) -> dict:
        """``bloat_ratio`` (None when it cannot be told) and how it was had; never raises."""
        if index.method != "btree":
            return {"bloat_ratio": None, "bloat_method": None, "bloat_note": f"{index.method} index: not measured"}
        if not index.valid:
            return {"bloat_ratio": None, "bloat_method": None, "bloat_note": "INVALID index: not measured"}
        if self.bloat_method == PGSTATINDEX:
            measured = self._pgstatindex_bloat(index)
            if measured is not None:
                return measured
        return self._estimated_bloat(index)

    def _pgstatindex_bloat(self, index: _Index) -> dict | None:
        """Exact: the live share of the leaves, against what a rebuild at the index's fillfactor needs."""
        query = self.sql.SQL(
            "SELECT index_size, internal_pages, leaf_pages, avg_leaf_density FROM {}(%s::oid::regclass)"
        ).format(self.sql.Identifier(self.pgstattuple_schema, "pgstatindex"))
        rows, exc = self.s.attempt(query, (index.oid,))
        if exc is not None:
            self.log.warning("pgstatindex(%s) failed, estimating instead: %s", index.qualified, self.s.describe(exc))
            return None
        size, internal, leaf, density = rows[0]
        density = float(density) if density is not None and math.isfinite(density) else None
        pages = size / self.block_size
        live_leaf = leaf * density / 100 if leaf and density is not None else 0.0
        expected_leaf = max(1.0, live_leaf / (index.fillfactor / 100))
        expected = 1 + expected_leaf + (internal * min(1.0, expected_leaf / leaf) if leaf else 0)
        return {
            "bloat_ratio": round(max(0.0, 1 - expected / pages), 3) if pages else 0.0,
            "bloat_method": PGSTATINDEX,
            "avg_leaf_density": density,
            "leaf_pages": leaf,
        }

    def _estimated_bloat(self, index: _Index) -> dict:
        """Without pgstattuple: the size a fresh build would have, from the catalog, against the real size.

        Entries = the table's ``reltuples`` (kept by VACUUM/ANALYZE; for a partial index that is too
        many); entry width = the columns' ``avg_width`` from ``pg_stats`` (for an expression, the
        index's own statistics), plus tuple header, alignment and line pointer; leaves filled to
        the fillfactor, plus the metapage and one level above the leaves. It ignores B-tree
        deduplication and suffix truncation, which only make a real fresh index smaller: it errs
        towards too little bloat, so it never makes a rebuild happen that pgstatindex would not.
        """
        rows, exc = self.s.attempt(
            "SELECT a.attlen, coalesce(ts.avg_width, xs.avg_width),"
            " (SELECT reltuples FROM pg_class WHERE oid = i.indrelid),"
            " pg_relation_size(i.indexrelid)"
            " FROM pg_index i"
            " JOIN pg_attribute a ON a.attrelid = i.indexrelid AND a.attnum > 0"
            " LEFT JOIN pg_attribute ta ON ta.attrelid = i.indrelid AND ta.attnum = i.indkey[a.attnum - 1]"
            " AND i.indkey[a.attnum - 1] <> 0"
            " LEFT JOIN pg_stats ts ON ts.schemaname = %(tschema)s AND ts.tablename = %(table)s"
            " AND ts.attname = ta.attname AND NOT ts.inherited"
            " LEFT JOIN pg_stats xs ON xs.schemaname = %(ischema)s AND xs.tablename = %(index)s"
            " AND xs.attname = a.attname AND NOT xs.inherited"
            " WHERE i.indexrelid = %(oid)s::oid",
            {
                "tschema": index.table.schema,
                "table": index.table.name,
                "ischema": index.schema,
                "index": index.name,
                "oid": index.oid,
            },
        )
        result = {"bloat_ratio": None, "bloat_method": ESTIMATE}
        if exc is not None:
            return {**result, "bloat_note": self._why_unavailable(exc)}
        widths = [avg if avg is not None else (attlen if attlen > 0 else None) for attlen, avg, _, _ in rows]
        if not rows or None in widths or rows[0][2] is None or rows[0][2] < 0:
            return {**result, "bloat_note": "no statistics yet (the table was never analyzed)"}
        tuples, size = float(rows[0][2]), int(rows[0][3])
        entry = _aligned(INDEX_TUPLE_HEADER_BYTES + sum(widths)) + LINE_POINTER_BYTES
        usable = (self.block_size - PAGE_HEADER_BYTES - BTREE_SPECIAL_BYTES) * index.fillfactor / 100
        per_page = max(1, int(usable // entry))
        leaf = max(1, math.ceil(tuples / per_page))
        expected = 1 + leaf + math.ceil(leaf / per_page)
        pages = size / self.block_size
        return {
            **result,
            "bloat_ratio": round(max(0.0, 1 - expected / pages), 3) if pages else 0.0,
            "expected_pages": expected,
        }

    # -- the report ---------------------------------------------------------------------------------
    def _summary(self, result: dict) -> str:
        tables = result["tables"].values()
        vacuumed = sum(t["vacuumed"] for t in tables)
        both = [
            t
            for t in tables
            if t["before"].get("dead_tuples") is not None and t["after"].get("dead_tuples") is not None
        ]
        sized = [
            t
            for t in tables
            if t["before"].get("total_bytes") is not None and t["after"].get("total_bytes") is not None
        ]
        reindexed = sum(i["reindexed"] for i in result["indexes"].values())
        line = (
            f"{vacuumed} of {len(result['tables'])} tables vacuumed,"
            f" dead tuples {sum(t['before']['dead_tuples'] for t in both)}"
            f" -> {sum(t['after']['dead_tuples'] for t in both)},"
            f" {reindexed} indexes reindexed,"
            f" size {_human_bytes(sum(t['before']['total_bytes'] for t in sized))}"
            f" -> {_human_bytes(sum(t['after']['total_bytes'] for t in sized))}"
        )
        dropped = sum(lo["dropped"] for lo in result["leftovers"])
        if dropped:
            line += f", {dropped} leftover invalid indexes dropped"
        if result["skipped"]:
            line += f", {len(result['skipped'])} steps skipped"
        if result["errors"]:
            line += f", {len(result['errors'])} errors"
        return line


def _aligned(n: float) -> float:
    return math.ceil(n / MAXALIGN) * MAXALIGN


def _fillfactor(reloptions: list[str] | None) -> int:
    for option in reloptions or ():
        key, _, value = option.partition("=")
        if key == "fillfactor" and value.isdigit():
            return int(value)
    return DEFAULT_FILLFACTOR
