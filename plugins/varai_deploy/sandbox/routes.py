"""The gateway's URL map: which process answers for each service's live colour.

The control side rewrites ``<home>/routes.json`` atomically (rename) on every switch; the
gateway stats it on each request and reloads when its identity changes. A request therefore
sees either the old table or the new one, and because the old colour keeps running through a
switch, neither choice is refused. A live route lists every instance of its revision
(``instances``, instance 0's port first) for the gateway to spread requests over and fail over
between; ``port`` stays instance 0's for readers that know one process.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from varai_deploy.sandbox.state import instance_records, write_json_atomic


def build_routes(state: dict[str, Any], host: str) -> dict[str, Any]:
    routes: dict[str, Any] = {}
    for name, record in state["services"].items():
        live = record.get("live")
        slot = record["slots"].get(live) if live else None
        routes[name] = (
            {
                "colour": live,
                "version": slot["version"],
                "host": host,
                "port": slot["port"],
                "instances": [r["port"] for _, r in instance_records(slot) if r.get("port")],
            }
            if slot
            else None
        )
    return {"schema": 1, "routes": routes}


def write_routes(path: Path, state: dict[str, Any], host: str) -> None:
    write_json_atomic(path, build_routes(state, host))


def write_scrape_targets(path: Path, state: dict[str, Any], host: str) -> None:
    """Prometheus ``file_sd_configs`` targets: every process that should be running (each
    instance of every colour, live or not), so candidates are scraped from their first request
    (analysis compares versions) and a dead instance shows as ``up == 0``. The target labels
    name the slot's revision and the instance too, so ``up{service=..., version=...}`` works;
    the metrics carry service/version/colour themselves and Prometheus keeps theirs
    (``honor_labels``), so queries summing by them add the instances up."""
    targets = [
        {
            "targets": [f"{host}:{instance['port']}"],
            "labels": {
                "sandbox_slot": f"{name}-{colour}",
                "sandbox_instance": str(i),
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
    write_json_atomic(path, targets)


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
