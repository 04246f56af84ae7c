"""A database backup and its proof by restore, by database size, against the sandbox's real servers.

    make bench            (or: PYTHONPATH=plugins:. .venv/bin/python benchmarks/backup_restore.py)

Starts a scratch sandbox (PostgreSQL and the storage emulator only; ports 19280+, apart from the
demo's and the tests') and, for tables of growing size in the ledger's database, times the
backup (snapshot figures + pg_dump + upload) and the verification (download + restore into a
scratch database + figures), without Airflow. The restore time is what a data-loss recovery pays
at least (the RTO), and the backup time bounds how often backups can run (the RPO).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

SCRATCH = Path(tempfile.mkdtemp(prefix="varai-bench-backups-"))
os.environ.update(
    {
        "VARAI_SANDBOX_HOME": str(SCRATCH / "sandbox"),
        "VARAI_SANDBOX_GATEWAY_PORT": "19280",
        "VARAI_SANDBOX_PORT_BASE": "19300",
        "VARAI_SANDBOX_TRAFFIC_RPS": "0",
        "VARAI_SANDBOX_COMPONENTS": "postgres,storage",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
)
SIZES = (10_000, 100_000, 1_000_000)


def fill(rows: int) -> None:
    from varai_deploy.backups.postgres import Database

    conn = Database.from_connection("varai_ledger").connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_events")
        cur.execute(
            "CREATE TABLE bench_events AS SELECT i AS id, now() AS created_at, md5(i::text) AS note "
            f"FROM generate_series(1, {rows}) AS i"
        )
    conn.close()


def main() -> None:
    from varai_deploy.operators.backup import BackupDatabaseOperator, VerifyBackupOperator
    from varai_deploy.sandbox import Sandbox
    from varai_deploy.sandbox.components import read_connections_env

    sandbox = Sandbox()
    sandbox.up()
    rows = []
    try:
        os.environ.update(read_connections_env(sandbox.settings))
        context = {"run_id": "benchmark"}
        for size in SIZES:
            fill(size)
            started = time.perf_counter()
            taken = BackupDatabaseOperator(task_id="backup", environment="sandbox", database="ledger").execute(context)
            backup = time.perf_counter() - started
            started = time.perf_counter()
            verified = VerifyBackupOperator(
                task_id="verify", environment="sandbox", database="ledger", backup=taken
            ).execute(context)
            verify = time.perf_counter() - started
            rows.append((size, taken["size"], backup, verify, verified["restore_seconds"]))
    finally:
        sandbox.down(purge=True)
    print("database backup and its proof by restore (ledger database + one table of N rows)")
    print(f"  {'rows':>10} {'dump size':>10} {'backup':>8} {'verify':>8} {'of it restore':>14}")
    for size, dump_size, backup, verify, restore in rows:
        print(f"  {size:10,d} {dump_size / 1e6:8.1f}MB {backup:7.2f}s {verify:7.2f}s {restore:13.2f}s")


if __name__ == "__main__":
    main()
