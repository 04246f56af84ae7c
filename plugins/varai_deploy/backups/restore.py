"""A data-loss recovery: the newest verified backup put back into the live database.

Only a backup proven by a restore is used, its dump checked against its sha256 again, and restored
in one transaction (:func:`varai_deploy.backups.postgres.restore_live`), so restoring the same
backup again converges on the same data. A Cloud SQL export is imported by the instance itself (it
drops what it recreates first, so it replaces the live data too).
"""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from varai_deploy.config import EnvironmentConfig

log = logging.getLogger(__name__)


def restore_newest(env: EnvironmentConfig, database: str) -> dict[str, Any]:
    from varai_deploy.backups.catalog import EXPORT, DumpMismatch, download_checked, list_backups, newest_verified
    from varai_deploy.backups.postgres import BackupError, Database, restore_live, tools_dir
    from varai_deploy.hooks.backup_store import BackupStoreHook

    if env.backups is None or database not in env.backups.databases:
        raise BackupError(f"{database!r} is not in {env.name}'s backups.databases: there is nothing to restore it from")
    store = BackupStoreHook(env.connections["backups"])
    backup = newest_verified(list_backups(store, env.name, database))
    if backup is None:
        raise BackupError(f"{database} of {env.name} has no verified backup to restore")
    manifest = backup.manifest
    target = Database.from_connection(env.connections[database])
    with tempfile.TemporaryDirectory(prefix="varai-restore-") as scratch:
        path = Path(scratch) / backup.dump_leaf
        try:
            download_checked(backup, path)
        except DumpMismatch as exc:
            raise BackupError(f"{backup.describe()}: {exc}; nothing was restored") from None
        started = time.monotonic()
        if backup.dump_leaf == EXPORT:
            from varai_deploy.backups.cloud_sql import Instance

            uri = f"gs://{store.bucket}/{backup.name(EXPORT)}"
            Instance(env.connections["cloud_sql"]).import_now(target.dbname, uri)
        else:
            restore_live(target, path, tools_dir(env.backups.tools), env.backups.every_minutes * 60)
    restored = {
        "database": database,
        "stamp": backup.stamp,
        "snapshot_at": manifest["snapshot_at"],
        "restored_at": datetime.now(UTC).isoformat(),
        "restore_seconds": round(time.monotonic() - started, 3),
        "rows": {table: figures["rows"] for table, figures in backup.figures.items()},
    }
    log.info(
        "Restored %s into %s in %.1f s: the data as of %s",
        backup.describe(),
        target.describe(),
        restored["restore_seconds"],
        manifest["snapshot_at"],
    )
    return restored
