"""The sandbox's Cloud SQL: a Cloud SQL Admin API stand-in (``cloudsql_fake``) on offset 11, whose one instance
is the sandbox PostgreSQL and which exports to the sandbox's GCS.

``prepare`` writes ``<home>/cloudsql/config.json`` (0600): the instance (project ``varai-sandbox``, instance
``varai-sql``, the first sandbox region, the PostgreSQL major of the installed server), the cluster's address
and superuser password (the sandbox credential ``postgres_password``), the PostgreSQL programs and the storage
emulator's URL. Airflow gets it as the connection ``varai_cloudsql``: conn_type ``google_cloud_platform``,
anonymous, ``api_endpoint`` this stand-in, ``project``, ``instance`` and ``poll_interval`` (seconds between
looks at an operation: the stand-in's take about a second, Cloud SQL's minutes). Production's has the same
fields without ``api_endpoint`` and with real credentials, so ``varai_deploy.hooks.cloud_sql`` cannot tell
them apart.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from varai_deploy.sandbox import postgres
from varai_deploy.sandbox.cloudsql_fake import VERSION, config_file, state_dir
from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.credentials import secret
from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.processes import Marker, http_status, stand_in_marker
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.state import write_text_atomic
from varai_deploy.sandbox.storage import PROJECT

MODULE = "varai_deploy.sandbox.cloudsql_fake"
CONN_ID = "varai_cloudsql"
INSTANCE = "varai-sql"
POLL_INTERVAL = 1
PROGRAMS = ("pg_dump", "psql")


def marker(settings: SandboxSettings, port: int) -> Marker:
    return stand_in_marker(MODULE, settings, port)


def instance_path() -> str:
    return f"/sql/{VERSION}/projects/{PROJECT}/instances/{INSTANCE}"


def database_version() -> str:
    """``POSTGRES_<major>`` of the installed server, as Cloud SQL names the instance's version."""
    out = subprocess.run(
        [str(postgres.bindir() / "postgres"), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    found = re.search(r"\(PostgreSQL\) (\d+)", out)
    if found is None:
        raise SandboxError(f"cannot tell the PostgreSQL version from {out.strip()!r}")
    return f"POSTGRES_{found.group(1)}"


def prepare(settings: SandboxSettings, port: int) -> None:
    """The stand-in's config (rewritten each time: it follows the credentials file and the ports)."""
    state_dir(settings.home).mkdir(mode=0o700, parents=True, exist_ok=True)
    config = {
        "project": PROJECT,
        "instance": INSTANCE,
        "region": settings.regions[0],
        "database_version": database_version(),
        "host": settings.host,
        "port": settings.component_port("postgres"),
        "user": postgres.USER,
        "password": secret(settings, "postgres_password"),
        "bindir": str(postgres.bindir()),
        "storage_url": settings.component_url("storage"),
    }
    write_text_atomic(config_file(settings.home), json.dumps(config, indent=2) + "\n")


def ready(settings: SandboxSettings, port: int) -> bool:
    """It answers ``instances.get`` for its instance (which needs neither PostgreSQL nor storage)."""
    return http_status(settings.host, port, instance_path()) == 200


def connections(settings: SandboxSettings, port: int) -> dict[str, dict[str, Any]]:
    extra = {
        "is_anonymous": True,
        "project": PROJECT,
        "api_endpoint": settings.url_for_port(port),
        "instance": INSTANCE,
        "poll_interval": POLL_INTERVAL,
    }
    return {CONN_ID: {"conn_type": "google_cloud_platform", "extra": extra}}


def check_installed(settings: SandboxSettings) -> None:
    bindir = postgres.bindir()
    missing = [p for p in PROGRAMS if not (bindir / p).is_file()]
    if missing:
        raise SandboxError(f"the sandbox Cloud SQL needs {', '.join(missing)} in {bindir}: {postgres.INSTALL_HINT}")


COMPONENT = Component(
    name="cloudsql",
    offset=11,
    marker=marker,
    ready=ready,
    prepare=prepare,
    connections=connections,
    check_installed=check_installed,
    start_timeout=15.0,
)
