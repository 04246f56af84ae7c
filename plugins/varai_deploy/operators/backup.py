"""One database's backup: dump a consistent snapshot, prove it by a restore, keep what the policy keeps.

Each step is safe to retry and to run beside another run: a dump is a new folder named by its
snapshot time (never an overwrite), verifying a verified backup is a no-op, and retention only
deletes what its plan names, never the newest verified backup.

With ``backups.method: cloud_sql`` the instance exports itself and a scratch database on it imports
the export (see :mod:`varai_deploy.backups.cloud_sql`); both waits are deferred, and a retry finds the
export or import a dead try started instead of asking for a second one.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varai_deploy.backups.catalog import sha256_of
from varai_deploy.operators.base import EnvironmentOperator

if TYPE_CHECKING:
    from varai_deploy.backups.postgres import Database
    from varai_deploy.config import BackupPolicy
    from varai_deploy.hooks.backup_store import BackupStoreHook

log = logging.getLogger(__name__)


def compare_tables(expected: dict[str, dict], restored: dict[str, dict]) -> list[str]:
    """What differs between the snapshot's figures and the restored copy's, table by table."""
    problems = [f"{t}: missing from the restored copy" for t in sorted(set(expected) - set(restored))]
    problems += [f"{t}: in the restored copy only" for t in sorted(set(restored) - set(expected))]
    for table in sorted(set(expected) & set(restored)):
        want, got = expected[table], restored[table]
        if want["rows"] != got["rows"]:
            problems.append(f"{table}: {got['rows']} rows restored, {want['rows']} backed up")
        elif want["checksum"] != got["checksum"]:
            problems.append(f"{table}: same {want['rows']} rows, different content")
    return problems


class BackupStepOperator(EnvironmentOperator):
    """A step on one database (``database``: its connection role in the environment config)."""

    template_fields: tuple[str, ...] = ("environment", "database")

    def __init__(self, *, database: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.database = database

    @cached_property
    def policy(self) -> BackupPolicy:
        from varai_deploy.backups.postgres import BackupError

        policy = self.env_config.backups
        if policy is None:
            raise BackupError(f"{self.environment} has no backups section in its config: nothing to back up")
        if self.database not in policy.databases:
            raise BackupError(f"{self.database!r} is not in {self.environment}'s backups.databases")
        return policy

    @cached_property
    def db(self) -> Database:
        from varai_deploy.backups.postgres import Database

        self.policy  # noqa: B018 -- refuses a database the policy does not back up
        return Database.from_connection(self.env_config.connections[self.database])

    @cached_property
    def store(self) -> BackupStoreHook:
        from varai_deploy.hooks.backup_store import BackupStoreHook

        return BackupStoreHook(self.env_config.connections["backups"])

    @property
    def step_timeout(self) -> float:
        """A step must end before the next backup is due."""
        return self.policy.every_minutes * 60

    @cached_property
    def instance(self) -> Any:
        from varai_deploy.backups.cloud_sql import Instance

        return Instance(self.env_config.connections["cloud_sql"])

    def wait_until_free(self, busy: Exception, method: str = "execute", **kwargs: Any) -> None:
        """The instance runs another operation (Cloud SQL allows one at a time): ``method`` again in a
        moment, deferred."""
        from datetime import timedelta

        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        log.info(
            "%s is busy (%s): asking again in %g s", self.instance.describe(), busy, self.instance.hook.poll_interval
        )
        moment = datetime.now(UTC) + timedelta(seconds=self.instance.hook.poll_interval)
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name=method, kwargs=kwargs or None)

    def wait_for(self, operation: str, method: str, **kwargs: Any) -> None:
        """Deferred until the Cloud SQL operation is done; ``method`` resumes with its event."""
        from datetime import timedelta

        from varai_deploy.triggers.cloud_sql import CloudSqlOperationTrigger

        trigger = CloudSqlOperationTrigger(self.instance.conn_id, operation, self.instance.hook.poll_interval)
        self.defer(trigger=trigger, method_name=method, kwargs=kwargs, timeout=timedelta(seconds=self.step_timeout))


class BackupDatabaseOperator(BackupStepOperator):
    """``pg_dump`` of one consistent snapshot into the bucket, then its manifest (rows and checksums)."""

    def execute(self, context: Any, event: Any = None) -> dict[str, Any]:
        if self.policy.method == "cloud_sql":
            return self.start_export(context)
        from varai_deploy.backups.catalog import DUMP, MANIFEST, folder, stamp_of
        from varai_deploy.backups.postgres import dump, snapshot, tools_dir

        tools = tools_dir(self.policy.tools)
        with tempfile.TemporaryDirectory(prefix="varai-backup-") as scratch:
            path = Path(scratch) / DUMP
            started = time.monotonic()
            with snapshot(self.db) as snap:
                dump(self.db, snap.id, path, tools, self.step_timeout)
            sha256, size = sha256_of(path)
            base = folder(self.environment, self.database, stamp_of(snap.taken_at))
            self.store.put_file(base + DUMP, path)
        manifest = {
            "environment": self.environment,
            "database": self.database,
            "source": self.db.describe(),
            "server_version": snap.server_version,
            "snapshot_at": snap.taken_at.astimezone(UTC).isoformat(),
            "sha256": sha256,
            "size": size,
            "tables": snap.tables,
            "dump_seconds": round(time.monotonic() - started, 3),
            "run_id": context["run_id"],
        }
        self.store.put_json(base + MANIFEST, manifest)
        rows = sum(t["rows"] for t in snap.tables.values())
        log.info(
            "Backed up %s at %s: %d tables, %d rows, %d bytes, sha256 %s -> gs://%s/%s",
            self.database,
            manifest["snapshot_at"],
            len(snap.tables),
            rows,
            size,
            sha256,
            self.store.bucket,
            base + DUMP,
        )
        return {"database": self.database, "stamp": stamp_of(snap.taken_at), "rows": rows, "size": size}

    def start_export(self, context: Any) -> None:
        """The source's figures kept, then the export asked for (or the one a dead try started found)."""
        from varai_deploy.backups.catalog import EXPORT, SOURCE_BEFORE, folder, stamp_of
        from varai_deploy.backups.cloud_sql import InstanceBusy
        from varai_deploy.backups.postgres import figures_of

        prefix = f"gs://{self.store.bucket}/{folder(self.environment, self.database)}"
        running = self.instance.unfinished()
        uri = str(((running or {}).get("exportContext") or {}).get("uri", ""))
        if running and running.get("operationType") == "EXPORT" and uri.startswith(prefix):
            operation, stamp = running["name"], uri.removeprefix(prefix).split("/", 1)[0]
            log.info("An export a previous try asked for is still running (%s): waiting for it", operation)
        else:
            if running:  # before anything is written: no folder per look
                self.wait_until_free(InstanceBusy(f"operation {running['name']} in progress"))
            stamp = stamp_of(datetime.now(UTC))
            base = folder(self.environment, self.database, stamp)
            self.store.put_json(base + SOURCE_BEFORE, {"tables": figures_of(self.db, self.db.dbname)})
            try:
                operation = self.instance.start_export(self.db.dbname, f"gs://{self.store.bucket}/{base}{EXPORT}")
            except InstanceBusy as busy:  # the folder stays unfinished (incomplete): retention clears it
                self.wait_until_free(busy)
            log.info(
                "%s exports %s to gs://%s/%s%s (%s)",
                self.instance.describe(),
                self.db.dbname,
                self.store.bucket,
                base,
                EXPORT,
                operation,
            )
        self.wait_for(operation, "export_done", stamp=stamp)

    def export_done(self, context: Any, event: dict[str, Any], stamp: str) -> dict[str, Any]:
        """The export's manifest: its sha256 and size, when it ran, the source around it, the instance's protection."""
        from airflow.sdk.exceptions import AirflowFailException

        from varai_deploy.backups.catalog import EXPORT, MANIFEST, SOURCE_BEFORE, folder
        from varai_deploy.backups.postgres import figures_of

        base = folder(self.environment, self.database, stamp)
        if event["errors"]:
            raise AirflowFailException(
                f"{self.instance.describe()} did not export {self.database} ({event['operation']}): "
                + "; ".join(event["errors"])
            )
        after = figures_of(self.db, self.db.dbname)
        with tempfile.TemporaryDirectory(prefix="varai-export-") as scratch:
            path = Path(scratch) / EXPORT
            self.store.download_to(base + EXPORT, path)
            sha256, size = sha256_of(path)
        protection = self.instance.protection()
        if not protection["point_in_time_recovery"]:
            log.warning(
                "%s has point-in-time recovery off: only these exports bound the data loss", self.instance.describe()
            )
        manifest = {
            "environment": self.environment,
            "database": self.database,
            "method": "cloud_sql",
            "source": f"{self.instance.describe()} database {self.db.dbname}",
            "operation": event["operation"],
            "snapshot_at": event["start_time"],
            "exported_at": event["end_time"],
            "sha256": sha256,
            "size": size,
            "source_before": self.store.read_json(base + SOURCE_BEFORE)["tables"],
            "source_after": after,
            "protection": protection,
            "run_id": context["run_id"],
        }
        self.store.put_json(base + MANIFEST, manifest)
        log.info(
            "Exported %s: %d bytes, sha256 %s -> gs://%s/%s%s",
            self.database,
            size,
            sha256,
            self.store.bucket,
            base,
            EXPORT,
        )
        rows = sum(t["rows"] for t in after.values())
        return {"database": self.database, "stamp": stamp, "rows": rows, "size": size}


