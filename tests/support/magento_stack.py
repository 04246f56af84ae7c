"""The Magento channel's stand-ins for tests: real storage emulator + CDN and the Marketplace fake.

Ports 19460-19479 (component bases 19460, 19466, 19472: storage +0, cdn +1, marketplace +4), started
and always stopped by :mod:`tests.support.stand_ins`, the way ``sandbox up`` starts components.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import stand_ins
from varai_deploy.sandbox.components import Component, load
from varai_deploy.sandbox.settings import SandboxSettings

PORTS = range(19460, 19480)
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
        """What the Marketplace fake holds (nothing before its first upload, as the fake starts)."""
        state = self.marketplace_dir / "state.json"
        return json.loads(state.read_text()) if state.exists() else {"uploads": {}, "packages": {}}


@contextmanager
def magento_stack(home: Path, names: tuple[str, ...] = ("storage", "cdn", "marketplace")) -> Iterator[MagentoStack]:
    components = tuple(load(name) for name in names)
    with stand_ins.running(home, components, PORTS, bases=BASES) as started:
        yield MagentoStack(started.settings, components)
