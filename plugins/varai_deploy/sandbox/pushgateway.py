"""The sandbox's Prometheus Pushgateway: Debian's ``prometheus-pushgateway``, where batch jobs leave metrics.

A batch job (``database_backup``) is gone before Prometheus could scrape it, so it pushes its gauges here
and the sandbox's Prometheus scrapes them (job ``varai-pushgateway``, see prometheus.py). The gateway
writes what it holds to ``<home>/pushgateway/pushgateway.data`` every second, so a restarted sandbox keeps
the last pushed values: "the newest verified backup" must not be forgotten with a process. Airflow reaches
it through the HTTP connection ``varai_pushgateway`` (``varai_deploy.hooks.pushgateway``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.processes import Marker, http_status
from varai_deploy.sandbox.settings import SandboxSettings

BINARY = "/usr/bin/prometheus-pushgateway"
INSTALL_HINT = "install it with `apt-get install prometheus-pushgateway` or run `make setup`"
CONN_ID = "varai_pushgateway"
#: How soon a push is on disk (the package's default is 5 minutes: a crash would lose every push since).
PERSISTENCE_INTERVAL = "1s"


def data_dir(settings: SandboxSettings) -> Path:
    return settings.home / "pushgateway"


def persistence_file(settings: SandboxSettings) -> Path:
    """What it reloads at start; also how its process is known as this home's."""
    return data_dir(settings) / "pushgateway.data"


def check_installed(settings: SandboxSettings) -> None:
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        raise SandboxError(f"the Prometheus Pushgateway is not installed ({BINARY} is missing); {INSTALL_HINT}")


def prepare(settings: SandboxSettings, port: int) -> None:
    data_dir(settings).mkdir(parents=True, exist_ok=True)


def marker(settings: SandboxSettings, port: int) -> Marker:
    return Marker(
        "prometheus-pushgateway",
        (
            ("--web.listen-address", f"{settings.host}:{port}"),
            ("--persistence.file", str(persistence_file(settings))),
            ("--persistence.interval", PERSISTENCE_INTERVAL),
        ),
        program=BINARY,
    )


def ready(settings: SandboxSettings, port: int) -> bool:
    """``/-/ready`` answers 200 once the persisted metrics are loaded."""
    return http_status(settings.host, port, "/-/ready") == 200


def connections(settings: SandboxSettings, port: int) -> dict[str, dict[str, Any]]:
    return {CONN_ID: {"conn_type": "http", "host": settings.host, "port": port, "schema": "http"}}


COMPONENT = Component(
    name="pushgateway",
    offset=10,
    marker=marker,
    ready=ready,
    prepare=prepare,
    connections=connections,
    check_installed=check_installed,
    start_timeout=15.0,
)
