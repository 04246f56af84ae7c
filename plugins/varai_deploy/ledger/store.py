"""``Ledger``: the one durable record of an environment's releases, shared by every worker.

Per environment the lock holder; per service what is live, what it replaced and the last known
good version; per candidate its verdict; and an append-only audit. PostgreSQL through the Postgres
provider's hook (connection ``varai_ledger``): the sandbox's own cluster, Cloud SQL elsewhere.
Every method is one short transaction on a fresh connection, so a worker that dies mid-task
leaves nothing half-written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from varai_deploy.ledger.schema import DDL, SCHEMA_LOCK_KEY, VERDICTS

PENDING, PASSED, FAILED, ROLLED_BACK = VERDICTS
#: The audit action of a widget build (detail: its manifest's digest), which a promotion checks.
WIDGETS_BUILT = "widgets_built"
#: The audit action of a Phase 4 storefront search (detail: channel, outcome passed | failed, what it saw),
#: from which ``widgets.rollback_on_failure`` judges the backend.
STOREFRONT_SEARCH = "storefront_search"
#: The databases (host:port/name) whose tables this process has already made sure of.
_schema_ready: set[str] = set()


AUDIT_KEYS = ("id", "at", "dag_id", "run_id", "actor", "action", "service", "version", "detail")


class LedgerError(RuntimeError):
    """The ledger refused or could not record something; the message is for the operator."""


class LockHeldError(LedgerError):
    """Another operation holds the environment."""


@dataclass(frozen=True)
class Holder:
    environment: str
    dag_id: str
    run_id: str
    operation: str
    acquired_at: datetime
    until: datetime | None = None

    def describe(self) -> str:
        text = (
            f"{self.environment} is busy: {self.operation} run {self.run_id!r} of {self.dag_id} "
            f"holds it since {self.acquired_at:%Y-%m-%d %H:%M:%S %Z}"
        )
        if self.until is not None:
            text += f", until {self.until.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        return text


@dataclass(frozen=True)
class RevisionRecord:
    service: str
    version: str
    name: str
    url: str
    image: str
    verdict: str
    reason: str
    run_id: str
    served_at: datetime | None
    digest: str = ""

    def revision(self) -> dict[str, str]:
        """As the platforms' ``Revision`` dict."""
        revision = {
            "service": self.service,
            "version": self.version,
            "name": self.name,
            "url": self.url,
            "image": self.image,
        }
        return {**revision, "digest": self.digest} if self.digest else revision


@dataclass(frozen=True)
class ServiceState:
    service: str
    live_version: str | None
    previous_version: str | None
    last_good_version: str | None


@dataclass(frozen=True)
class Actor:
    """Who acts: the run, and the person (or system) that started it."""

    dag_id: str
    run_id: str
    who: str

    @classmethod
    def from_context(cls, context: Any) -> Actor:
        dag_run = context["dag_run"]
        who = getattr(dag_run, "triggering_user_name", None) or str(getattr(dag_run, "run_type", "") or "")
        return cls(dag_id=dag_run.dag_id, run_id=dag_run.run_id, who=who)


