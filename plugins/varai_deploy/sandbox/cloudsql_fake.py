"""A Cloud SQL Admin API stand-in (``sqladmin`` v1beta4): one PostgreSQL instance, the sandbox's own cluster.

``python -m varai_deploy.sandbox.cloudsql_fake --home H --host 127.0.0.1 --port 18071``

Production backs its databases up with Cloud SQL exports through the Google provider's ``CloudSQLHook``
(``varai_deploy.hooks.cloud_sql``). Cloud SQL cannot run here, so this server plays the part of its API that a
backup, its verification and a restore need, for real: the instance's databases are the sandbox PostgreSQL's,
an export is a real ``pg_dump`` written to the sandbox's GCS (the storage emulator), an import a real ``psql``
load. The instance, the cluster's address and password, the PostgreSQL programs and the storage emulator's URL
come from ``<home>/cloudsql/config.json`` (0600), which the component's ``prepare`` writes (``cloudsql.py``).

It serves, under ``/sql/v1beta4/projects/<project>/``:

- ``sql.instances.get``: the one instance (RUNNABLE, backups and point-in-time recovery on);
- ``sql.databases.list``, ``.get``, ``.insert``, ``.delete``: the cluster's databases (not the templates);
  insert and delete run at once and answer an Operation already DONE;
- ``sql.instances.export``: ``fileType`` SQL (the default), ``uri`` ``gs://bucket/object`` (gzip-compressed
  when it ends in ``.gz``, as Cloud SQL does), exactly one of ``databases``; ``sqlExportOptions`` ``schemaOnly``,
  ``tables`` and ``postgresExportOptions`` ``clean``/``ifExists``. A plain-SQL ``pg_dump --no-owner --no-acl``;
- ``sql.instances.import``: ``fileType`` SQL, ``uri``, ``database``: ``psql`` with ON_ERROR_STOP (a file
  ending in ``.gz`` is decompressed first);
- ``sql.operations.get``, ``sql.operations.list`` (``instance``, ``maxResults``, ``pageToken``; newest first);
- ``sql.backupRuns.insert``, ``.list``, ``.get``: an on-demand backup, a ``pg_dump`` of each of the instance's
  databases kept under the home.

Export, import and backup runs are asynchronous: they answer an Operation (PENDING), which goes RUNNING and then
DONE, with ``error.errors[{code, message}]`` when it failed (a database that does not exist, a missing object,
SQL that PostgreSQL refuses: ``ERROR_RDBMS`` or ``ERROR_STORAGE``), as Cloud SQL reports them. Cloud SQL runs one
administrative operation per instance at a time: another one meanwhile gets 409 ``operationInProgress``.

The contract: every request is checked against the API's discovery document (``varai_deploy.google_contract``)
before anything happens, and answered 400 INVALID_ARGUMENT naming each problem; a path the API does not have 404;
a method of the API this server does not implement 501; a request it understands but does not support (a CSV
export) 400 FAILED_PRECONDITION saying so. Errors are Google's JSON, ``{"error": {"code", "message", "status",
"errors": [{"message", "domain", "reason"}], "details"}}``. Every answer is checked too: one that breaks the
contract is a bug here and goes out as 500 naming the problems (and to stderr), never as a 200.

A Bearer token is accepted and not checked; none is needed (the sandbox's connection is anonymous).

State, under ``<home>/cloudsql/``: ``operations/<name>.json`` and ``backupRuns/<id>.json``, rewritten atomically
on every change and read back on start (a restarted stand-in still answers for old operations; one that was
running when it stopped ends DONE with an error), and the backups' dumps in ``backups/<id>/<database>.sql.gz``.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from varai_deploy import google_contract
from varai_deploy.google_contract import Contract, Match, Problem
from varai_deploy.sandbox.serving import QuietHandler, bind_or_explain, serve_until_signalled
from varai_deploy.sandbox.state import read_json, write_text_atomic

NAME = "cloudsql"
API, VERSION = "sqladmin", "v1beta4"
IN_PROGRESS = ("PENDING", "RUNNING")
GS_URI = re.compile(r"gs://([a-z0-9][-_.a-z0-9]*[a-z0-9])/(.+)")
#: What the stand-in does of an export/import context (a nested dict: the sub-options it does): the rest, when
#: given a value, is refused as unsupported rather than silently ignored.
EXPORT_OPTIONS = {
    "kind": None,
    "fileType": None,
    "uri": None,
    "databases": None,
    "offload": None,
    "sqlExportOptions": {
        "schemaOnly": None,
        "tables": None,
        "postgresExportOptions": {"clean": None, "ifExists": None},
    },
}
IMPORT_OPTIONS = {"kind": None, "fileType": None, "uri": None, "database": None}
DEFAULT_PAGE_SIZE = 100
PROGRAM_TIMEOUT = 900.0
#: A method's path parameters (and its query, one value each), request body and answer.
Params = dict[str, str]
Json = dict[str, Any]
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


def state_dir(home: Path) -> Path:
    return Path(home) / NAME


def config_file(home: Path) -> Path:
    return state_dir(home) / "config.json"


def backups_dir(home: Path) -> Path:
    return state_dir(home) / "backups"


def stamp() -> str:
    """Now, in RFC 3339 in UTC with milliseconds, as Cloud SQL writes times (``2012-11-15T16:19:00.094Z``)."""
    moment = datetime.now(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


class ApiError(Exception):
    """An error answer in Google's JSON shape."""

    def __init__(
        self, code: int, message: str, reason: str, problems: Iterable[Problem] = (), status: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.problems = list(problems)
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")

    def payload(self) -> Json:
        messages = [str(p) for p in self.problems] or [self.message]
        error: Json = {
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "errors": [{"message": m, "domain": "global", "reason": self.reason} for m in messages],
        }
        if self.problems:
            violations = [{"field": p.field, "description": p.message} for p in self.problems]
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}]
        return {"error": error}


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, f"Invalid request: {field}: {message}", "invalid", [Problem(field, message)])


