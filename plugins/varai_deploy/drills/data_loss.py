"""The data-loss scenario: the services' tables destroyed for real, then restored from a backup.

What is destroyed is counted first (rows and the newest row per table), so the report can say how
much the restore brought back and how much was lost since the backup's snapshot: the RPO, measured.
Noticed when the steady state is gone (the services fail their writes, the tables cannot be read);
recovered by restoring the newest verified backup into the live database; an abort restores again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from varai_deploy.config import DrillPolicy, EnvironmentConfig


def destroy(env: EnvironmentConfig, policy: DrillPolicy) -> dict[str, Any]:
    """Counts, then drops every watched table in one transaction; a table already gone counts as 0."""
    from psycopg2 import sql

    from varai_deploy.backups.postgres import Database

    conn = Database.from_connection(env.connections[policy.database]).connect()
    rows, newest = {}, {}
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = '10s'")
            for table in policy.tables:
                cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
                if not cur.fetchone()[0]:
                    rows[table], newest[table] = 0, None
                    continue
                # Writers are shut out first, so what is counted is exactly what is destroyed.
                cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))
                cur.execute(sql.SQL("SELECT count(*), max(created_at) FROM {}").format(sql.Identifier(table)))
                count, last = cur.fetchone()
                rows[table], newest[table] = count, last.isoformat() if last else None
                cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
            cur.execute("SELECT clock_timestamp()")  # the database's clock, which stamps the rows
            broken_at = cur.fetchone()[0].astimezone(UTC)
        conn.commit()
    finally:
        conn.close()
    return {"broken_at": broken_at.isoformat(), "rows": rows, "newest": newest, "tables": list(policy.tables)}


def newest_before(env: EnvironmentConfig, policy: DrillPolicy, moment: datetime) -> datetime | None:
    """The newest row written before ``moment`` that is there now, across the watched tables: after a
    restore, the last write the recovery kept (RPO = outage start minus this)."""
    from psycopg2 import sql

    from varai_deploy.backups.postgres import Database

    conn = Database.from_connection(env.connections[policy.database]).connect()
    newest = None
    try:
        with conn.cursor() as cur:
            for table in policy.tables:
                query = sql.SQL("SELECT max(created_at) FROM {} WHERE created_at < %s").format(sql.Identifier(table))
                cur.execute(query, (moment,))
                found = cur.fetchone()[0]
                newest = max(filter(None, (newest, found)), default=None)
    finally:
        conn.close()
    return newest


def lost_rows(destroyed: dict[str, Any], restored: dict[str, Any]) -> dict[str, int]:
    """Per table: rows there when destroyed that the backup did not have (written after its snapshot)."""
    backed_up = {table.split(".", 1)[-1]: rows for table, rows in restored["rows"].items()}
    return {table: max(0, rows - backed_up.get(table, 0)) for table, rows in destroyed["rows"].items()}


class DataLoss:
    name = "data_loss"
    needs_backup = True

    def inject(self, env: EnvironmentConfig, policy: DrillPolicy) -> dict[str, Any]:
        return destroy(env, policy)

    def detected(self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]) -> dict[str, Any] | None:
        from varai_deploy.drills.steady_state import gone

        return gone(env, policy)

    def recover(
        self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any], progress: dict[str, Any]
    ) -> dict[str, Any]:
        from varai_deploy.backups.restore import restore_newest

        return restore_newest(env, policy.database)

    def abort(self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]) -> dict[str, Any]:
        from varai_deploy.backups.restore import restore_newest
        from varai_deploy.drills.steady_state import observe

        state = observe(env, policy)
        if state.holds:
            return {"outcome": "the steady state is back by itself: nothing restored"}
        restored = restore_newest(env, policy.database)
        return {"outcome": f"restored {restored['stamp']} again after: {state.describe()}", **restored}

    def lift(self, env: EnvironmentConfig, policy: DrillPolicy, broken: dict[str, Any]) -> None:
        """Nothing the break did outlasts the recovery."""
        return None

    def findings(self, steps: dict[str, dict]) -> dict[str, Any]:
        """What the report adds for this scenario: the rows lost, and the backup used."""
        return {
            "lost_rows": lost_rows(steps["inject_failure"], steps["recover"]),
            "restored_backup": steps["recover"]["stamp"],
        }
