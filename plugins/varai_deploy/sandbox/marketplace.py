"""The sandbox's Magento Marketplace: the recorded-contract EQP API fake (``marketplace_fake``) on offset 4.

It serves the Airflow connection ``varai_magento_marketplace`` (HTTP, login = application ID,
password = application secret), the same shape as production's connection to
``https://commercedeveloper-api.adobe.com``. The key pair is invented once per sandbox home
(``credentials.secret``) and handed to the fake in a 0600 file, never on its command line.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from varai_deploy.sandbox import credentials
from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.marketplace_fake import API_KEYS_FILE
from varai_deploy.sandbox.processes import Marker, is_listening, stand_in_marker
from varai_deploy.sandbox.state import write_text_atomic

if TYPE_CHECKING:
    from varai_deploy.sandbox.settings import SandboxSettings

MODULE = "varai_deploy.sandbox.marketplace_fake"
CONN_ID = "varai_magento_marketplace"


def _keys(settings: SandboxSettings) -> tuple[str, str]:
    return (
        credentials.secret(settings, "magento_marketplace_application_id"),
        credentials.secret(settings, "magento_marketplace_application_secret"),
    )


def marker(settings: SandboxSettings, port: int) -> Marker:
    return stand_in_marker(MODULE, settings, port)


def ready(settings: SandboxSettings, port: int) -> bool:
    return is_listening(settings.host, port, timeout=0.2)


def prepare(settings: SandboxSettings, port: int) -> None:
    """Write the key pair the fake accepts (rewritten each time: it follows the credentials file)."""
    root = settings.home / "marketplace"
    root.mkdir(parents=True, exist_ok=True)
    app_id, app_secret = _keys(settings)
    write_text_atomic(root / API_KEYS_FILE, json.dumps({"application_id": app_id, "application_secret": app_secret}))


def connections(settings: SandboxSettings, port: int) -> dict[str, dict[str, Any]]:
    app_id, app_secret = _keys(settings)
    return {
        CONN_ID: {
            "conn_type": "http",
            "host": settings.host,
            "port": port,
            "schema": "http",
            "login": app_id,
            "password": app_secret,
        }
    }


COMPONENT = Component(
    name="marketplace", offset=4, marker=marker, ready=ready, prepare=prepare, connections=connections
)
