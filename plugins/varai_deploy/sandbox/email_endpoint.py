"""The sandbox's email notification endpoint: the stand-in (``email_endpoint_fake``) on offset 8.

``prepare`` writes ``<home>/notifications/email.config.json`` (0600) with the bearer token it accepts,
the sandbox credential ``email_endpoint_token``. Airflow gets the endpoint as the HTTP connection
``varai_email_endpoint`` (host, port, schema; ``password`` the token); the notifier posts to its
endpoint ``notify``, so the path is not in the connection. The contract is in ``email_endpoint_fake``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from varai_deploy.sandbox import credentials, notifications
from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.email_endpoint_fake import CHANNEL
from varai_deploy.sandbox.processes import Marker, http_status, stand_in_marker

if TYPE_CHECKING:
    from varai_deploy.sandbox.settings import SandboxSettings

MODULE = "varai_deploy.sandbox.email_endpoint_fake"
CONN_ID = "varai_email_endpoint"
TOKEN_SECRET = "email_endpoint_token"  # noqa: S105 - the name of the secret, not a secret


def marker(settings: SandboxSettings, port: int) -> Marker:
    return stand_in_marker(MODULE, settings, port)


def prepare(settings: SandboxSettings, port: int) -> None:
    """The token the stand-in accepts (rewritten each time: it follows the credentials file)."""
    notifications.write_config(settings.home, CHANNEL, {"token": credentials.secret(settings, TOKEN_SECRET)})


def ready(settings: SandboxSettings, port: int) -> bool:
    """Its fault control answers (which records nothing, unlike a request to ``/notify``)."""
    return http_status(settings.host, port, notifications.CONTROL_PATH) == 200


def connections(settings: SandboxSettings, port: int) -> dict[str, dict[str, Any]]:
    return {
        CONN_ID: {
            "conn_type": "http",
            "host": settings.host,
            "port": port,
            "schema": "http",
            "password": credentials.secret(settings, TOKEN_SECRET),
        }
    }


COMPONENT = Component(
    name="email", offset=8, marker=marker, ready=ready, prepare=prepare, connections=connections, start_timeout=15.0
)
