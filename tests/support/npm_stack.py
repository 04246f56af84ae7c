"""A real Verdaccio for the npm tests, on a port in 19420-19439, always stopped afterwards.

Started and stopped by :mod:`tests.support.stand_ins`, the way ``sandbox up`` starts it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support import stand_ins
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


@contextmanager
def npm_stack(home: Path) -> Iterator[NpmStack]:
    with stand_ins.running(home, (COMPONENT,), PORTS, traffic_rps=0) as started:
        yield NpmStack(started.settings, started.port(COMPONENT.name), started.pids[COMPONENT.name])
