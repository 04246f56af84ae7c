"""Events to Slack through an incoming webhook: the Slack provider's ``SlackWebhookNotifier``.

Connection ``varai_slack`` (conn_type ``slackwebhook``): ``host`` the webhook endpoint
(``hooks.slack.com/services``), ``password`` the webhook token (``T.../B.../...``), which never
leaves the connection. One message per event, within Block Kit's limits: a header with the
severity, what happened, the facts, where traffic is, and buttons to the run and, when a person must
act, to the approval page. ``text`` is the phone's push notification.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

from varai_deploy.notifiers.events import CRITICAL, WARNING, Event

#: Block Kit's limits (https://api.slack.com/reference/block-kit/blocks).
HEADER_MAX, SECTION_TEXT_MAX, FIELD_MAX, FIELDS_MAX, BUTTON_TEXT_MAX = 150, 3000, 2000, 10, 75
MARKS = {CRITICAL: ":red_circle:", WARNING: ":warning:"}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters, so an error message cannot forge a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_text(event: Event) -> str:
    return f"[{event.severity.upper()}] {event.title}: {event.message}"


def render_blocks(event: Event) -> list[dict[str, Any]]:
    mark = MARKS.get(event.severity, ":information_source:")
    blocks: list[dict[str, Any]] = [
        # block_id names the event for machines (filters, tests): "varai:<kind>:<severity>".
        {
            "type": "header",
            "block_id": f"varai:{event.kind}:{event.severity}",
            "text": {"type": "plain_text", "text": _clip(event.title, HEADER_MAX)},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"{mark} {_escape(event.message)}", 3000)}},
    ]
    fields = [
        {"type": "mrkdwn", "text": _clip(f"*{label}*\n{_escape(value)}", FIELD_MAX)} for label, value in event.facts()
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields[:FIELDS_MAX]})
    if event.error:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"```{_escape(event.error)}```", 3000)}}
        )
    if event.traffic:
        lines = "\n".join(f"• {service}: {_escape(now)}" for service, now in event.traffic.items())
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Traffic now*\n{lines}", 3000)}})
    for label, text in event.details.items():
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*{label}*\n{_escape(text)}", 3000)}}
        )
    buttons = []
    if event.action_url:
        buttons.append(_button(event.action_label or "Act", event.action_url, "action", style="primary"))
    if event.run_url:
        buttons.append(_button("Open the run", event.run_url, "run"))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    if event.run_id:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _clip(f"{event.dag_id} run {event.run_id}", 3000)}],
            }
        )
    return blocks[:50]


def _button(text: str, url: str, action_id: str, style: str | None = None) -> dict[str, Any]:
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": _clip(text, BUTTON_TEXT_MAX)},
        "url": url[:3000],
        "action_id": action_id,
    }
    if style:
        button["style"] = style
    return button


class SlackEventNotifier(SlackWebhookNotifier):
    """``SlackWebhookNotifier`` for one :class:`Event`. Its text is final: nothing is rendered as Jinja
    (an error message quoting ``{{`` must reach Slack as written)."""

    template_fields = ()

    def __init__(self, *, event: Event, slack_webhook_conn_id: str, timeout: float = 5, **kwargs):
        super().__init__(
            slack_webhook_conn_id=slack_webhook_conn_id,
            text=render_text(event),
            blocks=render_blocks(event),
            unfurl_links=False,
            unfurl_media=False,
            timeout=max(1, round(timeout)),
            **kwargs,
        )
        self.event = event