def unsupported(what: str) -> ApiError:
    return ApiError(
        400, f"the sandbox's Cloud SQL stand-in does not support {what}", "unsupported", (), "FAILED_PRECONDITION"
    )


class OperationFailed(Exception):
    """Ends an operation DONE with this error (what Cloud SQL puts in ``error.errors``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Config:
    project: str
    instance: str
    region: str
    database_version: str
    #: The sandbox PostgreSQL: address and its superuser.
    host: str
    port: int
    user: str
    password: str
    #: Where pg_dump and psql are (the server's own major version).
    bindir: str
    storage_url: str

    @classmethod
    def read(cls, home: Path) -> Config:
        return cls(**json.loads(config_file(home).read_text(encoding="utf-8")))


# -- the instance's PostgreSQL and the storage it exports to ---------------------------------------------
class Cluster:
    """The instance's databases: the sandbox PostgreSQL, reached over TCP as its superuser."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def _connect(self):
        import psycopg2

        c = self.config
        conn = psycopg2.connect(
            host=c.host,
            port=c.port,
            user=c.user,
            password=c.password,
            dbname="postgres",
            connect_timeout=10,
            application_name="cloudsql-stand-in",
        )
        conn.autocommit = True  # CREATE/DROP DATABASE refuse to run in a transaction
        return conn

    def databases(self) -> list[tuple[str, str, str]]:
        """``(name, charset, collation)`` of every database a client can use, by name."""
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT datname, pg_encoding_to_char(encoding), datcollate FROM pg_database "
                    "WHERE NOT datistemplate AND datallowconn ORDER BY datname"
                )
                return list(cur.fetchall())
        finally:
            conn.close()

    def execute(self, statement: Any) -> None:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def dump(self, database: str, options: list[str]) -> bytes:
        return self._run("pg_dump", database, ["--format=plain", "--no-owner", "--no-acl", *options])

    def load(self, database: str, sql: bytes) -> None:
        self._run("psql", database, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"], stdin=sql)

    def _run(self, program: str, database: str, args: list[str], stdin: bytes | None = None) -> bytes:
        """A PostgreSQL program on ``database``; the connection in its environment (never parsed as a
        connection string, whatever the database's name)."""
        c = self.config
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PGHOST": c.host,
            "PGPORT": str(c.port),
            "PGUSER": c.user,
            "PGPASSWORD": c.password,
            "PGDATABASE": database,
            "PGCONNECT_TIMEOUT": "10",
        }
        argv = [str(Path(c.bindir) / program), *args]
        proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=PROGRAM_TIMEOUT, check=False, env=env)
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()[-5:]
            raise OperationFailed("ERROR_RDBMS", f"{program} exit status {proc.returncode}: {' | '.join(tail)}")
        return proc.stdout


