"""The sandbox's notification stand-ins (Slack webhook, email endpoint) for tests, on ports 19360-19379.

Started and always stopped by :mod:`tests.support.stand_ins`, the way ``sandbox up`` starts them, with
a check that nothing is left running.
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
from varai_deploy.sandbox.email_endpoint import COMPONENT as EMAIL
from varai_deploy.sandbox.email_endpoint import CONN_ID as EMAIL_CONN_ID
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.slack import COMPONENT as SLACK
from varai_deploy.sandbox.slack import CONN_ID as SLACK_CONN_ID

PORTS = range(19360, 19380)


@dataclass(frozen=True)
class NotificationStack:
    settings: SandboxSettings
    #: The running process by component (a test that restarts one records the new pid here).
    pids: dict[str, int]

    def url(self, name: str) -> str:
        return self.settings.component_url(name)

    @property
    def slack_connection(self) -> dict[str, Any]:
        return SLACK.connections(self.settings, self.settings.component_port("slack"))[SLACK_CONN_ID]

    @property
    def email_connection(self) -> dict[str, Any]:
        return EMAIL.connections(self.settings, self.settings.component_port("email"))[EMAIL_CONN_ID]

    @property
    def webhook_url(self) -> str:
        conn = self.slack_connection
        return f"{conn['host']}/{conn['password']}"

    @property
    def email_token(self) -> str:
        return self.email_connection["password"]

    def post_slack(self, body: Any, url: str | None = None, **kwargs: Any) -> requests.Response:
        """A raw post to the webhook (JSON, as slack_sdk sends it, unless ``data=`` is given)."""
        if "data" not in kwargs:
            kwargs["json"] = body
        return requests.post(url or self.webhook_url, timeout=10, **kwargs)

    def post_email(
        self, body: Any, token: str | None = None, path: str = "/notify", **kwargs: Any
    ) -> requests.Response:
        headers = {
            "Authorization": f"Bearer {self.email_token if token is None else token}",
            **kwargs.pop("headers", {}),
        }
        if "data" not in kwargs:
            kwargs["json"] = body
        return requests.post(f"{self.url('email')}{path}", headers=headers, timeout=10, **kwargs)

    def records(self, channel: str) -> list[dict[str, Any]]:
        path = self.settings.home / "notifications" / f"{channel}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@contextmanager
def notification_stack(home: Path, names: tuple[str, ...] = ("slack", "email")) -> Iterator[NotificationStack]:
    components = tuple(c for c in (SLACK, EMAIL) if c.name in names)
    with stand_ins.running(home, components, PORTS) as started:
        yield NotificationStack(started.settings, started.pids)
