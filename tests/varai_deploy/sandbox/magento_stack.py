"""The Magento channel's stand-ins for tests: real storage emulator + CDN and the Marketplace fake.

Ports 19460-19479 (component bases 19460, 19466, 19472: storage +0, cdn +1, marketplace +4), started
the way ``sandbox up`` starts components (``prepare``, ``marker``, ``ready``, ``processes.spawn``) and
always stopped, with a check that nothing is left behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from varai_deploy.sandbox import processes
from varai_deploy.sandbox.components import Component, load
from varai_deploy.sandbox.settings import SandboxSettings

BASES = (19460, 19466, 19472)
COMPOSER_PREFIX = "composer"


@dataclass(frozen=True)
class MagentoStack:
    settings: SandboxSettings
    components: tuple[Component, ...]

    def url(self, name: str) -> str:
        return self.settings.component_url(name)

    def connection(self, component: str, conn_id: str) -> dict[str, Any]:
        found = next(c for c in self.components if c.name == component)
        assert found.connections is not None
        return found.connections(self.settings, self.settings.component_port(component))[conn_id]

    def marketplace_env(self, **override: Any) -> str:
        """``AIRFLOW_CONN_VARAI_MAGENTO_MARKETPLACE``'s JSON, fields overridden by ``override``."""
        return json.dumps({**self.connection("marketplace", "varai_magento_marketplace"), **override})

    def composer_env(self) -> str:
        """``AIRFLOW_CONN_VARAI_COMPOSER``: the CDN bucket's connection with the repository's prefix."""
        conn = self.connection("storage", "varai_cdn")
        return json.dumps({**conn, "extra": {**conn["extra"], "prefix": COMPOSER_PREFIX}})

    @property
    def marketplace_dir(self) -> Path:
        return self.settings.home / "marketplace"

    def marketplace_state(self) -> dict[str, Any]:
        return json.loads((self.marketplace_dir / "state.json").read_text())


def _free_base(components: tuple[Component, ...]) -> int:
    for base in BASES:
        if all(processes.port_is_free("127.0.0.1", base + c.offset) for c in components):
            return base
    raise RuntimeError("no free port block in 19460-19479 for the Magento tests")


def start(settings: SandboxSettings, component: Component) -> int:
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
def magento_stack(home: Path, names: tuple[str, ...] = ("storage", "cdn", "marketplace")) -> Iterator[MagentoStack]:
    home.mkdir(parents=True, exist_ok=True)
    components = tuple(load(name) for name in names)
    settings = SandboxSettings(home=home, component_port_base=_free_base(components), components=names)
    pids: list[int] = []
    try:
        for component in components:
            pids.append(start(settings, component))
        yield MagentoStack(settings, components)
    finally:
        processes.stop(pids)
        markers = [c.marker(settings, settings.component_port(c.name)) for c in components]
        left = processes.find_ours(settings.home, markers)
        assert not left, f"processes left behind: {left}"
