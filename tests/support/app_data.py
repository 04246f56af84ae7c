"""The integration sandbox's application data: every service serving, so the steady traffic writes rows."""

from __future__ import annotations

import json
import time

import psycopg2

from tests.support.sandbox import deploy
from varai_deploy.sandbox.components import read_connections_env
from varai_deploy.services import SERVICE_NAMES

APP_DB = "AIRFLOW_CONN_VARAI_APP_DB"


def sql(sandbox, statement: str, conn_env: str = APP_DB):
    """One statement on its own autocommit session (``conn_env``: the connection's variable name)."""
    conn = json.loads(read_connections_env(sandbox.settings)[conn_env])
    db = psycopg2.connect(
        host=conn["host"], port=conn["port"], user=conn["login"], password=conn["password"], dbname=conn["schema"]
    )
    db.autocommit = True
    try:
        with db.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else None
    finally:
        db.close()


def rows(sandbox, table: str = "analytics_events") -> int:
    return sql(sandbox, f"SELECT count(*) FROM {table}")[0][0]


def keep_writing(sandbox, version: str = "v0.9.0", timeout: float = 30) -> None:
    """Every service serving (what an earlier test left, or ``version`` started here) and writing."""
    services = sandbox.status()["services"]
    for service in SERVICE_NAMES:
        if not (services.get(service) or {}).get("live"):
            deploy(sandbox, service, version)
    before = rows(sandbox)
    deadline = time.time() + timeout
    while rows(sandbox) <= before:
        assert time.time() < deadline, "the services write nothing"
        time.sleep(0.5)
