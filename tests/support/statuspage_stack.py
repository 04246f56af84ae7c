"""The sandbox's status page stand-in for tests, on a port the kernel picks (above 20000, clear of the
sandbox blocks in 18000-19999 other runs use), started like ``sandbox up`` starts it and always stopped,
with a check that nothing is left running (:mod:`tests.support.stand_ins`)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support import stand_ins
from varai_deploy.sandbox import statuspage
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.statuspage import COMPONENT, CONN_ID

ATTEMPTS = 5


def free_port() -> int:
    """A port nothing listens on right now, the kernel's choice (its ephemeral range: 32768 and up)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class StatusPageStack:
    settings: SandboxSettings
    #: The running process (a test that restarts it records the new pid here).
    pids: dict[str, int]

    @property
    def port(self) -> int:
        return self.settings.component_port("statuspage")

    @property
    def url(self) -> str:
        return self.settings.component_url("statuspage")

    @property
    def connection(self) -> dict[str, Any]:
        return COMPONENT.connections(self.settings, self.port)[CONN_ID]

    @property
    def api_key(self) -> str:
        return self.connection["password"]

    @property
    def page_id(self) -> str:
        return self.connection["extra"]["page_id"]

    def api(self, method: str, path: str = "", body: Any = None, key: str | None = None, **kwargs: Any):
        """A raw API request under ``/v1/pages/<page_id>/incidents`` (JSON body unless ``data=`` is given)."""
        headers = {"Authorization": f"OAuth {self.api_key if key is None else key}", **kwargs.pop("headers", {})}
        if body is not None and "data" not in kwargs:
            kwargs["json"] = body
        url = f"{self.url}/v1/pages/{self.page_id}/incidents{path}"
        return requests.request(method, url, headers=headers, timeout=10, **kwargs)

    def fail(self, status: int = 500, count: int | None = 1) -> None:
        statuspage.fail(self.settings, status, count)

    def incidents(self) -> list[dict[str, Any]]:
        return statuspage.incidents(self.settings)

    def received(self) -> list[dict[str, Any]]:
        return statuspage.received(self.settings)


@contextmanager
def statuspage_stack(home: Path) -> Iterator[StatusPageStack]:
    """The stand-in running for ``home`` on a free port; another port when one is taken under it."""
    for _ in range(ATTEMPTS):
        port = free_port()
        ports = range(port, port + 1)
        entered = False
        try:
            with stand_ins.running(home, (COMPONENT,), ports, own_port=True) as started:
                entered = True
                yield StatusPageStack(started.settings, started.pids)
            return
        except RuntimeError as exc:
            if entered or "no free ports" not in str(exc):
                raise
    raise RuntimeError(f"the status page stand-in found no free port in {ATTEMPTS} attempts")
