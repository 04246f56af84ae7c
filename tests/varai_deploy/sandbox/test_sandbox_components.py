"""The widget stand-ins under the control plane: started by ``up``, listed by ``status``, restarted when gone,
their connections handed to Airflow in a private file, and nothing left behind by ``down``."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import stat
import time

import pytest

from varai_deploy.sandbox import Sandbox, SandboxSettings, processes
from varai_deploy.sandbox.components import load, read_connections_env


@pytest.fixture
def with_stand_ins(settings: SandboxSettings) -> SandboxSettings:
    # Two quick ones, on free ports of the test's own block (base+52..).
    return dataclasses.replace(
        settings, components=("svn", "marketplace"), component_port_base=settings.gateway_port + 52
    )


def test_up_starts_them_status_lists_them_down_stops_them(with_stand_ins: SandboxSettings) -> None:
    s = with_stand_ins
    sandbox = Sandbox(s)
    try:
        endpoints = sandbox.up()["endpoints"]
        assert endpoints["svn"] == f"svn://127.0.0.1:{s.gateway_port + 55}"
        assert endpoints["marketplace"] == f"http://127.0.0.1:{s.gateway_port + 56}"
        assert "npm_registry" not in endpoints
        for name in s.components:
            assert load(name).ready(s, s.component_port(name)), name

        env_file = s.connections_env_file
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        exports = read_connections_env(s)
        # the gateway (with its check key) always; then only what the chosen components serve
        assert set(exports) == {
            "AIRFLOW_CONN_VARAI_GATEWAY",
            "AIRFLOW_CONN_VARAI_WORDPRESS_SVN",
            "AIRFLOW_CONN_VARAI_MAGENTO_MARKETPLACE",
        }
        assert json.loads(exports["AIRFLOW_CONN_VARAI_WORDPRESS_SVN"])["password"]

        # A stand-in that died is started again by the next `up`, on the same port, with the same secrets.
        before = env_file.read_text()
        pid = sandbox.store.read()["components"]["marketplace"]["pid"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while processes.is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        sandbox.up()
        assert load("marketplace").ready(s, s.component_port("marketplace"))
        assert env_file.read_text() == before
    finally:
        sandbox.down()
    markers = [load(name).marker(s, s.component_port(name)) for name in s.components]
    assert processes.find_ours(s.home, markers) == []
    assert Sandbox(s).status()["endpoints"].keys() == {"gateway", "prometheus"}
