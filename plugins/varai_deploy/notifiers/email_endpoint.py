"""Events to the email notification endpoint (the guide's ``EMAIL_NOTIFICATION_ENDPOINT``), through ``HttpHook``.

Connection ``varai_email_endpoint`` (conn_type ``http``): host, port and schema of the endpoint,
``password`` its bearer token. The contract (``POST notify``, JSON): ``to`` (addresses), ``subject``
(one line), ``severity`` (critical, warning, info), ``text`` (plain), optional ``html`` and
``event`` (the event as data, for filters and tickets); 2xx means accepted.
"""

from __future__ import annotations

import html
from typing import Any

from airflow.sdk import BaseNotifier

from varai_deploy.notifiers.events import Event

ENDPOINT = "notify"
SUBJECT_MAX = 200


def render_subject(event: Event) -> str:
    subject = f"[VarAI {event.environment}][{event.severity}] {event.title}"
    return " ".join(subject.split())[:SUBJECT_MAX]


def render_text(event: Event) -> str:
    lines = [event.title, "", event.message, ""]
    lines += [f"{label}: {value}" for label, value in event.facts()]
    if event.error:
        lines += ["", "Error:", event.error]
    if event.traffic:
        lines += ["", "Traffic now:"] + [f"  {service}: {now}" for service, now in event.traffic.items()]
    for label, text in event.details.items():
        lines += ["", f"{label}:", text]
    if event.action_url:
        lines += ["", f"{event.action_label or 'Act'}: {event.action_url}"]
    if event.run_url:
        lines += ["", f"The run: {event.run_url}"]
    return "\n".join(lines)


def render_html(event: Event) -> str:
    esc = html.escape
    rows = "".join(f"<tr><th align=left>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in event.facts())
    parts = [f"<h2>{esc(event.title)}</h2>", f"<p>{esc(event.message)}</p>", f"<table>{rows}</table>"]
    if event.error:
        parts.append(f"<pre>{esc(event.error)}</pre>")
    if event.traffic:
        items = "".join(f"<li>{esc(s)}: {esc(now)}</li>" for s, now in event.traffic.items())
        parts.append(f"<h3>Traffic now</h3><ul>{items}</ul>")
    for label, text in event.details.items():
        parts.append(f"<h3>{esc(label)}</h3><pre>{esc(text)}</pre>")
    if event.action_url:
        parts.append(f'<p><a href="{esc(event.action_url)}">{esc(event.action_label or "Act")}</a></p>')
    if event.run_url:
        parts.append(f'<p><a href="{esc(event.run_url)}">Open the run</a></p>')
    return "\n".join(parts)


def render_payload(event: Event, recipients: tuple[str, ...]) -> dict[str, Any]:
    return {
        "to": list(recipients),
        "subject": render_subject(event),
        "severity": event.severity,
        "text": render_text(event),
        "html": render_html(event),
        "event": event.as_dict(),
    }


class EmailEndpointNotifier(BaseNotifier):
    """Posts one :class:`Event` to the email endpoint; raises on anything but 2xx (the caller retries)."""

    template_fields = ()

    def __init__(self, *, event: Event, http_conn_id: str, recipients: tuple[str, ...], timeout: float = 5, **kwargs):
        super().__init__(**kwargs)
        self.event = event
        self.http_conn_id = http_conn_id
        self.recipients = tuple(recipients)
        self.timeout = timeout

    def notify(self, context) -> None:
        from airflow.providers.http.hooks.http import HttpHook

        hook = HttpHook(method="POST", http_conn_id=self.http_conn_id)
        token = hook.get_connection(self.http_conn_id).password
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        hook.run(
            ENDPOINT,
            json=render_payload(self.event, self.recipients),
            headers=headers,
            extra_options={"timeout": self.timeout},
        )
