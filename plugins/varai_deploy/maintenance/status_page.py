"""The maintenance window and emergency maintenance as the public status page shows them.

A window is one scheduled maintenance, named by environment and start, so the notice, the window
and any retry of either find the same entry; the window moves it scheduled -> in_progress ->
verifying -> completed. An emergency is a realtime incident named by its run. An environment
without ``connections.statuspage`` has no status page: nothing is posted and that is said.
"""

from __future__ import annotations

from typing import Any

from varai_deploy.config import EnvironmentConfig
from varai_deploy.maintenance.window_steps import Window

WINDOW_BODY = (
    "Monthly maintenance of VarAI AI Discovery: security updates of every service (rolling, blue-green, "
    "no downtime expected) and database maintenance. Releases are paused until {end:%H:%M} UTC."
)


def status_page(env: EnvironmentConfig):
    """The environment's :class:`~varai_deploy.hooks.statuspage.StatusPageHook`, or None."""
    conn_id = env.connections.get("statuspage")
    if not conn_id:
        return None
    from varai_deploy.hooks.statuspage import StatusPageHook

    return StatusPageHook(conn_id)


def window_name(env: EnvironmentConfig, window: Window) -> str:
    return f"Scheduled maintenance ({env.name}), {window.start:%Y-%m-%d %H:%M} UTC"


def announce_window(env: EnvironmentConfig, window: Window) -> dict[str, Any] | None:
    """The window's scheduled maintenance (created once, whatever the retries)."""
    hook = status_page(env)
    if hook is None:
        return None
    return hook.schedule_maintenance(
        window_name(env, window), WINDOW_BODY.format(end=window.end), window.start, window.end
    )


def move_window(env: EnvironmentConfig, window: Window, status: str, body: str) -> dict[str, Any] | None:
    """Moves the window's entry to ``status``; a window nobody announced (a manual one) is scheduled
    first, so the page always shows what ran."""
    hook = status_page(env)
    if hook is None:
        return None
    # By name in the whole list: once in progress, the API no longer lists it among the scheduled ones.
    name = window_name(env, window)
    entry = next((i for i in hook.incidents("all") if i.get("name") == name), None) or announce_window(env, window)
    from varai_deploy.hooks.statuspage import SCHEDULED_STATUSES as order

    if order.index(entry["status"]) > order.index(status):
        return entry  # a retry after the page already moved on: never backwards
    return hook.update(entry["id"], status, body)


def incident_name(env: EnvironmentConfig, run_id: str) -> str:
    return f"Emergency maintenance ({env.name}) {run_id}"


def emergency_update(env: EnvironmentConfig, run_id: str, status: str, body: str) -> dict[str, Any] | None:
    """Opens (once) the run's incident and moves it to ``status`` (investigating, identified,
    monitoring, resolved) with ``body``."""
    hook = status_page(env)
    if hook is None:
        return None
    name = incident_name(env, run_id)
    incident = next((i for i in hook.incidents("all") if i.get("name") == name), None)
    if incident is None:
        if status == "resolved":
            return None  # nothing was ever posted: nothing to resolve
        return hook.open_incident(name, body, status=status, impact="major")
    if incident.get("status") == "resolved":
        return incident
    return hook.update(incident["id"], status, body)
