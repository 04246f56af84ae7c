"""Backups a Cloud SQL instance takes of itself: an export to the backup bucket, proven by importing it
into a scratch database on the same instance.

Every call goes through the Google provider's ``CloudSQLHook`` (``EndpointCloudSQLHook``: the Admin
API's address from the connection, so the sandbox's stand-in and Google look the same to this code).
Exports are plain SQL with ``DROP ... IF EXISTS`` first (``clean``/``ifExists``), so one export both
loads into an empty scratch database (the proof) and replaces the live data (a restore). Long
operations are started here and waited for by ``CloudSqlOperationTrigger``, deferred.

A Cloud SQL export takes its own snapshot, which the worker cannot share; so the source's figures are
read just before the export is asked for and again once it is done, and the copy proven by the
import must lie between them, table by table (the services' tables only grow). What is restored
later is compared with the figures the proof measured, exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from varai_deploy.backups.postgres import BackupError

_SCRATCH_RE = re.compile(r"varai_verify_[a-z0-9_]{1,50}")


class InstanceBusy(BackupError):
    """Cloud SQL runs one operation at a time per instance: another one (a second database's export) runs."""


def _busy(call: Any) -> dict[str, Any]:
    """``call.execute()``, a 409 (an operation in progress) raised as InstanceBusy to wait on."""
    from googleapiclient.errors import HttpError

    try:
        return call.execute()
    except HttpError as exc:
        if exc.resp.status == 409:
            raise InstanceBusy(str(exc)) from None
        raise


def export_body(database: str, uri: str) -> dict[str, Any]:
    return {
        "exportContext": {
            "kind": "sql#exportContext",
            "fileType": "SQL",
            "uri": uri,
            "databases": [database],
            "sqlExportOptions": {"postgresExportOptions": {"clean": True, "ifExists": True}},
        }
    }


def import_body(database: str, uri: str) -> dict[str, Any]:
    return {"importContext": {"kind": "sql#importContext", "fileType": "SQL", "uri": uri, "database": database}}


def operation_errors(operation: dict[str, Any]) -> list[str]:
    """What a finished operation says went wrong (Cloud SQL's ``error.errors[]``); empty when it succeeded."""
    return [
        f"{e.get('code', 'ERROR')}: {e.get('message', '')}" for e in (operation.get("error") or {}).get("errors", [])
    ]


def bracket(before: dict[str, dict], restored: dict[str, dict], after: dict[str, dict]) -> list[str]:
    """What is wrong with a restored export whose source was read ``before`` and ``after`` it: a table
    missing or extra, or rows outside what the source had between the two readings."""
    problems = [f"{t}: missing from the restored copy" for t in sorted(set(before) - set(restored))]
    problems += [f"{t}: in the restored copy only" for t in sorted(set(restored) - set(before) - set(after))]
    for table in sorted(set(before) & set(restored)):
        low, got = before[table]["rows"], restored[table]["rows"]
        high = after.get(table, before[table])["rows"]
        if not min(low, high) <= got <= max(low, high):
            problems.append(f"{table}: {got} rows restored, the source had {low} before the export and {high} after")
    return problems


@dataclass(frozen=True)
class Instance:
    """The Cloud SQL instance a connection (``connections.cloud_sql``) names: project, instance."""

    conn_id: str

    @cached_property
    def hook(self) -> Any:
        from varai_deploy.hooks.cloud_sql import EndpointCloudSQLHook

        return EndpointCloudSQLHook(gcp_conn_id=self.conn_id)

    @cached_property
    def project(self) -> str:
        project = self.hook.project_id
        if not project:
            raise BackupError(f"the connection {self.conn_id!r} names no Google Cloud project (extra 'project')")
        return project

    @cached_property
    def name(self) -> str:
        if not self.hook.instance:
            raise BackupError(f"the connection {self.conn_id!r} names no Cloud SQL instance (extra 'instance')")
        return self.hook.instance

    def _api(self) -> Any:
        return self.hook.get_conn()

    def describe(self) -> str:
        return f"Cloud SQL {self.project}/{self.name}"

    def protection(self) -> dict[str, Any]:
        """How the instance protects itself: automated backups and point-in-time recovery (what meets the RPO)."""
        found = self._api().instances().get(project=self.project, instance=self.name).execute()
        config = (found.get("settings") or {}).get("backupConfiguration") or {}
        return {
            "automated_backups": bool(config.get("enabled")),
            "point_in_time_recovery": bool(config.get("pointInTimeRecoveryEnabled")),
            "database_version": found.get("databaseVersion"),
            "region": found.get("region"),
        }

    def unfinished(self) -> dict[str, Any] | None:
        """The operation the instance is still running, if any: it runs one at a time, so this is
        either one a dead try started (to be waited for again, not asked for twice) or another's."""
        answer = self._api().operations().list(project=self.project, instance=self.name).execute()
        return next((o for o in answer.get("items", []) if o.get("status") != "DONE"), None)

    def start_export(self, database: str, uri: str) -> str:
        """An export of ``database`` to ``uri``; its operation (InstanceBusy while another runs)."""
        instances = self._api().instances()
        return _busy(instances.export(project=self.project, instance=self.name, body=export_body(database, uri)))[
            "name"
        ]

    def start_import(self, database: str, uri: str) -> str:
        instances = self._api().instances()
        return _busy(instances.import_(project=self.project, instance=self.name, body=import_body(database, uri)))[
            "name"
        ]

    def operation(self, name: str) -> dict[str, Any]:
        return self._api().operations().get(project=self.project, operation=name).execute()

    def create_scratch(self, name: str) -> None:
        """A fresh database for a proof (one a crashed try left is dropped first); InstanceBusy while
        another operation runs."""
        self.drop_scratch(name)
        databases = self._api().databases()
        self.done(_busy(databases.insert(project=self.project, instance=self.name, body={"name": name}))["name"])

    def drop_scratch(self, name: str) -> None:
        """The scratch database gone (InstanceBusy while another operation runs)."""
        from googleapiclient.errors import HttpError

        if not _SCRATCH_RE.fullmatch(name):
            raise BackupError(f"{name!r} is not a safe scratch database name")
        databases = self._api().databases()
        try:
            databases.get(project=self.project, instance=self.name, database=name).execute()
        except HttpError as exc:
            if exc.resp.status == 404:
                return
            raise
        self.done(_busy(databases.delete(project=self.project, instance=self.name, database=name))["name"])

    def done(self, name: str) -> dict[str, Any]:
        """The operation waited for here (a short one, or a restore in a drill's recovery); raises with
        Cloud SQL's errors."""
        import time

        while (operation := self.operation(name)).get("status") != "DONE":
            time.sleep(self.hook.poll_interval)
        if errors := operation_errors(operation):
            raise BackupError(f"{self.describe()}: {operation.get('operationType')} failed: {'; '.join(errors)}")
        return operation

    def import_now(self, database: str, uri: str) -> dict[str, Any]:
        """``uri`` imported into ``database``, waited for here (the import a dead try started, if it runs)."""
        running = self.unfinished()
        if running and running.get("operationType") == "IMPORT" and running["importContext"]["uri"] == uri:
            return self.done(running["name"])
        return self.done(self.start_import(database, uri))
