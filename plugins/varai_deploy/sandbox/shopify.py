"""The sandbox's Shopify: the Partners API stand-in (``shopify_fake``) the Shopify channel deploys the app to.

``prepare`` writes ``<home>/shopify/config.json`` (0600): the sandbox app (its api key is random per
home, so a connection from another sandbox is refused), the access token the server accepts and the
key it signs upload URLs with. The token is the sandbox secret ``shopify_token``; Airflow gets it as
the password of ``varai_shopify``.
"""

from __future__ import annotations

import hashlib
import json

from varai_deploy.sandbox import credentials
from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.processes import Marker, http_status, stand_in_marker
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.state import write_text_atomic

MODULE = "varai_deploy.sandbox.shopify_fake"
CONN_ID = "varai_shopify"
TOKEN_SECRET = "shopify_token"  # noqa: S105 - the name of the secret, not a secret
APP_ID = "4700000001"
ORGANIZATION_ID = "3100001"
APP_TITLE = "VarAI AI Discovery (sandbox)"


def api_key(settings: SandboxSettings) -> str:
    """32 hex digits like a real app's client id, random per sandbox home."""
    return hashlib.sha256(credentials.secret(settings, "shopify_app").encode()).hexdigest()[:32]


def marker(settings: SandboxSettings, port: int) -> Marker:
    return stand_in_marker(MODULE, settings, port)


def prepare(settings: SandboxSettings, port: int) -> None:
    directory = settings.home / "shopify"
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "api_key": api_key(settings),
        "app_id": APP_ID,
        "organization_id": ORGANIZATION_ID,
        "title": APP_TITLE,
        "access_token": credentials.secret(settings, TOKEN_SECRET),
        "signing_key": credentials.secret(settings, "shopify_upload_signing_key"),
    }
    write_text_atomic(directory / "config.json", json.dumps(config))


def ready(settings: SandboxSettings, port: int) -> bool:
    """Answers the GraphQL endpoint (401 without a token is an answer)."""
    answer = http_status(
        settings.host, port, "/api/cli/graphql", method="POST", body=b"{}", headers={"Content-Type": "application/json"}
    )
    return answer == 401


def connections(settings: SandboxSettings, port: int) -> dict[str, dict]:
    return {
        CONN_ID: {
            "conn_type": "http",
            "host": settings.host,
            "port": port,
            "schema": "http",
            "password": credentials.secret(settings, TOKEN_SECRET),
            "extra": {"api_key": api_key(settings)},
        }
    }


COMPONENT = Component(
    name="shopify", offset=5, marker=marker, ready=ready, prepare=prepare, connections=connections, start_timeout=15.0
)
