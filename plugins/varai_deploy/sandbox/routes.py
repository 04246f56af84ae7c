"""The gateway's URL map: which process answers for each service's live colour.

The control side rewrites ``<home>/routes.json`` atomically (rename) on every switch; the
gateway stats it on each request and reloads when its identity changes. A request therefore
sees either the old table or the new one, and because the old colour keeps running through a
switch, neither choice is refused. A live route lists the instances of its revision in the
active region (``instances``, in instance order) for the gateway to spread requests over and fail
over between: the gateway is the global front end, and another region's instances stand by until a
failover makes that region active. ``port`` stays instance 0's for readers that know one process.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varai_deploy.sandbox.state import instance_records, write_json_atomic

if TYPE_CHECKING:
    from varai_deploy.sandbox.settings import SandboxSettings


def active_region(state: dict[str, Any], settings: SandboxSettings) -> str:
    """The region the front end serves from: the recorded one if the settings still name it, else the first."""
    active = state["regions"]["active"]
    return active if active in settings.regions else settings.regions[0]


def build_routes(state: dict[str, Any], settings: SandboxSettings) -> dict[str, Any]:
    region = active_region(state, settings)
    serving = set(settings.instances_in(region))
    routes: dict[str, Any] = {}
    for name, record in state["services"].items():
        live = record.get("live")
        slot = record["slots"].get(live) if live else None
        routes[name] = (
            {
                "colour": live,
                "version": slot["version"],
                "host": settings.host,
                "port": slot["port"],
                "region": region,
                "instances": [r["port"] for i, r in instance_records(slot) if r.get("port") and i in serving],
            }
            if slot
            else None
        )
    return {"schema": 1, "region": region, "routes": routes}


def write_routes(settings: SandboxSettings, state: dict[str, Any]) -> None:
    write_json_atomic(settings.routes_file, build_routes(state, settings))


def write_scrape_targets(settings: SandboxSettings, state: dict[str, Any]) -> None:
    """Prometheus ``file_sd_configs`` targets: every process that should be running (each
    instance of every colour, live or not), so candidates are scraped from their first request
    (analysis compares versions) and a dead instance shows as ``up == 0``. The target labels
    name the slot's revision and the instance too, so ``up{service=..., version=...}`` works;
    the metrics carry service/version/colour themselves and Prometheus keeps theirs
    (``honor_labels``), so queries summing by them add the instances up."""
    targets = [
        {
            "targets": [f"{settings.host}:{instance['port']}"],
            "labels": {
                "sandbox_slot": f"{name}-{colour}",
                "sandbox_instance": str(i),
                "region": settings.region_of(i) if i < settings.total_instances else "none",
                "service": name,
                "colour": colour,
                "version": slot["version"],
            },
        }
        for name, record in state["services"].items()
        for colour, slot in sorted(record["slots"].items())
        if slot.get("state") == "running"
        for i, instance in instance_records(slot)
        if instance.get("port")
    ]
    write_json_atomic(settings.scrape_targets_file, targets)


class RouteTable:
    """The gateway's cached view of ``routes.json``, reloaded when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._key: tuple[int, int, int] | None = None
        self._routes: dict[str, Any] = {}

    def current(self) -> dict[str, Any]:
        try:
            st = os.stat(self.path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        if key == self._key:
            return self._routes
        with self._lock:
            if key != self._key:
                self._routes = self._load() if key else {}
                self._key = key
            return self._routes

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return dict(data.get("routes") or {})
        except (OSError, ValueError):
            # Keep serving the last good table rather than failing every request.
            return self._routes

    def route_for(self, service: str) -> dict[str, Any] | None:
        return self.current().get(service)
