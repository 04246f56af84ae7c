"""A real storage emulator + CDN server for the CDN tests, on ports 19400-19419, always stopped afterwards.

Started the way ``sandbox up`` starts them: each component's ``prepare``, ``marker`` and ``ready``,
spawned detached through ``processes.spawn``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from varai_deploy.sandbox import processes
from varai_deploy.sandbox.cdn import COMPONENT as CDN
from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.storage import COMPONENT as STORAGE
from varai_deploy.sandbox.storage import CONN_ID

PORT_BASES = range(19400, 19420, 2)


@dataclass(frozen=True)
class CdnStack:
    settings: SandboxSettings
    #: The running processes by component; a test that restarts one updates it (it is stopped at the end).
    pids: dict[str, int]

    @property
    def storage_url(self) -> str:
        return self.settings.component_url("storage")

    @property
    def cdn_url(self) -> str:
        return self.settings.component_url("cdn")

    def connection(self) -> dict:
        return STORAGE.connections(self.settings, self.settings.component_port("storage"))[CONN_ID]

    def connection_env(self, **extra: object) -> str:
        """``AIRFLOW_CONN_VARAI_CDN``'s JSON, with ``extra`` overriding the sandbox's extras."""
        conn = self.connection()
        return json.dumps({**conn, "extra": {**conn["extra"], **extra}})


def _free_base() -> int:
    for base in PORT_BASES:
        if all(processes.port_is_free("127.0.0.1", base + c.offset) for c in (STORAGE, CDN)):
            return base
    raise RuntimeError("no free port pair in 19400-19419 for the CDN tests")


def start(settings: SandboxSettings, component: Component) -> int:
    """Prepare, spawn and wait until ready, as ``sandbox up`` does; returns the pid."""
    port = settings.component_port(component.name)
    if component.prepare:
        component.prepare(settings, port)
    spawned = processes.spawn(
        component.marker(settings, port).argv(),
        log_file=settings.log_file(component.name),
        exit_file=settings.exit_file(component.name),
        cwd=settings.home,
    )
    deadline = time.monotonic() + component.start_timeout
    while not component.ready(settings, port):
        if time.monotonic() > deadline or not processes.is_alive(spawned.pid):
            log = "\n".join(processes.log_tail(settings.log_file(component.name)))
            processes.stop([spawned.pid])
            raise RuntimeError(f"{component.name} did not become ready on {port}:\n{log}")
        time.sleep(0.05)
    return spawned.pid


@contextmanager
def cdn_stack(home: Path) -> Iterator[CdnStack]:
    home.mkdir(parents=True, exist_ok=True)
    settings = SandboxSettings(home=home, component_port_base=_free_base(), components=("storage", "cdn"))
    pids: dict[str, int] = {}
    try:
        for component in (STORAGE, CDN):
            pids[component.name] = start(settings, component)
        yield CdnStack(settings, pids)
    finally:
        processes.stop(pids.values())
        markers = [c.marker(settings, settings.component_port(c.name)) for c in (STORAGE, CDN)]
        left = processes.find_ours(settings.home, markers)
        assert not left, f"processes left behind: {left}"