class VerifyBackupOperator(BackupStepOperator):
    """Restores the backup into a scratch database and compares every table with the snapshot's
    figures; only then is it ``verified``. A backup that cannot be proven is marked ``failed`` for
    good (no retry makes a bad dump good); a step that could not run (the database unreachable) retries."""

    template_fields = (*BackupStepOperator.template_fields, "backup")

    def __init__(self, *, backup: dict[str, Any] | str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backup = backup

    def execute(self, context: Any, event: Any = None) -> dict[str, Any]:
        from varai_deploy.backups.catalog import DUMP, EXPORT, DumpMismatch, download_checked, find
        from varai_deploy.backups.postgres import RestoreFailed, figures_of, restore, scratch_database, tools_dir

        stamp = self.backup["stamp"]
        found = find(self.store, self.environment, self.database, stamp)
        if found is None or found.status == "incomplete":
            self._fail(found, stamp, "its dump or manifest is not in the bucket")
        if found.status == "verified":
            log.info("%s was verified already at %s", found.describe(), found.verified["verified_at"])
            return {"database": self.database, "stamp": stamp, **found.verified}
        if found.status == "failed":
            self._fail(None, stamp, found.failed["reason"])
        if found.dump_leaf == EXPORT:
            return self.start_import(found)
        manifest = found.manifest
        with tempfile.TemporaryDirectory(prefix="varai-verify-") as scratch:
            path = Path(scratch) / DUMP
            try:
                download_checked(found, path)
            except DumpMismatch as exc:
                self._fail(found, stamp, str(exc))
            started = time.monotonic()
            name = re.sub(r"[^a-z0-9_]", "_", f"varai_verify_{self.database}_{stamp}".lower())[:63]
            try:
                with scratch_database(self.db, name):
                    restore(self.db, name, path, tools_dir(self.policy.tools), self.step_timeout)
                    restored = figures_of(self.db, name)
            except RestoreFailed as exc:
                self._fail(found, stamp, str(exc))
            restore_seconds = round(time.monotonic() - started, 3)
        problems = compare_tables(manifest["tables"], restored)
        if problems:
            self._fail(found, stamp, "the restored copy differs: " + "; ".join(problems))
        verified = self._verified(found, context, restored, restore_seconds)
        log.info(
            "Verified %s: restored in %.1f s, %d tables and %d rows identical to the snapshot of %s",
            found.describe(),
            restore_seconds,
            verified["tables"],
            verified["rows"],
            manifest["snapshot_at"],
        )
        return {"database": self.database, "stamp": stamp, **verified}

    def _verified(self, found: Any, context: Any, restored: dict, seconds: float, **extra: Any) -> dict[str, Any]:
        from varai_deploy.backups.catalog import VERIFIED

        verified = {
            "verified_at": datetime.now(UTC).isoformat(),
            "restore_seconds": seconds,
            "tables": len(restored),
            "rows": sum(t["rows"] for t in restored.values()),
            "run_id": context["run_id"],
            **extra,
        }
        self.store.put_json(found.name(VERIFIED), verified)
        return verified

    def scratch_name(self, stamp: str) -> str:
        return re.sub(r"[^a-z0-9_]", "_", f"varai_verify_{self.database}_{stamp}".lower())[:63]

    def start_import(self, found: Any) -> None:
        """A scratch database on the instance imports the export (or the import a dead try started is found)."""
        from varai_deploy.backups.catalog import EXPORT
        from varai_deploy.backups.cloud_sql import InstanceBusy

        uri = f"gs://{self.store.bucket}/{found.name(EXPORT)}"
        name = self.scratch_name(found.stamp)
        running = self.instance.unfinished()
        if running and running.get("operationType") == "IMPORT" and running["importContext"]["uri"] == uri:
            operation = running["name"]
        else:
            try:
                if running:
                    raise InstanceBusy(f"operation {running['name']} in progress")
                self.instance.create_scratch(name)
                operation = self.instance.start_import(name, uri)
            except InstanceBusy as busy:
                self.wait_until_free(busy)
        log.info("%s imports %s into %s (%s)", self.instance.describe(), uri, name, operation)
        self.wait_for(operation, "import_done", stamp=found.stamp, started=time.time())

    def import_done(self, context: Any, event: dict[str, Any], stamp: str, started: float) -> dict[str, Any]:
        """The restored copy measured, then held against the source as it was before and after the export."""
        from varai_deploy.backups.catalog import find
        from varai_deploy.backups.cloud_sql import bracket
        from varai_deploy.backups.postgres import figures_of

        if event["errors"]:
            return self.judged(
                context, stamp=stamp, failure="the export does not import: " + "; ".join(event["errors"])
            )
        restored = figures_of(self.db, self.scratch_name(stamp))
        manifest = find(self.store, self.environment, self.database, stamp).manifest
        problems = bracket(manifest["source_before"], restored, manifest["source_after"])
        failure = "the restored copy does not match its source: " + "; ".join(problems) if problems else None
        return self.judged(
            context, stamp=stamp, failure=failure, restored=restored, seconds=round(time.time() - started, 3)
        )

    def judged(
        self,
        context: Any,
        event: Any = None,
        *,
        stamp: str,
        failure: str | None,
        restored: dict | None = None,
        seconds: float = 0.0,
    ) -> dict[str, Any]:
        """The scratch database dropped (while the instance runs another operation, deferred until it is
        free: no worker slot waits), then the verdict written."""
        from varai_deploy.backups.catalog import find
        from varai_deploy.backups.cloud_sql import InstanceBusy

        try:
            self.instance.drop_scratch(self.scratch_name(stamp))
        except InstanceBusy as busy:
            verdict = {"stamp": stamp, "failure": failure, "restored": restored, "seconds": seconds}
            self.wait_until_free(busy, "judged", **verdict)
        found = find(self.store, self.environment, self.database, stamp)
        if failure:
            self._fail(found, stamp, failure)
        verified = self._verified(found, context, restored, seconds, figures=restored)
        log.info(
            "Verified %s: imported into a scratch database in %.1f s, %d tables and %d rows within the source's",
            found.describe(),
            verified["restore_seconds"],
            verified["tables"],
            verified["rows"],
        )
        return {"database": self.database, "stamp": stamp, **{k: v for k, v in verified.items() if k != "figures"}}

    def _fail(self, backup: Any, stamp: str, reason: str) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from varai_deploy.backups.catalog import FAILED

        if backup is not None:
            self.store.put_json(backup.name(FAILED), {"failed_at": datetime.now(UTC).isoformat(), "reason": reason})
        raise AirflowFailException(f"{self.database} backup {stamp} is not good: {reason}")


class EnforceRetentionOperator(BackupStepOperator):
    """Deletes what the retention plan does not keep, saying why for each backup."""

    def execute(self, context: Any) -> dict[str, Any]:
        from varai_deploy.backups.catalog import DUMP, EXPORT, MANIFEST, list_backups
        from varai_deploy.backups.retention import plan

        backups = {b.stamp: b for b in list_backups(self.store, self.environment, self.database)}
        keep, delete = plan(list(backups.values()), datetime.now(UTC), self.policy)
        for stamp, why in keep.items():
            log.info("keep   %s: %s", backups[stamp].describe(), why)
        for stamp, why in delete.items():
            backup = backups[stamp]
            log.info("delete %s: %s", backup.describe(), why)
            # The dump first and the manifest last: one cut short reads as unfinished and goes next time.
            leaves = sorted(backup.objects, key=lambda leaf: (leaf not in (DUMP, EXPORT), leaf == MANIFEST))
            self.store.delete_names([backup.name(leaf) for leaf in leaves])
        return {"database": self.database, "kept": len(keep), "deleted": len(delete)}


class RestoreBackupOperator(BackupStepOperator):
    """Puts the newest verified backup back into the live database (a data-loss recovery); see
    :func:`varai_deploy.backups.restore.restore_newest`."""

    def execute(self, context: Any) -> dict[str, Any]:
        from varai_deploy.backups.restore import restore_newest

        return restore_newest(self.env_config, self.database)
