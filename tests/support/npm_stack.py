"""A real Verdaccio for the npm tests, on a port in 19420-19439, always stopped afterwards.

Started and stopped by :mod:`tests.support.stand_ins`, the way ``sandbox up`` starts it, on the
project's Node.js (the venv's). :func:`decoy_path` puts a ``node`` and an ``npm`` that only fail first
on PATH, so a test shows that nothing runs whatever happens to be on PATH.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support import stand_ins
from varai_deploy.sandbox.npm_registry import COMPONENT, CONN_ID, secret_password
from varai_deploy.sandbox.settings import SandboxSettings

PORTS = range(19420, 19440)
DECOY_EXIT = 97


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


def decoy_path(bindir: Path, monkeypatch) -> Path:
    """``node`` and ``npm`` in ``bindir`` that exit DECOY_EXIT, put first on PATH (for this test)."""
    bindir.mkdir(parents=True, exist_ok=True)
    for name in ("node", "npm", "npx"):
        decoy = bindir / name
        decoy.write_text(f"#!/bin/sh\necho 'the {name} on PATH ran' >&2\nexit {DECOY_EXIT}\n")
        decoy.chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bindir), os.environ.get("PATH", "")]))
    monkeypatch.delenv("VARAI_NODE", raising=False)
    return bindir
