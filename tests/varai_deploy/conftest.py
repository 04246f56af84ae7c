"""Fixtures for tests that need a sandbox: real processes on ports 19500-19899, a tmp home, always torn down.

Each test gets the next of six port blocks (gateway at the block's base, Prometheus at base+5 -
the settings' default when base+10 is a service port - services from base+10 to base+53, two
instances each; base+54..59 are free for a test's stand-ins),
so a process that outlived a failed test cannot make the next test fail on a taken port, and a
demo sandbox on 18080 is never touched.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from varai_deploy.sandbox import Sandbox, SandboxSettings, processes

BLOCK_BASES = [19500 + 60 * i for i in range(6)]
_next_block = itertools.cycle(BLOCK_BASES)


def _block_is_free(base: int) -> bool:
    # Each service's blue and green, each with its two instances (+0 and +2): base+10..base+53.
    ports = [base, base + 5] + [base + 10 + 10 * i + c + 2 * k for i in range(5) for c in (0, 1) for k in (0, 1)]
    return all(processes.port_is_free("127.0.0.1", p) for p in ports)


@pytest.fixture
def settings(tmp_path: Path) -> SandboxSettings:
    for _ in BLOCK_BASES:
        base = next(_next_block)
        if _block_is_free(base):
            # The widget stand-ins have their own fixtures; these tests need only the services.
            return SandboxSettings(
                home=tmp_path / "sandbox", gateway_port=base, service_port_base=base + 10, components=()
            )
    pytest.fail("no free port block in 19500-19899 for the sandbox tests")


@pytest.fixture
def sandbox(settings: SandboxSettings) -> Iterator[Sandbox]:
    sb = Sandbox(settings)
    try:
        sb.up()
        yield sb
    finally:
        sb.down()
        left = processes.find_ours(settings.home)
        assert not left, f"processes left behind: {left}"


@pytest.fixture
def sandbox_env(sandbox: Sandbox, settings: SandboxSettings, monkeypatch) -> Sandbox:
    """The running sandbox, also as what ``Sandbox()`` and the ``varai_gateway`` connection resolve to."""
    monkeypatch.setenv("VARAI_SANDBOX_HOME", str(settings.home))
    monkeypatch.setenv("VARAI_SANDBOX_GATEWAY_PORT", str(settings.gateway_port))
    monkeypatch.setenv("VARAI_SANDBOX_PORT_BASE", str(settings.service_port_base))
    monkeypatch.setenv("VARAI_SANDBOX_COMPONENTS", "none")
    from varai_deploy.sandbox.components import read_connections_env

    # As `sandbox up` wrote it: with the API key the release's gateway checks use.
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_GATEWAY", read_connections_env(settings)["AIRFLOW_CONN_VARAI_GATEWAY"])
    monkeypatch.setenv(
        "AIRFLOW_CONN_VARAI_METRICS",
        f'{{"conn_type": "http", "host": "127.0.0.1", "port": {settings.prometheus_port}}}',
    )
    return sandbox


# -- the release ledger: one real PostgreSQL for the session, a fresh database per test ----------------
#: Apart from the sandbox blocks above (19500-19899) and the integration stack (19060-19100).
LEDGER_GATEWAY_PORT = 19960


@pytest.fixture(scope="session")
def ledger_server(tmp_path_factory) -> Iterator[dict]:
    """The sandbox's own PostgreSQL, alone in a tmp home: the ``varai_ledger`` connection's fields."""
    from varai_deploy.sandbox.postgres import connections

    settings = SandboxSettings(
        home=tmp_path_factory.mktemp("ledger") / "sandbox",
        gateway_port=LEDGER_GATEWAY_PORT,
        service_port_base=LEDGER_GATEWAY_PORT + 10,
        components=("postgres",),
        traffic_rps=0,
    )
    box = Sandbox(settings)
    box.up()
    try:
        yield connections(settings, settings.component_port("postgres"))["varai_ledger"]
    finally:
        box.down(purge=True)
        assert not processes.find_ours(settings.home)


@pytest.fixture
def ledger_conn(ledger_server, monkeypatch) -> dict:
    """A database of the test's own on the session's server, as ``AIRFLOW_CONN_VARAI_LEDGER``."""
    import json
    import uuid

    import psycopg2

    name = f"ledger_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(
        host=ledger_server["host"],
        port=ledger_server["port"],
        user=ledger_server["login"],
        password=ledger_server["password"],
        dbname=ledger_server["schema"],
    )
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    admin.close()
    conn = {**ledger_server, "schema": name}
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_LEDGER", json.dumps(conn))
    return conn


@pytest.fixture
def environment(ledger_conn) -> str:
    """An environment name for tests of the ledger alone."""
    return "sandbox"


@pytest.fixture
def release_context(ledger_conn) -> dict:
    """The task context of a release run that holds the sandbox's lock, as operators get it."""
    from types import SimpleNamespace

    from varai_deploy.ledger import Actor, Ledger

    dag_run = SimpleNamespace(
        dag_id="ai_discovery_release", run_id="manual__test", triggering_user_name="tester", run_type="manual"
    )
    Ledger("sandbox").acquire(Actor.from_context({"dag_run": dag_run}), "release", lambda d, r: True)
    return {"dag_run": dag_run}
