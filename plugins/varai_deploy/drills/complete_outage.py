"""The complete-outage scenario: every service stopped, the application's database dropped and the
infrastructure's Terraform state gone; recovered by recreating everything from what the project
keeps elsewhere.

Before anything is broken, every service must have a known-good revision in the ledger (what was
live and passed): without one there would be nothing to redeploy, so nothing is broken. The break:
each service removed from the platform (both colours stopped and forgotten; the gateway has nothing
to route to), the database dropped with its connections, and a local Terraform state deleted (a
shared state, as production's, is not touched). The recovery, step by step, each checked before it
is done again, so a retried or resumed recovery converges:

1. Terraform init, plan and apply of the environment's module for the last known good release;
2. the database created again and the newest verified backup restored into it;
3. each service's last known good revision from the ledger deployed, health-checked on its own URL
   and given the traffic.

Noticed when the steady state is gone. An abort runs the same recovery to its end.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from varai_deploy.config import DrillPolicy, EnvironmentConfig
from varai_deploy.drills.scenarios import ScenarioUnsupported, answers_healthy, platform_for

ABORT_POLL_SECONDS = 1.0


def _platform(env: EnvironmentConfig) -> Any:
    return platform_for(
        env, "complete_outage", ("remove_service", "current_revision", "deploy_candidate", "switch_traffic")
    )


def known_good(env: EnvironmentConfig) -> dict[str, dict[str, str]]:
    """Each service's most recently served revision that passed, from the ledger."""
    from varai_deploy.ledger import ledger_for

    ledger = ledger_for(env)
    good, missing = {}, []
    for service in env.services:
        revisions = ledger.good_revisions(service)
        if revisions:
            newest = revisions[0]
            good[service] = {
                "version": newest.version,
                "image": newest.image,
                "served_at": newest.served_at.isoformat(),
            }
        else:
            missing.append(service)
    if missing:
        raise ScenarioUnsupported(
            f"the ledger knows no good revision of {', '.join(missing)}: nothing to redeploy after a complete "
            "outage; release first. Nothing was broken"
        )
    return good


def _maintenance_connection(env: EnvironmentConfig, policy: DrillPolicy):
    """A session on the server's ``postgres`` database, as the application's role: one that may drop and
    create the application's database. Returns (connection, the application's database name)."""
    from varai_deploy.backups.postgres import Database

    db = Database.from_connection(env.connections[policy.database])
    conn = db.connect(dbname="postgres")
    conn.autocommit = True  # DROP and CREATE DATABASE refuse to run in a transaction
    return conn, db.dbname


def _count_rows(env: EnvironmentConfig, policy: DrillPolicy) -> dict[str, int]:
    from psycopg2 import sql

    from varai_deploy.backups.postgres import Database

    conn = Database.from_connection(env.connections[policy.database]).connect()
    try:
        with conn.cursor() as cur:
            counts = {}
            for table in policy.tables:
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
                counts[table] = cur.fetchone()[0]
            return counts
    finally:
        conn.close()


def _database_exists(env: EnvironmentConfig, policy: DrillPolicy) -> bool:
    conn, name = _maintenance_connection(env, policy)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cur.fetchone() is not None
    finally:
        conn.close()


def _terraform_release(good: dict[str, dict[str, str]]) -> str:
    """The release whose topology Terraform recreates: the known-good version served most recently."""
    return max(good.values(), key=lambda g: g["served_at"])["version"]


