"""The sandbox's Shopify stand-in (and, on request, the real storage emulator + CDN) on ports 19380-19399.

Started the way ``sandbox up`` starts them (``cdn_stack.start``: prepare, spawn detached, wait until
ready) and always stopped afterwards, checking that nothing is left running.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.varai_deploy.sandbox.cdn_stack import start
from varai_deploy.sandbox import processes
from varai_deploy.sandbox.cdn import COMPONENT as CDN
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.shopify import COMPONENT as SHOPIFY
from varai_deploy.sandbox.shopify import CONN_ID
from varai_deploy.sandbox.storage import COMPONENT as STORAGE
from varai_deploy.sandbox.storage import CONN_ID as CDN_CONN_ID

#: component_port_base candidates: storage +0, cdn +1, shopify +5 all stay inside 19380-19399.
PORT_BASES = (19380, 19386, 19392)


@dataclass(frozen=True)
class ShopifyStack:
    settings: SandboxSettings
    pids: dict[str, int]

    @property
    def url(self) -> str:
        return self.settings.component_url("shopify")

    def connection(self) -> dict[str, Any]:
        return SHOPIFY.connections(self.settings, self.settings.component_port("shopify"))[CONN_ID]

    def connection_env(self, **fields: Any) -> str:
        """``AIRFLOW_CONN_VARAI_SHOPIFY``'s JSON, ``fields`` overriding the sandbox's (``extra`` merges)."""
        conn = self.connection()
        extra = {**conn["extra"], **fields.pop("extra", {})}
        return json.dumps({**conn, **fields, "extra": extra})

    def cdn_connection_env(self) -> str:
        return json.dumps(STORAGE.connections(self.settings, self.settings.component_port("storage"))[CDN_CONN_ID])

    @property
    def token(self) -> str:
        return self.connection()["password"]

    @property
    def api_key(self) -> str:
        return self.connection()["extra"]["api_key"]

    def state(self) -> dict[str, Any]:
        """What the stand-in holds: registrations and versions (each with its bundle's file digests)."""
        path = self.settings.home / "shopify" / "state.json"
        return json.loads(path.read_text()) if path.exists() else {"registrations": [], "versions": []}

    def graphql(self, query: str, variables: dict | None = None, **headers: str) -> requests.Response:
        """A raw request to the stand-in, authorised as the CLI is unless ``headers`` say otherwise."""
        auth = {"Authorization": f"Bearer {self.token}", "X-Shopify-Access-Token": f"Bearer {self.token}"}
        return requests.post(
            f"{self.url}/api/cli/graphql",
            json={"query": query, "variables": variables or {}},
            headers={**auth, **headers},
            timeout=10,
        )


def _free_base(components: tuple) -> int:
    for base in PORT_BASES:
        if all(processes.port_is_free("127.0.0.1", base + c.offset) for c in components):
            return base
    raise RuntimeError("no free port block in 19380-19399 for the Shopify tests")


@contextmanager
def shopify_stack(home: Path, *, cdn: bool = False) -> Iterator[ShopifyStack]:
    components = (STORAGE, CDN, SHOPIFY) if cdn else (SHOPIFY,)
    home.mkdir(parents=True, exist_ok=True)
    settings = SandboxSettings(
        home=home, component_port_base=_free_base(components), components=tuple(c.name for c in components)
    )
    pids: dict[str, int] = {}
    try:
        for component in components:
            pids[component.name] = start(settings, component)
        yield ShopifyStack(settings, pids)
    finally:
        processes.stop(pids.values())
        markers = [c.marker(settings, settings.component_port(c.name)) for c in components]
        left = processes.find_ours(settings.home, markers)
        assert not left, f"processes left behind: {left}"
