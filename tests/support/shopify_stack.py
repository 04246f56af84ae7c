"""The sandbox's Shopify stand-in (and, on request, the real storage emulator + CDN) on ports 19380-19399.

Started and stopped by :mod:`tests.support.stand_ins`, the way ``sandbox up`` starts them, with a
check that nothing is left running.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support import stand_ins
from varai_deploy.sandbox.cdn import COMPONENT as CDN
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.shopify import COMPONENT as SHOPIFY
from varai_deploy.sandbox.shopify import CONN_ID
from varai_deploy.sandbox.storage import COMPONENT as STORAGE
from varai_deploy.sandbox.storage import CONN_ID as CDN_CONN_ID

PORTS = range(19380, 19400)
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


@contextmanager
def shopify_stack(home: Path, *, cdn: bool = False) -> Iterator[ShopifyStack]:
    components = (STORAGE, CDN, SHOPIFY) if cdn else (SHOPIFY,)
    with stand_ins.running(home, components, PORTS, bases=PORT_BASES) as started:
        yield ShopifyStack(started.settings, started.pids)