class CompleteOutage:
    name = "complete_outage"
    needs_backup = True

    def inject(self, env: EnvironmentConfig, policy: DrillPolicy) -> dict[str, Any]:
        from psycopg2 import sql

        platform = _platform(env)
        good = known_good(env)  # refuses before anything is broken
        rows = _count_rows(env, policy)
        for service in env.services:
            platform.remove_service(service)
        conn, name = _maintenance_connection(env, policy)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT clock_timestamp()")  # the database's clock, which stamps the rows
                broken_at = cur.fetchone()[0].astimezone(UTC)
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        finally:
            conn.close()
        state = env.terraform.state_path if env.terraform.backend == "local" else None
        if state is not None:
            state.unlink(missing_ok=True)
            state.with_name(state.name + ".backup").unlink(missing_ok=True)
        return {
            "broken_at": broken_at.isoformat(),
            "rows": rows,
            "tables": list(policy.tables),
            "database": name,
            "services": good,
            "terraform_state_deleted": str(state) if state else None,
        }

    def detected(self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]) -> dict[str, Any] | None:
        from varai_deploy.drills.steady_state import gone

        return gone(env, policy)

    def recover(
        self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any], progress: dict[str, Any]
    ) -> dict[str, Any] | None:
        """One pass over the three steps; None while a service is not serving yet (``progress`` keeps
        what is done across passes)."""
        if "terraform" not in progress:
            progress["terraform"] = self._terraform(env, broken)
        if "restored" not in progress:
            progress["restored"] = self._database(env, policy)
        waiting = [s for s, want in broken["services"].items() if not self._serving(env, s, want)]
        if waiting:
            progress["waiting_for"] = waiting
            return None
        return {
            **progress["restored"],
            "restored_at": datetime.now(UTC).isoformat(),
            "terraform": progress["terraform"],
            "redeployed": {s: want["version"] for s, want in broken["services"].items()},
        }

    def abort(self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]) -> dict[str, Any]:
        """The same recovery, to its end, however long it takes (from the ledger again when the break
        died before saying what it broke)."""
        broken = broken if broken.get("services") else {**broken, "services": known_good(env)}
        progress: dict[str, Any] = {}
        while (done := self.recover(env, policy, broken, progress)) is None:
            time.sleep(ABORT_POLL_SECONDS)
        return {
            "outcome": f"recreated everything: {', '.join(done['redeployed'])} and the data of {done['stamp']}",
            **done,
        }

    def lift(self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]) -> None:
        """Nothing the break did outlasts the recovery."""
        return None

    def findings(self, steps: dict[str, dict]) -> dict[str, Any]:
        from varai_deploy.drills.data_loss import lost_rows

        recovered = steps["recover"]
        return {
            "lost_rows": lost_rows(steps["inject_failure"], recovered),
            "restored_backup": recovered["stamp"],
            "redeployed": recovered["redeployed"],
            "terraform": recovered["terraform"],
        }

    # -- the recovery's steps ---------------------------------------------------------------------
    @staticmethod
    def _terraform(env: EnvironmentConfig, broken: dict[str, Any]) -> dict[str, Any]:
        from varai_deploy.operators.terraform import release_variables, terraform_for

        version = _terraform_release(broken["services"])
        started = time.monotonic()
        with terraform_for(env) as hook:
            hook.init()
            plan = hook.plan(release_variables(env, version))
            if plan.changes:
                hook.apply(plan.plan_file)
        # Nothing to apply, yet the break deleted the state: a try of this step that died after
        # applying (its progress died with it) recreated it, and the report says so.
        deleted = broken.get("terraform_state_deleted")
        by_earlier_try = not plan.changes and bool(deleted) and Path(deleted).exists()
        return {
            "release": version,
            "applied": plan.changes or by_earlier_try,
            **({"applied_by": "an earlier try"} if by_earlier_try else {}),
            "seconds": round(time.monotonic() - started, 1),
        }

    @staticmethod
    def _database(env: EnvironmentConfig, policy: DrillPolicy) -> dict[str, Any]:
        from psycopg2 import errors, sql

        from varai_deploy.backups.restore import restore_newest

        if not _database_exists(env, policy):
            conn, name = _maintenance_connection(env, policy)
            try:
                # DuplicateDatabase: created by an earlier pass that died before restoring.
                with conn.cursor() as cur, contextlib.suppress(errors.DuplicateDatabase):
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            finally:
                conn.close()
        return restore_newest(env, policy.database)

    @staticmethod
    def _serving(env: EnvironmentConfig, service: str, want: dict[str, str]) -> bool:
        """Deploys the known-good revision if it is not there, and gives it the traffic once healthy."""
        platform = _platform(env)
        live = platform.current_revision(service)
        if live and live["version"] == want["version"]:
            return True
        candidate = platform.deploy_candidate(service, want["version"], want["image"])
        if answers_healthy(candidate["url"], service):
            platform.switch_traffic(service, candidate, live)
        return False
