"""A real storage emulator + CDN server for the CDN tests, on ports 19400-19419, always stopped afterwards.

Started and stopped by :mod:`tests.support.stand_ins`, the way ``sandbox up`` starts them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support import stand_ins
from varai_deploy.sandbox.cdn import COMPONENT as CDN
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.storage import COMPONENT as STORAGE
from varai_deploy.sandbox.storage import CONN_ID

PORTS = range(19400, 19420)
#: component_port_base candidates: storage +0 and cdn +1, a pair at a time.
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


@contextmanager
def cdn_stack(home: Path) -> Iterator[CdnStack]:
    with stand_ins.running(home, (STORAGE, CDN), PORTS, bases=PORT_BASES) as started:
        yield CdnStack(started.settings, started.pids)
