"""The sandbox's Slack: an incoming-webhook stand-in (``slack_fake``) the Slack notifier posts to, on offset 7.

``prepare`` writes ``<home>/notifications/slack.config.json`` (0600) with the webhook's secret, the
sandbox credential ``slack_webhook_token`` (random per home, so a connection from another sandbox
finds ``no_service``). Airflow gets it as the Slack provider's ``slackwebhook`` connection
``varai_slack``: ``host`` the webhook endpoint, ``password`` the token ``T0SANDBOX/B0SANDBOX/<secret>``,
the same shape as production's (``hooks.slack.com/services`` and a real webhook's token).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from varai_deploy.sandbox import credentials, notifications
from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.processes import Marker, http_status, stand_in_marker
from varai_deploy.sandbox.slack_fake import CHANNEL, webhook_path

if TYPE_CHECKING:
    from varai_deploy.sandbox.settings import SandboxSettings

MODULE = "varai_deploy.sandbox.slack_fake"
CONN_ID = "varai_slack"
TOKEN_SECRET = "slack_webhook_token"  # noqa: S105 - the name of the secret, not a secret


def marker(settings: SandboxSettings, port: int) -> Marker:
    return stand_in_marker(MODULE, settings, port)


def prepare(settings: SandboxSettings, port: int) -> None:
    """The secret the stand-in accepts (rewritten each time: it follows the credentials file)."""
    notifications.write_config(settings.home, CHANNEL, {"secret": credentials.secret(settings, TOKEN_SECRET)})


def ready(settings: SandboxSettings, port: int) -> bool:
    """Its fault control answers (which records nothing, unlike a request to the webhook)."""
    return http_status(settings.host, port, notifications.CONTROL_PATH) == 200


def connections(settings: SandboxSettings, port: int) -> dict[str, dict[str, Any]]:
    return {
        CONN_ID: {
            "conn_type": "slackwebhook",
            "host": f"{settings.url_for_port(port)}/services",
            "password": webhook_path(credentials.secret(settings, TOKEN_SECRET)),
        }
    }


COMPONENT = Component(
    name="slack", offset=7, marker=marker, ready=ready, prepare=prepare, connections=connections, start_timeout=15.0
)
