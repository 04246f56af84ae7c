"""The sandbox's Cloud SQL stand-in for tests, with what it works on (the storage emulator and the sandbox
PostgreSQL), on ports the kernel picks (clear of the sandbox blocks in 18000-19999 other runs use), started
like ``sandbox up`` starts them and always stopped, with a check that nothing is left running
(:mod:`tests.support.stand_ins`)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support import stand_ins
from tests.support.statuspage_stack import free_port
from varai_deploy import google_contract
from varai_deploy.sandbox import processes
from varai_deploy.sandbox.cloudsql import COMPONENT, CONN_ID, INSTANCE
from varai_deploy.sandbox.postgres import COMPONENT as POSTGRES
from varai_deploy.sandbox.postgres import CONN_ID as LEDGER_CONN_ID
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.storage import BACKUP_BUCKET, PROJECT
from varai_deploy.sandbox.storage import COMPONENT as STORAGE

ATTEMPTS = 5
#: Registry offsets: storage 0, postgres 6, cloudsql 11.
SPAN = COMPONENT.offset + 1
CONTRACT = google_contract.load("sqladmin", "v1beta4")


@dataclass(frozen=True)
class CloudSqlStack:
    settings: SandboxSettings
    #: The running processes by component (a test that restarts one records the new pid here).
    pids: dict[str, int]

    @property
    def url(self) -> str:
        return self.settings.component_url(COMPONENT.name)

    @property
    def connection(self) -> dict[str, Any]:
        return COMPONENT.connections(self.settings, self.settings.component_port(COMPONENT.name))[CONN_ID]

    def api(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        """A raw request under ``/sql/v1beta4/projects/<project>`` (a JSON body unless ``data=`` is given)."""
        if body is not None and "data" not in kwargs:
            kwargs["json"] = body
        return requests.request(method, f"{self.url}/sql/v1beta4/projects/{PROJECT}{path}", timeout=30, **kwargs)

    def instance_api(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.api(method, f"/instances/{INSTANCE}{path}", body, **kwargs)

    def wait(self, operation: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """The operation once DONE, as ``operations.get`` answers it (checked against the contract)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.api("GET", f"/operations/{operation['name']}")
            assert answer.status_code == 200, answer.text
            found = answer.json()
            assert not CONTRACT.check_response("sql.operations.get", found)
            if found["status"] == "DONE":
                return found
            assert time.monotonic() < deadline, f"operation {operation['name']} not DONE after {timeout}s: {found}"
            time.sleep(0.05)

    # -- the PostgreSQL and the storage underneath ------------------------------------------------
    def connect(self, dbname: str):
        import psycopg2

        conn = POSTGRES.connections(self.settings, self.settings.component_port(POSTGRES.name))[LEDGER_CONN_ID]
        db = psycopg2.connect(
            host=conn["host"], port=conn["port"], user=conn["login"], password=conn["password"], dbname=dbname
        )
        db.autocommit = True
        return db

    def sql(self, dbname: str, statement: str, *args: Any) -> list[tuple]:
        db = self.connect(dbname)
        try:
            with db.cursor() as cur:
                cur.execute(statement, args or None)
                return cur.fetchall() if cur.description else []
        finally:
            db.close()

    def new_database(self, rows: int = 0) -> str:
        """A database of the test's own, with ``rows`` rows in table ``items`` when asked."""
        name = f"db_{uuid.uuid4().hex[:10]}"
        self.sql("postgres", f"CREATE DATABASE {name}")
        if rows:
            self.sql(name, "CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL, price numeric(8, 2))")
            self.sql(name, "INSERT INTO items SELECT i, 'item ' || i, i * 1.25 FROM generate_series(1, %s) AS i", rows)
        return name

    def databases(self) -> set[str]:
        return {name for (name,) in self.sql("postgres", "SELECT datname FROM pg_database")}

    def content(self, dbname: str) -> tuple[int, str]:
        """Rows of ``items`` and a digest of all of them, in order."""
        (found,) = self.sql(dbname, "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM items AS t")
        return found

    def object(self, name: str, bucket: str = BACKUP_BUCKET) -> bytes | None:
        """An object's bytes in the storage emulator, None when it is not there."""
        storage = self.settings.component_url(STORAGE.name)
        url = f"{storage}/storage/v1/b/{bucket}/o/{requests.utils.quote(name, safe='')}"
        answer = requests.get(url, params={"alt": "media"}, timeout=10)
        return None if answer.status_code == 404 else answer.content

    def restart(self) -> None:
        """Stop the stand-in (SIGTERM) and start it again on its port."""
        processes.stop([self.pids[COMPONENT.name]])
        self.pids[COMPONENT.name] = stand_ins.start(self.settings, COMPONENT)

    def connection_env(self) -> str:
        """``AIRFLOW_CONN_VARAI_CLOUDSQL``'s value."""
        return json.dumps(self.connection)


@contextmanager
def cloudsql_stack(home: Path) -> Iterator[CloudSqlStack]:
    """Storage, PostgreSQL and the Cloud SQL stand-in running for ``home``; other ports when one is taken."""
    for _ in range(ATTEMPTS):
        base = free_port()
        if base + SPAN > 65536:
            continue
        entered = False
        try:
            with stand_ins.running(
                home, (STORAGE, POSTGRES, COMPONENT), range(base, base + SPAN), bases=(base,), own_port=True
            ) as started:
                entered = True
                yield CloudSqlStack(started.settings, started.pids)
            return
        except RuntimeError as exc:
            if entered or "no free ports" not in str(exc):
                raise
    raise RuntimeError(f"the Cloud SQL stand-in found no free ports in {ATTEMPTS} attempts")
