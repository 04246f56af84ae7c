"""A real svnserve for the SVN tests: the sandbox's svn component on a free port in 19440-19459, a tmp home.

Started through the sandbox's own ``prepare``/``marker``/``processes.spawn``, so the tests run the
component the sandbox runs; always stopped, and nothing of it may outlive the test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from varai_deploy.sandbox import processes, svn
from varai_deploy.sandbox.settings import SandboxSettings

PORTS = range(19440, 19460)


@dataclass(frozen=True)
class SvnServer:
    settings: SandboxSettings
    port: int
    url: str
    login: str
    password: str

    def connection_env(self, password: str | None = None) -> str:
        """The ``AIRFLOW_CONN_VARAI_WORDPRESS_SVN`` value the sandbox exports (optionally another password)."""
        conn = svn.connections(self.settings, self.port)[svn.CONN_ID]
        if password is not None:
            conn = {**conn, "password": password}
        return json.dumps(conn)


@contextmanager
def running_svnserve(home: Path) -> Iterator[SvnServer]:
    """Tries the ports in turn: another test session may take a free port before svnserve binds it."""
    for port in PORTS:
        if not processes.port_is_free("127.0.0.1", port):
            continue
        settings = SandboxSettings(home=home, component_port_base=port - svn.COMPONENT.offset, components=("svn",))
        svn.check_installed(settings)
        svn.prepare(settings, port)
        marker = svn.marker(settings, port)
        log_file = settings.log_file("svn")
        spawned = processes.spawn(marker.argv(), log_file=log_file, exit_file=settings.exit_file("svn"), cwd=home)
        try:
            serving = _serves(spawned.pid, settings, port)
            if serving:
                conn = svn.connections(settings, port)[svn.CONN_ID]
                yield SvnServer(settings, port, conn["host"], conn["login"], conn["password"])
        finally:
            processes.stop([spawned.pid], grace=5)
            processes.stop(processes.find_ours(home, [marker]), grace=5)
        left = processes.find_ours(home, [marker])
        assert not left, f"svnserve processes left behind: {left}"
        if serving:
            return
        assert "Address already in use" in log_file.read_text(), processes.log_tail(log_file)
    pytest.fail(f"no free port in {PORTS.start}-{PORTS.stop - 1} for svnserve")


def _serves(pid: int, settings: SandboxSettings, port: int) -> bool:
    """Our svnserve answers on the port (not another session's), or it died (the port was taken)."""
    deadline = time.monotonic() + 10
    while processes.is_alive(pid):
        if svn.ready(settings, port) and (processes.port_owner(port) or "").startswith(f"pid {pid} "):
            return True
        assert time.monotonic() < deadline, f"svnserve not ready on {port}"
        time.sleep(0.05)
    return False
