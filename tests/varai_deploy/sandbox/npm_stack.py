"""A real Verdaccio for the npm tests, on a port in 19420-19439, always stopped afterwards.

Started the way ``sandbox up`` starts it: the component's ``check_installed``, ``prepare``, ``marker``
and ``ready``, spawned detached through ``processes.spawn``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from varai_deploy.sandbox import processes
from varai_deploy.sandbox.npm_registry import COMPONENT, CONN_ID, secret_password
from varai_deploy.sandbox.settings import SandboxSettings

PORTS = range(19420, 19440)


@dataclass(frozen=True)
class NpmStack:
    settings: SandboxSettings
    port: int
    pid: int

    @property
    def url(self) -> str:
        return self.settings.component_url("npm_registry") + "/"

    @property
    def password(self) -> str:
        return secret_password(self.settings)

    @property
    def log_file(self) -> Path:
        return self.settings.log_file(COMPONENT.name)

    def connection(self) -> dict:
        return COMPONENT.connections(self.settings, self.port)[CONN_ID]

    def connection_env(self, **override: object) -> str:
        """``AIRFLOW_CONN_VARAI_NPM``'s JSON, with ``override`` replacing the sandbox's fields."""
        return json.dumps({**self.connection(), **override})


def _free_port() -> int:
    for port in PORTS:
        if processes.port_is_free("127.0.0.1", port):
            return port
    raise RuntimeError("no free port in 19420-19439 for the npm registry tests")


@contextmanager
def npm_stack(home: Path) -> Iterator[NpmStack]:
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    settings = SandboxSettings(
        home=home, component_port_base=port - COMPONENT.offset, components=(COMPONENT.name,), traffic_rps=0
    )
    COMPONENT.check_installed(settings)
    COMPONENT.prepare(settings, port)
    marker = COMPONENT.marker(settings, port)
    spawned = processes.spawn(
        marker.argv(),
        log_file=settings.log_file(COMPONENT.name),
        exit_file=settings.exit_file(COMPONENT.name),
        cwd=settings.home,
    )
    try:
        deadline = time.monotonic() + COMPONENT.start_timeout
        while not COMPONENT.ready(settings, port):
            if time.monotonic() > deadline or not processes.is_alive(spawned.pid):
                log = "\n".join(processes.log_tail(settings.log_file(COMPONENT.name)))
                raise RuntimeError(f"Verdaccio did not become ready on {port}:\n{log}")
            time.sleep(0.05)
        yield NpmStack(settings, port, spawned.pid)
    finally:
        processes.stop([spawned.pid, spawned.wrapper_pid])
        left = processes.find_ours(settings.home, [marker])
        assert not left, f"processes left behind: {left}"
