"""The sandbox's Pushgateway for tests: alone on a port the kernel picks, started like ``sandbox up`` starts it
(:mod:`tests.support.stand_ins`), or in a whole sandbox whose Prometheus scrapes it; always stopped."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support import stand_ins
from tests.support.statuspage_stack import free_port
from varai_deploy.sandbox import Sandbox, processes
from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.pushgateway import COMPONENT, CONN_ID
from varai_deploy.sandbox.settings import SandboxSettings

ATTEMPTS = 5


@dataclass(frozen=True)
class PushgatewayStack:
    settings: SandboxSettings
    #: The running process (a test that restarts it records the new pid here).
    pids: dict[str, int]

    @property
    def port(self) -> int:
        return self.settings.component_port(COMPONENT.name)

    @property
    def url(self) -> str:
        return self.settings.component_url(COMPONENT.name)

    @property
    def connection(self) -> dict[str, Any]:
        return COMPONENT.connections(self.settings, self.port)[CONN_ID]

    def groups(self) -> list[dict[str, Any]]:
        """The groups it holds, as its ``/api/v1/metrics`` lists them."""
        answer = requests.get(f"{self.url}/api/v1/metrics", timeout=5)
        answer.raise_for_status()
        return answer.json()["data"]

    def group(self, **labels: str) -> dict[str, tuple[float, str]] | None:
        """The group with exactly these labels as ``{metric: (value, help)}``, the shape
        ``PushgatewayHook.push`` takes (None: no such group); the gateway's own ``push_*`` metrics left out."""
        for group in self.groups():
            if group["labels"] == labels:
                return {
                    name: (float(family["metrics"][0]["value"]), family.get("help", ""))
                    for name, family in group.items()
                    if isinstance(family, dict) and "metrics" in family and not name.startswith("push_")
                }
        return None


@contextmanager
def pushgateway_stack(home: Path) -> Iterator[PushgatewayStack]:
    """The Pushgateway running for ``home`` on a free port; another port when one is taken under it."""
    for _ in range(ATTEMPTS):
        port = free_port()
        entered = False
        try:
            with stand_ins.running(home, (COMPONENT,), range(port, port + 1), own_port=True) as started:
                entered = True
                yield PushgatewayStack(started.settings, started.pids)
            return
        except RuntimeError as exc:
            if entered or "no free ports" not in str(exc):
                raise
    raise RuntimeError(f"the Pushgateway found no free port in {ATTEMPTS} attempts")


def free_settings(home: Path, component: Component = COMPONENT) -> SandboxSettings:
    """A sandbox with only ``component`` (the Pushgateway by default), on ports the kernel picks (gateway,
    Prometheus, the component); no service is deployed, so the service range is only checked, never bound."""
    ports = {free_port() for _ in range(3)}
    while len(ports) < 3:
        ports.add(free_port())
    gateway, prom, port = ports
    return SandboxSettings(
        home=home,
        gateway_port=gateway,
        service_port_base=65000,
        prometheus_port=prom,
        component_port_base=port - component.offset,
        components=(component.name,),
        traffic_rps=0,
    )


@contextmanager
def sandbox_with_pushgateway(home: Path) -> Iterator[Sandbox]:
    """``up`` on :func:`free_settings`; ``down`` afterwards, with nothing of it left running."""
    box = Sandbox(free_settings(home))
    try:
        box.up()
        yield box
    finally:
        box.down()
        s = box.settings
        left = processes.find_ours(s.home, [COMPONENT.marker(s, s.component_port(COMPONENT.name))])
        assert not left, f"processes left behind: {left}"


def prometheus_api(settings: SandboxSettings, path: str, **params: str) -> Any:
    """The ``data`` of a Prometheus HTTP API answer (``/api/v1/...``)."""
    url = f"{settings.prometheus_url}{path}?{urllib.parse.urlencode(params)}"
    body = requests.get(url, timeout=5).json()
    assert body["status"] == "success", json.dumps(body)
    return body["data"]
