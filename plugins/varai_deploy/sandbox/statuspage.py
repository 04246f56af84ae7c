"""The sandbox's status page: a Statuspage API stand-in (``statuspage_fake``) on offset 9, and what it holds.

``prepare`` writes ``<home>/notifications/statuspage.config.json`` (0600) with the API key the stand-in
accepts (the sandbox credential ``statuspage_api_key``, random per home) and its page id. Airflow gets it as
the HTTP connection ``varai_statuspage``: host, port, schema ``http``, ``password`` the API key, extra
``{"page_id": ...}``: production's has the same fields (host ``api.statuspage.io``, schema ``https``, a real
key and page id), so ``varai_deploy.hooks.statuspage`` cannot tell them apart.

For tests and people: :func:`incidents` (what the page shows, with each incident's updates),
:func:`history`, :func:`received` (every API request, accepted or not), :func:`fail` / :func:`clear_fault`
(the stand-in's fault), and ``python -m varai_deploy.sandbox statuspage``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from varai_deploy.sandbox import credentials, notifications
from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.processes import Marker, http_status, stand_in_marker
from varai_deploy.sandbox.state import read_json
from varai_deploy.sandbox.statuspage_fake import CHANNEL, PAGE_ID, incidents_file

if TYPE_CHECKING:
    from varai_deploy.sandbox.settings import SandboxSettings

MODULE = "varai_deploy.sandbox.statuspage_fake"
CONN_ID = "varai_statuspage"
KEY_SECRET = "statuspage_api_key"  # noqa: S105 - the name of the secret, not a secret


def marker(settings: SandboxSettings, port: int) -> Marker:
    return stand_in_marker(MODULE, settings, port)


def prepare(settings: SandboxSettings, port: int) -> None:
    """The key and page the stand-in serves (rewritten each time: it follows the credentials file)."""
    config = {"api_key": credentials.secret(settings, KEY_SECRET), "page_id": PAGE_ID}
    notifications.write_config(settings.home, CHANNEL, config)


def ready(settings: SandboxSettings, port: int) -> bool:
    """Its fault control answers (which records nothing, unlike an API request)."""
    return http_status(settings.host, port, notifications.CONTROL_PATH) == 200


def connections(settings: SandboxSettings, port: int) -> dict[str, dict[str, Any]]:
    return {
        CONN_ID: {
            "conn_type": "http",
            "host": settings.host,
            "port": port,
            "schema": "http",
            "password": credentials.secret(settings, KEY_SECRET),
            "extra": {"page_id": PAGE_ID},
        }
    }


COMPONENT = Component(
    name="statuspage",
    offset=9,
    marker=marker,
    ready=ready,
    prepare=prepare,
    connections=connections,
    start_timeout=15.0,
)


# -- what it holds and received ---------------------------------------------------------------------
def incidents(settings: SandboxSettings) -> list[dict[str, Any]]:
    """The page's incidents and maintenances as the API lists them: newest first, each with its
    ``incident_updates`` newest first. Read from the stand-in's file, so it works whether or not it runs
    (automatic transitions due since its last request show once it answers one)."""
    stored = read_json(incidents_file(settings.home), {})
    found = stored.get("incidents") if isinstance(stored, dict) else None
    return [i for i in found or [] if isinstance(i, dict)]


def history(incident: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(created_at, status, body)`` of each of the incident's updates, oldest first."""
    updates = incident.get("incident_updates") or []
    return [(u.get("created_at", ""), u.get("status", ""), u.get("body") or "") for u in reversed(updates)]


def received(settings: SandboxSettings, since: datetime | None = None) -> list[dict[str, Any]]:
    """Every API request the stand-in answered, oldest first: ``received_at``, ``method``, ``path``,
    ``status``, ``answer``, ``body`` (never the key). ``since``: at or after it (naive counts as UTC)."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    try:
        lines = notifications.log_file(settings.home, CHANNEL).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        try:
            record = json.loads(line)
            when = datetime.fromisoformat(record["received_at"])
        except (ValueError, KeyError, TypeError):
            continue  # a line being written right now
        if since is None or when >= since:
            found.append(record)
    return found


def fail(settings: SandboxSettings, status: int = 500, count: int | None = None) -> dict[str, Any]:
    """Make the next ``count`` valid API requests (None: all, until cleared) get ``status``; the stand-in's
    answer ``{"channel": "statuspage", "fault": {"status", "remaining"}}``."""
    try:
        return notifications.control(settings, CHANNEL, "POST", {"status": status, "count": count})
    except ConnectionRefusedError:
        raise SandboxError(
            f"the sandbox statuspage is not running on :{settings.component_port(CHANNEL)}; "
            "start it with `python -m varai_deploy.sandbox up`"
        ) from None


def clear_fault(settings: SandboxSettings) -> bool:
    """Clear the stand-in's fault; whether it had one. When it is not running, its fault file goes instead."""
    try:
        return bool(notifications.control(settings, CHANNEL, "DELETE").get("cleared"))
    except ConnectionRefusedError:
        path = notifications.fault_file(settings.home, CHANNEL)
        had = path.exists()
        path.unlink(missing_ok=True)
        return had