class Ledger:
    """One environment's ledger."""

    def __init__(self, environment: str, conn_id: str = "varai_ledger"):
        self.environment = environment
        self.conn_id = conn_id

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        try:
            hook = PostgresHook(postgres_conn_id=self.conn_id)
            where = f"{hook.connection.host}:{hook.connection.port}/{hook.connection.schema}"
            conn = hook.get_conn()
        except Exception as exc:  # the driver's own errors: name the connection, hide the DSN
            raise LedgerError(
                f"cannot reach the release ledger (connection {self.conn_id!r}): {type(exc).__name__}"
            ) from exc
        try:
            with conn.cursor() as cur:
                if where not in _schema_ready:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
                    cur.execute(DDL)
                yield cur
            conn.commit()
            _schema_ready.add(where)
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def _audit(
        self, cur: Any, actor: Actor | None, action: str, service=None, version=None, detail: dict | None = None
    ) -> None:
        cur.execute(
            "INSERT INTO audit (environment, dag_id, run_id, actor, action, service, version, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
            (
                self.environment,
                actor.dag_id if actor else "",
                actor.run_id if actor else "",
                actor.who if actor else "",
                action,
                service,
                version,
                json.dumps(detail or {}, default=str, sort_keys=True),
            ),
        )

    # -- the environment lock ----------------------------------------------------------------
    def acquire(
        self,
        actor: Actor,
        operation: str,
        is_running: Callable[[str, str], bool],
        until: datetime | None = None,
    ) -> Holder:
        """Take the environment for ``actor``'s run; refuses at once when another live run holds it.

        Re-entrant for the same run (a retried task). A holder whose run is no longer running
        (it crashed or was marked failed before it could let go) is replaced, and that is audited.
        ``until`` is when the holder means to let go, which a refusal names (a maintenance window).
        """
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO environment_lock (environment, dag_id, run_id, operation, until)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (environment) DO NOTHING",
                (self.environment, actor.dag_id, actor.run_id, operation, until),
            )
            inserted = cur.rowcount > 0
            holder = self._holder(cur, for_update=True)
            assert holder is not None
            if holder.run_id == actor.run_id and holder.dag_id == actor.dag_id:
                if inserted:
                    self._audit(cur, actor, "lock_acquired", detail={"operation": operation})
                return holder
            if is_running(holder.dag_id, holder.run_id):
                raise LockHeldError(holder.describe() + "; wait for it to finish, then try again")
            cur.execute(
                "UPDATE environment_lock SET dag_id = %s, run_id = %s, operation = %s, acquired_at = now(), until = %s"
                " WHERE environment = %s",
                (actor.dag_id, actor.run_id, operation, until, self.environment),
            )
            self._audit(
                cur,
                actor,
                "lock_recovered",
                detail={
                    "operation": operation,
                    "stale_holder": {"dag_id": holder.dag_id, "run_id": holder.run_id, "operation": holder.operation},
                },
            )
            taken = self._holder(cur)
            assert taken is not None
            return taken

    def release(self, actor: Actor, outcome: str = "") -> bool:
        """Let go of the environment if ``actor``'s run holds it; True when it did."""
        with self._transaction() as cur:
            cur.execute(
                "DELETE FROM environment_lock WHERE environment = %s AND dag_id = %s AND run_id = %s",
                (self.environment, actor.dag_id, actor.run_id),
            )
            released = cur.rowcount > 0
            if released:
                self._audit(cur, actor, "lock_released", detail={"outcome": outcome})
            return released

    def holder(self) -> Holder | None:
        with self._transaction() as cur:
            return self._holder(cur)

    def check_holds(self, actor: Actor) -> None:
        """Before a mutating step: this run must still hold the environment."""
        holder = self.holder()
        if holder is None or (holder.dag_id, holder.run_id) != (actor.dag_id, actor.run_id):
            held = holder.describe() if holder else f"nobody holds {self.environment}"
            raise LockHeldError(f"run {actor.run_id!r} no longer holds {self.environment} ({held}): refusing to act")

    def _holder(self, cur: Any, for_update: bool = False) -> Holder | None:
        if for_update:
            cur.execute(
                "SELECT dag_id, run_id, operation, acquired_at, until FROM environment_lock"
                " WHERE environment = %s FOR UPDATE",
                (self.environment,),
            )
        else:
            cur.execute(
                "SELECT dag_id, run_id, operation, acquired_at, until FROM environment_lock WHERE environment = %s",
                (self.environment,),
            )
        row = cur.fetchone()
        return Holder(self.environment, *row) if row else None

    # -- revisions and verdicts -----------------------------------------------------------
    def record_candidate(self, actor: Actor, revision: dict[str, Any]) -> None:
        """A new candidate of this run, pending its verdict (a re-released version is judged afresh)."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO revision (environment, service, version, name, url, image, digest, verdict, run_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (environment, service, version) DO UPDATE SET name = excluded.name,"
                " url = excluded.url, image = excluded.image, digest = excluded.digest,"
                " verdict = excluded.verdict, reason = '', run_id = excluded.run_id, deployed_at = now(),"
                " judged_at = NULL",
                (
                    self.environment,
                    revision["service"],
                    revision["version"],
                    revision.get("name") or "",
                    revision.get("url") or "",
                    revision.get("image") or "",
                    revision.get("digest") or "",
                    PENDING,
                    actor.run_id,
                ),
            )
            self._audit(
                cur,
                actor,
                "candidate_deployed",
                revision["service"],
                revision["version"],
                {"name": revision.get("name")},
            )

    def record_switch(self, actor: Actor, service: str, live: dict[str, Any], replaced: dict[str, Any] | None) -> None:
        """Traffic now on ``live`` (it has served); ``replaced`` is what it took over from."""
        with self._transaction() as cur:
            cur.execute(
                "UPDATE revision SET served_at = now(), name = %s, url = %s"
                " WHERE environment = %s AND service = %s AND version = %s",
                (live.get("name") or "", live.get("url") or "", self.environment, service, live["version"]),
            )
            previous = replaced["version"] if replaced and replaced["version"] != live["version"] else None
            cur.execute(
                "INSERT INTO service_state (environment, service, live_version, previous_version)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (environment, service) DO UPDATE SET"
                " live_version = excluded.live_version,"
                " previous_version = COALESCE(excluded.previous_version, service_state.previous_version),"
                " updated_at = now()",
                (self.environment, service, live["version"], previous),
            )
            self._audit(
                cur, actor, "switched", service, live["version"], {"replaced": previous, "name": live.get("name")}
            )

    def record_verdict(self, actor: Actor, service: str, version: str, verdict: str, reason: str = "") -> None:
        if verdict not in VERDICTS:
            raise LedgerError(f"unknown verdict {verdict!r}")
        with self._transaction() as cur:
            cur.execute(
                "UPDATE revision SET verdict = %s, reason = %s, judged_at = now()"
                " WHERE environment = %s AND service = %s AND version = %s",
                (verdict, reason, self.environment, service, version),
            )
            if not cur.rowcount:
                raise LedgerError(f"{service} {version} is not in the ledger of {self.environment}")
            if verdict == PASSED:
                cur.execute(
                    "UPDATE service_state SET last_good_version = %s, updated_at = now()"
                    " WHERE environment = %s AND service = %s AND live_version = %s",
                    (version, self.environment, service, version),
                )
            self._audit(cur, actor, f"verdict_{verdict}", service, version, {"reason": reason})

    def record_restored(
        self, actor: Actor, service: str, live: dict[str, Any], away_from: str | None, verdict: str | None, reason: str
    ) -> None:
        """Traffic put back on ``live`` (a rollback); ``away_from`` gets ``verdict`` (rolled back)."""
        with self._transaction() as cur:
            if away_from and verdict:
                cur.execute(
                    "UPDATE revision SET verdict = %s, reason = %s, judged_at = now()"
                    " WHERE environment = %s AND service = %s AND version = %s",
                    (verdict, reason, self.environment, service, away_from),
                )
            cur.execute(
                "UPDATE revision SET served_at = now() WHERE environment = %s AND service = %s AND version = %s",
                (self.environment, service, live["version"]),
            )
            cur.execute(
                "INSERT INTO service_state (environment, service, live_version, last_good_version)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (environment, service) DO UPDATE SET"
                " live_version = excluded.live_version, previous_version = NULL,"
                " last_good_version = excluded.last_good_version, updated_at = now()",
                (self.environment, service, live["version"], live["version"]),
            )
            self._audit(cur, actor, "rolled_back", service, live["version"], {"away_from": away_from, "reason": reason})

    def revision(self, service: str, version: str) -> RevisionRecord | None:
        with self._transaction() as cur:
            cur.execute(
                "SELECT service, version, name, url, image, verdict, reason, run_id, served_at, digest FROM revision"
                " WHERE environment = %s AND service = %s AND version = %s",
                (self.environment, service, version),
            )
            row = cur.fetchone()
            return RevisionRecord(*row) if row else None

    def revisions(self, service: str) -> list[RevisionRecord]:
        """Every revision of the service, most recently served (then deployed) first."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT service, version, name, url, image, verdict, reason, run_id, served_at, digest FROM revision"
                " WHERE environment = %s AND service = %s"
                " ORDER BY served_at DESC NULLS LAST, deployed_at DESC",
                (self.environment, service),
            )
            return [RevisionRecord(*row) for row in cur.fetchall()]

    def run_revisions(self, run_id: str) -> list[RevisionRecord]:
        """The candidates one run deployed."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT service, version, name, url, image, verdict, reason, run_id, served_at, digest FROM revision"
                " WHERE environment = %s AND run_id = %s ORDER BY service",
                (self.environment, run_id),
            )
            return [RevisionRecord(*row) for row in cur.fetchall()]

    def good_revisions(self, service: str) -> list[RevisionRecord]:
        """What a rollback may return to: revisions that served and passed, most recently served first."""
        return [r for r in self.revisions(service) if r.verdict == PASSED and r.served_at is not None]

    def service_state(self, service: str) -> ServiceState:
        with self._transaction() as cur:
            cur.execute(
                "SELECT live_version, previous_version, last_good_version FROM service_state"
                " WHERE environment = %s AND service = %s",
                (self.environment, service),
            )
            row = cur.fetchone()
            return ServiceState(service, *(row or (None, None, None)))

    # -- the audit trail -------------------------------------------------------------------
    def record(
        self,
        actor: Actor | None,
        action: str,
        service: str | None = None,
        version: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry to the audit: who (the actor), what, on which service and version, and why."""
        with self._transaction() as cur:
            self._audit(cur, actor, action, service, version, detail)

    def audit(self, since_id: int = 0, action: str | None = None, version: str | None = None) -> list[dict[str, Any]]:
        """Entries oldest first, only ``action``'s and ``version``'s when given: filtered in SQL, as the
        audit grows with every release."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT id, at, dag_id, run_id, actor, action, service, version, detail FROM audit"
                " WHERE environment = %s AND id > %s AND (%s::text IS NULL OR action = %s)"
                " AND (%s::text IS NULL OR version = %s) ORDER BY id",
                (self.environment, since_id, action, action, version, version),
            )
            return [dict(zip(AUDIT_KEYS, row, strict=True)) for row in cur.fetchall()]

    def run_audit(self, run_id: str, actions: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """One run's entries, oldest first (only ``actions`` when given)."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT id, at, dag_id, run_id, actor, action, service, version, detail FROM audit"
                " WHERE environment = %s AND run_id = %s AND (cardinality(%s::text[]) = 0 OR action = ANY(%s))"
                " ORDER BY id",
                (self.environment, run_id, list(actions), list(actions)),
            )
            return [dict(zip(AUDIT_KEYS, row, strict=True)) for row in cur.fetchall()]
