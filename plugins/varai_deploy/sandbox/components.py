"""The sandbox's stand-in servers (storage, CDN, npm, SVN, Marketplace, Shopify, PostgreSQL, the
notification stand-ins Slack and the email endpoint, the status page, the Pushgateway, the Cloud SQL
Admin API and the local Cloud Run), one shape each.

Each is a local server the control plane starts on ``up``, stops on ``down`` and lists under
``endpoints`` in ``status``; each module describes itself with a :class:`Component`, so adding one
touches only the registry below. Connections the components serve are written, for Airflow, to
``<home>/connections.env`` (0600), which ``airflow.sh`` sources.
"""

from __future__ import annotations

import importlib
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from varai_deploy.sandbox.processes import Marker
    from varai_deploy.sandbox.settings import SandboxSettings

#: Registry order is start order (the CDN serves what the storage emulator holds) and each one's port
#: offset: new components go at the end, so the others keep their ports.
COMPONENT_MODULES: dict[str, str] = {
    "storage": "varai_deploy.sandbox.storage",
    "cdn": "varai_deploy.sandbox.cdn",
    "npm_registry": "varai_deploy.sandbox.npm_registry",
    "svn": "varai_deploy.sandbox.svn",
    "marketplace": "varai_deploy.sandbox.marketplace",
    "shopify": "varai_deploy.sandbox.shopify",
    "postgres": "varai_deploy.sandbox.postgres",
    "slack": "varai_deploy.sandbox.slack",
    "email": "varai_deploy.sandbox.email_endpoint",
    "statuspage": "varai_deploy.sandbox.statuspage",
    "pushgateway": "varai_deploy.sandbox.pushgateway",
    "cloudsql": "varai_deploy.sandbox.cloudsql",
    "cloudrun": "varai_deploy.sandbox.cloudrun",
    "staging": "varai_deploy.sandbox.staging",
}
COMPONENT_NAMES = tuple(COMPONENT_MODULES)
#: Ports: ``component_port_base + offset``; the base defaults to the gateway port minus this.
COMPONENT_PORT_GAP = 20


@dataclass(frozen=True)
class Component:
    name: str
    offset: int
    #: The command line; one flag/value pair names a path under the home, so the process is known as ours.
    marker: Callable[[SandboxSettings, int], Marker]
    #: Does it answer yet? Fast, never raises.
    ready: Callable[[SandboxSettings, int], bool]
    #: Idempotent set-up before a start: directories, config files, repositories, credential files.
    prepare: Callable[[SandboxSettings, int], None] | None = None
    #: Idempotent set-up that needs it answering, on every ``up`` once it is ready (started then or
    #: already running, so a home made before the set-up existed gets it too): databases, schemas.
    after_start: Callable[[SandboxSettings, int], None] | None = None
    #: The Airflow connections it serves: ``{conn_id: {"conn_type": ..., "host": ..., ...}}``.
    connections: Callable[[SandboxSettings, int], dict[str, dict[str, Any]]] | None = None
    #: Raise SandboxError with an install hint when its program is missing.
    check_installed: Callable[[SandboxSettings], None] | None = None
    start_timeout: float = 30.0
    #: Its URL in ``status``; None: ``http://<host>:<port>``.
    endpoint: Callable[[SandboxSettings, int], str] | None = None
    #: A clean stop of the running process (its record given) before ``down`` signals what is left.
    shutdown: Callable[[SandboxSettings, dict[str, Any]], None] | None = None

    def url(self, settings: SandboxSettings, port: int) -> str:
        return self.endpoint(settings, port) if self.endpoint else settings.url_for_port(port)


def load(name: str) -> Component:
    component = importlib.import_module(COMPONENT_MODULES[name]).COMPONENT
    assert component.name == name, f"{COMPONENT_MODULES[name]} describes {component.name!r}, not {name!r}"
    assert component.offset == COMPONENT_NAMES.index(name), f"{name}: offset must be its registry position"
    return component


def enabled(settings: SandboxSettings) -> list[Component]:
    return [load(name) for name in settings.components]


def connections_env(settings: SandboxSettings) -> str:
    """``export AIRFLOW_CONN_<ID>=<json>`` lines for every enabled component's connections."""
    from varai_deploy.sandbox.credentials import api_key

    lines = ["# Written by `python -m varai_deploy.sandbox up`: the sandbox's Airflow connections (secrets: 0600)."]
    # The gateway, with the API key a release's security check uses (api_keys.SANDBOX_MERCHANTS).
    gateway = {
        "conn_type": "http",
        "host": settings.host,
        "port": settings.gateway_port,
        "schema": "http",
        "password": api_key(settings, "release-check"),
    }
    lines.append(f"export AIRFLOW_CONN_VARAI_GATEWAY={shlex.quote(json.dumps(gateway, sort_keys=True))}")
    for component in enabled(settings):
        if component.connections is None:
            continue
        port = settings.component_port(component.name)
        for conn_id, conn in component.connections(settings, port).items():
            lines.append(f"export AIRFLOW_CONN_{conn_id.upper()}={shlex.quote(json.dumps(conn, sort_keys=True))}")
    return "\n".join(lines) + "\n"


def read_connections_env(settings: SandboxSettings) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` -> value, as ``airflow.sh`` exports them (for a process that does not source it)."""
    exported = {}
    for line in settings.connections_env_file.read_text().splitlines():
        if line.startswith("export "):
            name, value = line.removeprefix("export ").split("=", 1)
            exported[name] = shlex.split(value)[0]
    return exported


def write_connections_env(settings: SandboxSettings) -> None:
    from varai_deploy.sandbox.state import write_text_atomic

    write_text_atomic(settings.connections_env_file, connections_env(settings))