class Storage:
    """The storage emulator's GCS JSON and upload APIs, as Cloud SQL's service account uses GCS."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def put(self, bucket: str, name: str, data: bytes, content_type: str) -> None:
        path = f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name, safe='')}"
        self._request("POST", path, f"gs://{bucket}/{name}", data, {"Content-Type": content_type})

    def get(self, bucket: str, name: str) -> bytes:
        return self._request(
            "GET", f"/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media", f"gs://{bucket}/{name}"
        )

    def _request(
        self, method: str, path: str, uri: str, body: bytes | None = None, headers: dict | None = None
    ) -> bytes:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            answer = conn.getresponse()
            data = answer.read()
        except OSError as exc:
            raise OperationFailed("ERROR_STORAGE", f"Cloud Storage did not answer for {uri}: {exc}") from None
        finally:
            conn.close()
        if answer.status == 404:
            raise OperationFailed("ERROR_STORAGE", f"{uri} does not exist (no such bucket or object)")
        if answer.status >= 300:
            raise OperationFailed("ERROR_STORAGE", f"Cloud Storage answered HTTP {answer.status} for {uri}")
        return data


def gcs_uri(uri: Any, field: str) -> tuple[str, str]:
    found = GS_URI.fullmatch(uri) if isinstance(uri, str) else None
    if found is None:
        raise invalid(field, f"must be a Cloud Storage URI, gs://bucket/object, got {uri!r}")
    return found.group(1), found.group(2)


def refuse_unsupported(given: Json, supported: Json, where: str) -> None:
    """FAILED_PRECONDITION for an option the stand-in does not implement that is given a value."""
    for key, value in given.items():
        if key not in supported:
            if value not in (None, False, "", [], {}):
                raise unsupported(f"{where}.{key}")
        elif isinstance(supported[key], dict) and isinstance(value, dict):
            refuse_unsupported(value, supported[key], f"{where}.{key}")


def dump_options(context: Json) -> list[str]:
    """pg_dump's flags for an export context's ``sqlExportOptions``."""
    sql_options = context.get("sqlExportOptions") or {}
    postgres = sql_options.get("postgresExportOptions") or {}
    flags = ["--schema-only"] if sql_options.get("schemaOnly") else []
    flags += [f"--table={table}" for table in sql_options.get("tables") or []]
    flags += ["--clean"] if postgres.get("clean") else []
    flags += ["--if-exists"] if postgres.get("ifExists") else []
    return flags


class Store:
    """JSON records by key, in memory and one file each under ``directory`` (rewritten atomically)."""

    def __init__(self, directory: Path, key: str) -> None:
        self.directory = directory
        self.key = key
        directory.mkdir(parents=True, exist_ok=True)
        records = (read_json(path) for path in sorted(directory.glob("*.json")))
        self.items: dict[str, Json] = {r[key]: r for r in records if isinstance(r, dict) and key in r}

    def put(self, record: Json) -> Json:
        self.items[record[self.key]] = record
        write_text_atomic(self.directory / f"{record[self.key]}.json", json.dumps(record, indent=2) + "\n")
        return copy.deepcopy(record)

    def get(self, key: str) -> Json | None:
        found = self.items.get(key)
        return copy.deepcopy(found) if found is not None else None

    def all(self) -> list[Json]:
        return copy.deepcopy(list(self.items.values()))


# -- the API ------------------------------------------------------------------------------------------
class SqlAdmin:
    """The methods the stand-in serves, on one instance; thread-safe."""

    def __init__(self, config: Config, home: Path, url: str) -> None:
        self.config = config
        self.home = Path(home)
        self.url = url
        self.cluster = Cluster(config)
        self.storage = Storage(config.storage_url)
        self.lock = threading.Lock()
        #: A synchronous operation (databases.insert/delete) is under way: the instance is busy.
        self._busy = False
        self.operations = Store(state_dir(home) / "operations", "name")
        self.backup_runs = Store(state_dir(home) / "backupRuns", "id")
        self._end_interrupted()
        self.methods: dict[str, Callable[[Params, Params, Json], Json]] = {
            "sql.instances.get": self.get_instance,
            "sql.databases.list": self.list_databases,
            "sql.databases.get": self.get_database,
            "sql.databases.insert": self.insert_database,
            "sql.databases.delete": self.delete_database,
            "sql.instances.export": self.export,
            "sql.instances.import": self.import_,
            "sql.operations.get": self.get_operation,
            "sql.operations.list": self.list_operations,
            "sql.backupRuns.insert": self.insert_backup_run,
            "sql.backupRuns.list": self.list_backup_runs,
            "sql.backupRuns.get": self.get_backup_run,
        }

    def call(self, match: Match, query: dict[str, list[str]], body: Any) -> Json:
        method = self.methods.get(match.method_id)
        if method is None:
            served = ", ".join(sorted(self.methods))
            message = f"{match.method_id} is not served by the sandbox's Cloud SQL stand-in (it serves {served})"
            raise ApiError(501, message, "notImplemented")
        self._project(match.params)
        return method(match.params, {k: v[-1] for k, v in query.items()}, body or {})

    # -- instances and databases ------------------------------------------------------------------
    def get_instance(self, params: Params, query: Params, body: Json) -> Json:
        self._instance(params)
        c = self.config
        return {
            "kind": "sql#instance",
            "name": c.instance,
            "project": c.project,
            "region": c.region,
            "gceZone": f"{c.region}-a",
            "databaseVersion": c.database_version,
            "state": "RUNNABLE",
            "backendType": "SECOND_GEN",
            "instanceType": "CLOUD_SQL_INSTANCE",
            "connectionName": f"{c.project}:{c.region}:{c.instance}",
            "ipAddresses": [{"type": "PRIMARY", "ipAddress": c.host}],
            "selfLink": self._instance_link(),
            "settings": {
                "kind": "sql#settings",
                "tier": "db-custom-1-3840",
                "edition": "ENTERPRISE",
                "availabilityType": "ZONAL",
                "activationPolicy": "ALWAYS",
                "pricingPlan": "PER_USE",
                "dataDiskType": "PD_SSD",
                "dataDiskSizeGb": "10",
                "settingsVersion": "1",
                "backupConfiguration": {
                    "kind": "sql#backupConfiguration",
                    "enabled": True,
                    "pointInTimeRecoveryEnabled": True,
                    "startTime": "02:00",
                    "transactionLogRetentionDays": 7,
                    "backupRetentionSettings": {"retentionUnit": "COUNT", "retainedBackups": 7},
                },
            },
        }

    def list_databases(self, params: Params, query: Params, body: Json) -> Json:
        self._instance(params)
        items = [self._database(*found) for found in self._query_databases()]
        return {"kind": "sql#databasesList", **({"items": items} if items else {})}

    def get_database(self, params: Params, query: Params, body: Json) -> Json:
        self._instance(params)
        return self._database(*self._find_database(params["database"]))

    def insert_database(self, params: Params, query: Params, body: Json) -> Json:
        from psycopg2 import sql

        self._instance(params)
        name = body.get("name")
        if not name:
            raise invalid("name", "a new database needs a name")
        statement = sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(self.config.user)
        )
        if body.get("charset"):
            statement += sql.SQL(" ENCODING {}").format(sql.Literal(body["charset"]))
        if body.get("collation"):
            statement += sql.SQL(" LC_COLLATE {} TEMPLATE template0").format(sql.Literal(body["collation"]))
        return self._at_once("CREATE_DATABASE", f"create database {name}", lambda: self.cluster.execute(statement))

    def delete_database(self, params: Params, query: Params, body: Json) -> Json:
        from psycopg2 import sql

        self._instance(params)
        name = self._find_database(params["database"])[0]
        statement = sql.SQL("DROP DATABASE {}").format(sql.Identifier(name))
        return self._at_once("DELETE_DATABASE", f"delete database {name}", lambda: self.cluster.execute(statement))

    def _query_databases(self) -> list[tuple[str, str, str]]:
        import psycopg2

        try:
            return self.cluster.databases()
        except psycopg2.Error as exc:
            raise ApiError(
                503, f"the instance's PostgreSQL did not answer: {str(exc).strip()}", "backendError"
            ) from None

    def _find_database(self, name: str) -> tuple[str, str, str]:
        for found in self._query_databases():
            if found[0] == name:
                return found
        raise ApiError(404, f"The database {name} does not exist in instance {self.config.instance}.", "notFound")

    def _database(self, name: str, charset: str, collation: str) -> Json:
        c = self.config
        return {
            "kind": "sql#database",
            "name": name,
            "charset": charset,
            "collation": collation,
            "instance": c.instance,
            "project": c.project,
            "selfLink": f"{self._instance_link()}/databases/{quote(name, safe='')}",
        }

    # -- export, import, backups --------------------------------------------------------------------
    def export(self, params: Params, query: Params, body: Json) -> Json:
        self._instance(params)
        context = dict(body.get("exportContext") or {})
        bucket, name = gcs_uri(context.get("uri"), "exportContext.uri")
        if context.get("fileType", "SQL") != "SQL":
            raise unsupported(f"exportContext.fileType {context['fileType']} (only SQL)")
        databases = context.get("databases") or []
        if len(databases) != 1:
            raise invalid("exportContext.databases", "a PostgreSQL SQL export names exactly one database")
        refuse_unsupported(context, EXPORT_OPTIONS, "exportContext")
        options = dump_options(context)

        def work() -> None:
            dump = self.cluster.dump(databases[0], options)
            compressed = name.endswith(".gz")
            data = gzip.compress(dump) if compressed else dump
            self.storage.put(bucket, name, data, "application/gzip" if compressed else "application/sql")

        context["kind"] = "sql#exportContext"
        return self._in_background("EXPORT", work, exportContext=context)

    def import_(self, params: Params, query: Params, body: Json) -> Json:
        self._instance(params)
        context = dict(body.get("importContext") or {})
        bucket, name = gcs_uri(context.get("uri"), "importContext.uri")
        if context.get("fileType", "SQL") != "SQL":
            raise unsupported(f"importContext.fileType {context['fileType']} (only SQL)")
        database = context.get("database")
        if not database:
            raise invalid("importContext.database", "a PostgreSQL SQL import names the database to load into")
        refuse_unsupported(context, IMPORT_OPTIONS, "importContext")

        def work() -> None:
            data = self.storage.get(bucket, name)
            if name.endswith(".gz"):
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError) as exc:
                    raise OperationFailed("ERROR_RDBMS", f"gs://{bucket}/{name} is not gzip: {exc}") from None
            self.cluster.load(database, data)

        context["kind"] = "sql#importContext"
        return self._in_background("IMPORT", work, importContext=context)

    def insert_backup_run(self, params: Params, query: Params, body: Json) -> Json:
        self._instance(params)
        now = stamp()
        with self.lock:
            run_id = str(max([int(time.time() * 1000), *(int(k) + 1 for k in self.backup_runs.items)]))
            run = {
                "kind": "sql#backupRun",
                "id": run_id,
                "instance": self.config.instance,
                "status": "ENQUEUED",
                "type": "ON_DEMAND",
                "backupKind": "SNAPSHOT",
                "databaseVersion": self.config.database_version,
                "enqueuedTime": now,
                "windowStartTime": now,
                "selfLink": f"{self._instance_link()}/backupRuns/{run_id}",
                **({"description": body["description"]} if body.get("description") else {}),
            }
            self._refuse_while_busy()
            operation = self._operation(
                "BACKUP_VOLUME", backupContext={"kind": "sql#backupContext", "backupId": run_id}
            )
            self.backup_runs.put(run)
        self._start(operation["name"], lambda: self._back_up(run_id), lambda error: self._end_run(run_id, error))
        return operation

    def _back_up(self, run_id: str) -> None:
        with self.lock:
            self.backup_runs.put({**self.backup_runs.items[run_id], "status": "RUNNING", "startTime": stamp()})
        target = backups_dir(self.home) / run_id
        target.mkdir(parents=True, exist_ok=True)
        for name, _, _ in self._databases_for_backup():
            write_bytes_private(target / f"{name}.sql.gz", gzip.compress(self.cluster.dump(name, [])))

    def _databases_for_backup(self) -> list[tuple[str, str, str]]:
        import psycopg2

        try:
            return self.cluster.databases()
        except psycopg2.Error as exc:
            raise OperationFailed("ERROR_RDBMS", str(exc).strip()) from None

    def _end_run(self, run_id: str, error: Json | None) -> None:
        with self.lock:
            run = {**self.backup_runs.items[run_id], "endTime": stamp()}
            run["status"] = "FAILED" if error else "SUCCESSFUL"
            if error:
                run["error"] = error
            self.backup_runs.put(run)

    def list_backup_runs(self, params: Params, query: Params, body: Json) -> Json:
        self._instance(params)
        with self.lock:
            runs = sorted(self.backup_runs.all(), key=lambda r: int(r["id"]), reverse=True)
        return page(runs, query, "sql#backupRunsList")

    def get_backup_run(self, params: Params, query: Params, body: Json) -> Json:
        self._instance(params)
        with self.lock:
            run = self.backup_runs.get(str(int(params["id"])))
        if run is None:
            raise ApiError(404, f"The backup run {params['id']} does not exist.", "backupRunDoesNotExist")
        return run

    # -- operations ----------------------------------------------------------------------------------
    def get_operation(self, params: Params, query: Params, body: Json) -> Json:
        with self.lock:
            operation = self.operations.get(params["operation"])
        if operation is None:
            raise ApiError(
                404, f"The Cloud SQL operation {params['operation']} does not exist.", "operationDoesNotExist"
            )
        return operation

    def list_operations(self, params: Params, query: Params, body: Json) -> Json:
        instance = query.get("instance")
        if instance is not None:
            self._instance({"instance": instance})
        with self.lock:
            found = [op for op in self.operations.all() if instance is None or op["targetId"] == instance]
        found.sort(key=lambda op: op["insertTime"], reverse=True)
        return page(found, query, "sql#operationsList")

    def _operation(self, kind: str, **fields: Any) -> Json:
        """A new operation on the instance, PENDING unless ``fields`` say otherwise (caller holds the lock)."""
        name = str(uuid.uuid4())
        return self.operations.put(
            {
                "kind": "sql#operation",
                "name": name,
                "operationType": kind,
                "status": "PENDING",
                "insertTime": stamp(),
                "targetId": self.config.instance,
                "targetProject": self.config.project,
                "targetLink": self._instance_link(),
                "selfLink": f"{self.url}/sql/{VERSION}/projects/{self.config.project}/operations/{name}",
                **fields,
            }
        )

    def _refuse_while_busy(self) -> None:
        running = [op for op in self.operations.items.values() if op["status"] in IN_PROGRESS]
        if self._busy or running:
            which = f" ({running[0]['operationType']} {running[0]['name']})" if running else ""
            message = f"Operation failed because another operation was already in progress{which}."
            raise ApiError(409, message, "operationInProgress")

    def _in_background(self, kind: str, work: Callable[[], None], **context: Any) -> Json:
        with self.lock:
            self._refuse_while_busy()
            operation = self._operation(kind, **context)
        self._start(operation["name"], work)
        return operation

    def _start(self, name: str, work: Callable[[], None], after: Callable[[Json | None], None] | None = None) -> None:
        """Run ``work`` in a thread: the operation RUNNING, then DONE (with the error it raised, if any)."""

        def run() -> None:
            self._update(name, status="RUNNING", startTime=stamp())
            error = None
            try:
                work()
            except OperationFailed as exc:
                error = {"kind": "sql#operationError", "code": exc.code, "message": exc.message}
            except Exception as exc:  # a bug here: on the operation and in the log, never a silent hang
                traceback.print_exc()
                error = {"kind": "sql#operationError", "code": "INTERNAL_ERROR", "message": repr(exc)}
            if after is not None:
                after(error)
            self._finish(name, error)

        threading.Thread(target=run, name=f"operation-{name}", daemon=True).start()

    def _at_once(self, kind: str, what: str, work: Callable[[], None]) -> Json:
        """A quick operation done before answering: the Operation comes back DONE; PostgreSQL's refusal is a 400
        (as Cloud SQL's is), and no operation is recorded for it."""
        import psycopg2

        with self.lock:
            self._refuse_while_busy()
            self._busy = True
        try:
            started = stamp()
            try:
                work()
            except psycopg2.Error as exc:
                raise ApiError(
                    400, f"Invalid request: failed to {what}. Detail: {str(exc).strip()}", "invalid"
                ) from None
            with self.lock:
                return self._operation(kind, status="DONE", insertTime=started, startTime=started, endTime=stamp())
        finally:
            with self.lock:
                self._busy = False

    def _update(self, name: str, **fields: Any) -> None:
        with self.lock:
            self.operations.put({**self.operations.items[name], **fields})

    def _finish(self, name: str, error: Json | None) -> None:
        fields: Json = {"status": "DONE", "endTime": stamp()}
        if error is not None:
            fields["error"] = {"kind": "sql#operationErrors", "errors": [error]}
        self._update(name, **fields)

    def _end_interrupted(self) -> None:
        """What was under way when the stand-in stopped ended there: DONE with an error, FAILED."""
        error = {
            "kind": "sql#operationError",
            "code": "INTERNAL_ERROR",
            "message": "the Cloud SQL stand-in stopped while this ran; run it again",
        }
        for operation in self.operations.all():
            if operation["status"] in IN_PROGRESS:
                self._finish(operation["name"], error)
        for run in self.backup_runs.all():
            if run["status"] in ("ENQUEUED", "RUNNING"):
                self.backup_runs.put({**run, "status": "FAILED", "endTime": stamp(), "error": error})

    # -- names ----------------------------------------------------------------------------------------
    def _project(self, params: Params) -> None:
        if params.get("project", self.config.project) != self.config.project:
            raise ApiError(403, "The client is not authorized to make this request.", "notAuthorized")

    def _instance(self, params: Params) -> None:
        if params["instance"] != self.config.instance:
            message = (
                f"The Cloud SQL instance {params['instance']} does not exist (this project has {self.config.instance})."
            )
            raise ApiError(404, message, "instanceDoesNotExist")

    def _instance_link(self) -> str:
        return f"{self.url}/sql/{VERSION}/projects/{self.config.project}/instances/{self.config.instance}"


def page(items: list[Json], query: Params, kind: str) -> Json:
    """One page of a list answer: ``items`` (left out when empty, as Google leaves empty lists out) and
    ``nextPageToken`` while more follow."""
    token = query.get("pageToken") or "0"
    if not token.isdigit():
        raise invalid("pageToken", f"{token!r} is not a page token this API gave")
    start, size = int(token), int(query.get("maxResults") or 0) or DEFAULT_PAGE_SIZE
    answer: Json = {"kind": kind}
    if items[start : start + size]:
        answer["items"] = items[start : start + size]
    if start + size < len(items):
        answer["nextPageToken"] = str(start + size)
    return answer


def write_bytes_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


# -- HTTP ---------------------------------------------------------------------------------------------
def parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise ApiError(400, f"Invalid JSON payload received. {exc}", "parseError") from None


def make_handler(api: SqlAdmin, contract: Contract) -> type[QuietHandler]:
    class Handler(QuietHandler):
        server_version = "cloudsql-sandbox"

        def do_GET(self) -> None:
            target = urlsplit(self.path)
            raw = self.read_body()
            try:
                status, payload = 200, self._answer(target.path, target.query, raw)
            except ApiError as exc:
                status, payload = exc.code, exc.payload()
            except Exception as exc:  # a bug here: loud, in Google's shape
                traceback.print_exc()
                status, payload = (
                    500,
                    ApiError(500, f"the Cloud SQL stand-in failed: {exc!r}", "backendError").payload(),
                )
            self.send_json(status, payload, [])

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        def _answer(self, path: str, raw_query: str, raw: bytes) -> Json:
            authorization = self.headers.get("Authorization")
            if authorization is not None and not authorization.startswith("Bearer "):
                raise ApiError(401, "Request had invalid authentication credentials.", "authError")
            match = contract.match(self.command, path)
            if match is None:
                raise ApiError(404, f"{self.command} {path} is not a method of {contract.name}", "notFound")
            query = parse_qs(raw_query, keep_blank_values=True)
            body = parse_body(raw)
            problems = contract.check_request(match, query, body)
            if problems:
                message = "Invalid request: " + "; ".join(str(p) for p in problems)
                raise ApiError(400, message, "invalid", problems)
            answer = api.call(match, query, body)
            broken = contract.check_response(match, answer)
            if broken:
                message = f"the Cloud SQL stand-in broke the {contract.name} contract answering {match.method_id}"
                print(f"{NAME}: {message}: {'; '.join(map(str, broken))}", file=sys.stderr, flush=True)
                raise ApiError(500, message, "backendError", broken, "INTERNAL")
            return answer

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.cloudsql_fake")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    try:
        config = Config.read(args.home)
    except (OSError, ValueError, TypeError) as exc:
        print(f"{NAME}: cannot read {config_file(args.home)} ({exc}); the sandbox's prepare writes it", file=sys.stderr)
        return 2
    api = SqlAdmin(config, args.home, f"http://{args.host}:{args.port}")
    server = bind_or_explain(args.host, args.port, make_handler(api, google_contract.load(API, VERSION)), NAME)
    if server is None:
        return 2
    where = f"http://{args.host}:{args.port}/sql/{VERSION}/projects/{config.project}/instances/{config.instance}"
    print(f"{NAME}: Cloud SQL Admin API stand-in on {where}; state in {state_dir(args.home)}", flush=True)
    return serve_until_signalled(server, NAME)


if __name__ == "__main__":
    sys.exit(main())
