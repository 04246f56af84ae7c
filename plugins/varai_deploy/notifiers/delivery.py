"""Route an event to the channels its severity goes to (the environment's ``notifications``), and deliver.

Delivery never fails or holds up the operation that notifies: each channel gets the configured
number of attempts, each bounded by a timeout, with a pause between; a channel that still refuses is
logged with the reason (never the connection's secret) and the operation goes on. What happened to
each channel is returned, so the caller can record it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from varai_deploy.config import NOTIFICATION_CHANNELS

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier

    from varai_deploy.config import EnvironmentConfig
    from varai_deploy.notifiers.events import Event

log = logging.getLogger(__name__)
DELIVERED = "delivered"


def notifier_for(env: EnvironmentConfig, channel: str, event: Event) -> BaseNotifier:
    conn_id = env.connections[NOTIFICATION_CHANNELS[channel]]
    timeout = env.notifications.timeout_seconds
    if channel == "slack":
        from varai_deploy.notifiers.slack import SlackEventNotifier

        return SlackEventNotifier(event=event, slack_webhook_conn_id=conn_id, timeout=timeout)
    from varai_deploy.notifiers.email_endpoint import EmailEndpointNotifier

    return EmailEndpointNotifier(
        event=event, http_conn_id=conn_id, recipients=env.notifications.email_recipients, timeout=timeout
    )


def _reason(exc: BaseException) -> str:
    """The error's first line, without URLs (a webhook URL carries its token)."""
    import re

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = re.sub(r"\w+://\S+", "<url>", text)
    return f"{type(exc).__name__}: {text}"[:300]


def notify(env: EnvironmentConfig, event: Event, context: Any = None) -> dict[str, str]:
    """Deliver ``event`` to every channel its severity is routed to; ``{channel: "delivered" | reason}``."""
    policy = env.notifications
    results: dict[str, str] = {}
    for channel in policy.channels(event.severity):
        for attempt in range(1, policy.attempts + 1):
            try:
                notifier_for(env, channel, event).notify(context or {})
            except Exception as exc:  # a notification must never break the operation
                results[channel] = _reason(exc)
                log.warning(
                    "%s notification %r to %s: attempt %d of %d failed: %s",
                    event.severity,
                    event.kind,
                    channel,
                    attempt,
                    policy.attempts,
                    results[channel],
                )
                if attempt < policy.attempts:
                    time.sleep(policy.retry_delay_seconds * attempt)
            else:
                results[channel] = DELIVERED
                log.info("%s notification %r delivered to %s", event.severity, event.kind, channel)
                break
        else:
            log.error(
                "%s notification %r NOT delivered to %s after %d attempts (%s); the operation goes on",
                event.severity,
                event.kind,
                channel,
                policy.attempts,
                results[channel],
            )
    return results
