"""A real svnserve for the SVN tests: the sandbox's svn component on a free port in 19440-19459, a tmp home.

Started and stopped by :mod:`tests.support.stand_ins`, so the tests run the component the sandbox
runs; always stopped, and nothing of it may outlive the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support import stand_ins
from varai_deploy.sandbox import svn
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
    """Tries the ports in turn (``own_port``): another test session may take a free port before svnserve
    binds it. svnserve forks a child per connection, so whatever of it still runs is stopped too."""
    with stand_ins.running(home, (svn.COMPONENT,), PORTS, own_port=True, forks=True) as started:
        port = started.port(svn.COMPONENT.name)
        conn = svn.connections(started.settings, port)[svn.CONN_ID]
        yield SvnServer(started.settings, port, conn["host"], conn["login"], conn["password"])
