"""The services keep real data in the sandbox's PostgreSQL: one row per working request, none for health
checks, a 503 while their table or database is gone and writing again once it is back, without a restart."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest

from tests.support.sandbox import deploy, request, shopper, wait_for
from varai_deploy.sandbox import Sandbox, SandboxSettings, app_data, postgres, processes
from varai_deploy.sandbox.components import load
from varai_deploy.sandbox.credentials import secret
from varai_deploy.services import SERVICES

#: A JSON body each POST endpoint accepts.
BODIES = {"/face/analyze": {"image": "data:image/png;base64,iVBORw0KGgo="}, "/analytics/events": {"type": "click"}}


@pytest.fixture
def app_settings(settings: SandboxSettings) -> SandboxSettings:
    # PostgreSQL alone, on a free port at the end of the test's own block (base+54); no load generator, so
    # every row is the test's own; one process per live revision, so what the gateway answers is what the
    # one process whose pool, metrics and log these tests read did.
    return dataclasses.replace(
        settings,
        components=("postgres",),
        component_port_base=settings.gateway_port + 48,
        traffic_rps=0,
        instances=1,
    )


@pytest.fixture
def app_sandbox(app_settings: SandboxSettings) -> Iterator[Sandbox]:
    sb = Sandbox(app_settings)
    try:
        sb.up()
        yield sb
    finally:
        sb.down()
        left = processes.find_ours(app_settings.home)
        assert not left, f"processes left behind: {left}"


def work(url: str, service: str, settings=None) -> tuple[int, dict]:
    """One request to the service's working endpoint (its probe); through the gateway (``settings``
    given), with the shoppers' API key."""
    method, path = SERVICES[service].probe
    headers = shopper(settings) if settings is not None else None
    body = BODIES.get(path) if method == "POST" else None
    status, _, payload = request(url, path, method, body=body, headers=headers)
    return status, payload


def rows(settings: SandboxSettings, table: str) -> list[dict]:
    conn = app_data.connect(settings)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table} ORDER BY id")
            names = [c.name for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def execute(settings: SandboxSettings, statement: str) -> None:
    conn = app_data.connect(settings)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def metric(url: str, code: str, path_group: str) -> float:
    """``varai_http_requests_total`` of one code and endpoint group, as the service exposes it."""
    status, _, body = request(url, "/metrics")
    assert status == 200
    total = 0.0
    for line in body.decode().splitlines():
        if (m := re.fullmatch(r"varai_http_requests_total\{(.*)\} (\S+)", line)) and {
            f'code="{code}"',
            f'path_group="{path_group}"',
        } <= set(m.group(1).split(",")):
            total += float(m.group(2))
    return total


def test_each_working_request_is_a_row_with_its_version_and_time_health_checks_none(
    app_sandbox: Sandbox, app_settings: SandboxSettings
) -> None:
    s = app_settings
    for name in SERVICES:
        deploy(app_sandbox, name, "v1.0.0")
    candidate = deploy(app_sandbox, "ai-discovery", "v1.1.0", switch=False)
    assert app_data.counts(s) == dict.fromkeys(app_data.TABLES.values(), 0)
    assert app_data.newest(s) == dict.fromkeys(app_data.TABLES.values(), None)

    before = datetime.now(UTC) - timedelta(seconds=1)  # the server's clock is this machine's: a second of slack
    for name in SERVICES:
        assert work(s.gateway_url, name, s)[0] in (200, 202), name
    assert work(candidate["url"], "ai-discovery")[0] == 200
    after = datetime.now(UTC) + timedelta(seconds=1)

    counts = app_data.counts(s)
    assert counts == {**dict.fromkeys(app_data.TABLES.values(), 1), "discovery_searches": 2}  # the gateway: none
    searches = rows(s, "discovery_searches")
    assert [r["version"] for r in searches] == ["v1.0.0", "v1.1.0"]
    assert searches[0]["query"] == "round glasses" and searches[0]["result_count"] == 3
    for table in ("face_analyses", "recommendation_feedback", "analytics_events"):
        assert [r["version"] for r in rows(s, table)] == ["v1.0.0"], table
    assert rows(s, "recommendation_feedback")[0]["face_shape"] == "oval"
    assert rows(s, "analytics_events")[0]["payload"] == {"type": "click"}
    newest = app_data.newest(s)
    for table in app_data.TABLES.values():
        assert before <= newest[table] <= after, table
        assert all(before <= r["created_at"] <= after for r in rows(s, table)), table

    # Health checks, metrics scrapes and refused requests store nothing.
    for service in SERVICES.values():
        assert request(s.gateway_url, service.health_path)[0] == 200, service.name
    assert request(candidate["url"], "/metrics")[0] == 200
    assert request(s.gateway_url, "/recommendations?face_shape=triangle", headers=shopper(s))[0] == 400
    assert app_data.counts(s) == counts


def test_a_dropped_table_fails_the_service_with_503_until_it_is_restored_without_a_restart(
    app_sandbox: Sandbox, app_settings: SandboxSettings
) -> None:
    s = app_settings
    live = deploy(app_sandbox, "ai-discovery", "v1.0.0")
    deploy(app_sandbox, "recommendation", "v1.0.0")
    assert work(live["url"], "ai-discovery")[0] == 200
    execute(s, "DROP TABLE discovery_searches")

    for _ in range(3):
        status, payload = work(s.gateway_url, "ai-discovery", s)
        assert status == 503
        assert payload["error"].startswith("database unavailable: ") and "discovery_searches" in payload["error"]
    assert request(s.gateway_url, "/ai/health")[0] == 200
    assert work(s.gateway_url, "recommendation", s)[0] == 200  # the other services keep their own tables
    assert metric(live["url"], "503", "discover") == 3  # counted as the answers they are

    app_data.migrate(app_data.read_dsn(s.home))  # the table is back (a restore)
    assert work(s.gateway_url, "ai-discovery", s)[0] == 200
    assert [r["version"] for r in rows(s, "discovery_searches")] == ["v1.0.0"]
    assert app_sandbox.status()["services"]["ai-discovery"]["live"]["pid"] == live["pid"]
    log = s.log_file("ai-discovery-blue").read_text()
    assert log.count("database unavailable") == 1 and log.count("database writes work again") == 1


def test_a_database_that_is_down_fails_the_service_with_503_and_it_writes_again_once_it_is_back(
    app_sandbox: Sandbox, app_settings: SandboxSettings
) -> None:
    s = app_settings
    live = deploy(app_sandbox, "analytics", "v1.0.0")
    assert work(s.gateway_url, "analytics", s)[0] == 202
    postgres = load("postgres")
    postgres.shutdown(s, app_sandbox.store.read()["components"]["postgres"])

    started = time.monotonic()
    status, payload = work(s.gateway_url, "analytics", s)
    assert status == 503 and payload["error"].startswith("database unavailable: ")
    assert time.monotonic() - started < app_data.CONNECT_TIMEOUT_SECONDS + 1
    assert request(s.gateway_url, "/analytics/health")[0] == 200

    app_sandbox.up()  # PostgreSQL again, the service process untouched
    assert work(s.gateway_url, "analytics", s)[0] == 202
    assert app_data.counts(s)["analytics_events"] == 2
    assert app_sandbox.status()["services"]["analytics"]["live"]["pid"] == live["pid"]


def test_a_table_locked_by_another_session_fails_the_request_within_the_statement_timeout_never_hangs_it(
    app_sandbox: Sandbox, app_settings: SandboxSettings
) -> None:
    s = app_settings
    deploy(app_sandbox, "recommendation", "v1.0.0")
    holder = app_data.connect(s)  # a restore holding the table, say
    try:
        with holder.cursor() as cur:
            cur.execute("LOCK TABLE recommendation_feedback IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        status, payload = work(s.gateway_url, "recommendation", s)
        waited = time.monotonic() - started
        assert status == 503 and "statement timeout" in payload["error"]
        assert app_data.STATEMENT_TIMEOUT_MS / 1000 <= waited < app_data.STATEMENT_TIMEOUT_MS / 1000 + 2
    finally:
        holder.rollback()
        holder.close()
    assert work(s.gateway_url, "recommendation", s)[0] == 200


@pytest.mark.parametrize("server_running", [True, False], ids=["server-running", "after-down"])
def test_up_on_a_home_made_before_the_application_database_creates_it_and_its_schema(
    app_settings: SandboxSettings, server_running: bool
) -> None:
    s = app_settings
    sb = Sandbox(s)
    try:
        sb.up()
        # What a home made before this change looks like: a cluster without varai_app, and no DSN file.
        ledger = postgres.connections(s, s.component_port("postgres"))["varai_ledger"]
        admin = psycopg2.connect(
            host=ledger["host"],
            port=ledger["port"],
            user=ledger["login"],
            password=ledger["password"],
            dbname="postgres",
        )
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("DROP DATABASE varai_app")
        admin.close()
        app_data.dsn_file(s.home).unlink()
        if not server_running:
            sb.down()

        sb.up()
        assert app_data.counts(s) == dict.fromkeys(app_data.TABLES.values(), 0)
        deploy(sb, "face-analysis", "v2.0.0")
        assert work(s.gateway_url, "face-analysis", s)[0] == 200
        assert [r["version"] for r in rows(s, "face_analyses")] == ["v2.0.0"]
        sb.up()  # idempotent: the schema again, the rows kept
        assert app_data.counts(s)["face_analyses"] == 1
    finally:
        sb.down()
        assert not processes.find_ours(s.home)


def test_the_password_reaches_services_in_a_private_file_and_airflow_in_connections_env_never_a_log(
    app_sandbox: Sandbox, app_settings: SandboxSettings
) -> None:
    s = app_settings
    password = secret(s, "postgres_password")
    dsn_file = app_data.dsn_file(s.home)
    assert stat.S_IMODE(dsn_file.stat().st_mode) == 0o600
    assert app_data.read_dsn(s.home) == {
        "host": s.host,
        "port": s.component_port("postgres"),
        "user": "varai",
        "password": password,
        "dbname": "varai_app",
    }
    lines = s.connections_env_file.read_text().splitlines()[1:]
    exports = {k: json.loads(shlex.split(v)[0]) for k, v in (ln.removeprefix("export ").split("=", 1) for ln in lines)}
    app_db = exports["AIRFLOW_CONN_VARAI_APP_DB"]
    assert app_db == {**exports["AIRFLOW_CONN_VARAI_LEDGER"], "schema": "varai_app"}

    live = deploy(app_sandbox, "ai-discovery", "v1.0.0")
    assert work(s.gateway_url, "ai-discovery", s)[0] == 200
    execute(s, "DROP TABLE discovery_searches")  # so the log has a database error in it too
    assert work(s.gateway_url, "ai-discovery", s)[0] == 503
    assert password not in " ".join(processes._cmdline(live["pid"]))
    logs = list(s.home.rglob("*.log"))
    assert s.log_file("ai-discovery-blue") in logs
    for log in logs:
        assert password not in log.read_text(errors="replace"), log


def test_a_service_without_the_dsn_file_serves_without_writing_and_says_so_once(
    settings: SandboxSettings,
) -> None:
    s = dataclasses.replace(settings, traffic_rps=0)  # no PostgreSQL: the file is never written
    sb = Sandbox(s)
    try:
        sb.up()
        deploy(sb, "recommendation", "v1.0.0")
        for _ in range(3):
            assert work(s.gateway_url, "recommendation", s)[0] == 200
        assert not app_data.dsn_file(s.home).exists()
        assert s.log_file("recommendation-blue").read_text().count("not recording data") == 1
    finally:
        sb.down()
        assert not processes.find_ours(s.home)


def test_the_steady_synthetic_traffic_keeps_every_table_growing(
    app_sandbox: Sandbox, app_settings: SandboxSettings
) -> None:
    for name in SERVICES:
        deploy(app_sandbox, name, "v1.0.0")
    started = time.time()
    app_sandbox.start_traffic(rps=40)
    try:
        wait_for(lambda: all(app_data.counts(app_settings).values()), timeout=15, what="a row in every table")
        first = app_data.counts(app_settings)
        wait_for(
            lambda: all(n > first[t] for t, n in app_data.counts(app_settings).items()),
            timeout=15,
            what="every table to grow",
        )
    finally:
        app_sandbox.stop_traffic()
    assert app_sandbox.traffic_report(since=started)["failed"] == 0


def test_a_home_too_deep_for_a_unix_socket_still_gets_its_postgresql_on_tcp(app_settings: SandboxSettings) -> None:
    """A socket path over 107 bytes stops PostgreSQL from starting at all: such a home (a test's temp
    dir under a deep checkout) gets a TCP-only server, found again by its command line on the next up."""
    deep = dataclasses.replace(app_settings, home=app_settings.home / ("d" * 100) / "sandbox")
    port = deep.component_port("postgres")
    shallow = dataclasses.replace(app_settings, home=Path("/srv/varai/sandbox"))
    assert postgres.socket_dir_flag(shallow, port) == "/srv/varai/sandbox/postgres/run"
    assert postgres.socket_dir_flag(deep, port) == ""
    box = Sandbox(deep)
    try:
        box.up()
        running = processes.find_ours(deep.home)
        assert running, "PostgreSQL is not running, or not recognised as the sandbox's"
        box.up()  # finds the running server by its command line, its empty -k included: starts nothing
        assert processes.find_ours(deep.home) == running
        conn = app_data.connect(deep)
        with conn.cursor() as cur:
            cur.execute("SHOW unix_socket_directories")
            assert cur.fetchone() == ("",)
        conn.close()
    finally:
        box.down()
    assert not processes.find_ours(deep.home)
