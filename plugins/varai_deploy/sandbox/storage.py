"""The sandbox's GCS: the storage emulator, its buckets for the widget CDN, database backups and
reports (DR drills), and their connections ``varai_cdn``, ``varai_backups`` and ``varai_reports``.

The release publishes the HTML widget into bucket ``varai-widgets`` through ``CdnHook`` exactly as
in production; only the connection differs (anonymous, ``api_endpoint`` pointing here). The CDN
component (cdn.py) serves the same bucket to browsers.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.processes import Marker, http_status, stand_in_marker
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.storage_server import data_dir

MODULE = "varai_deploy.sandbox.storage_server"
BUCKET = "varai-widgets"
BACKUP_BUCKET = "varai-backups"
REPORTS_BUCKET = "varai-reports"
#: Staging's widget bucket (the ``staging`` component's load balancer serves it).
STAGING_BUCKET = "varai-widgets-staging"
BUCKETS = (BUCKET, BACKUP_BUCKET, REPORTS_BUCKET, STAGING_BUCKET)
PROJECT = "varai-sandbox"
CONN_ID = "varai_cdn"
COMPOSER_CONN_ID = "varai_composer"
BACKUP_CONN_ID = "varai_backups"
REPORTS_CONN_ID = "varai_reports"


def marker(settings: SandboxSettings, port: int) -> Marker:
    buckets = (("--bucket", name) for name in BUCKETS)
    return stand_in_marker(MODULE, settings, port, *buckets)


def ready(settings: SandboxSettings, port: int) -> bool:
    """Answering, with the buckets created."""
    return all(http_status(settings.host, port, f"/storage/v1/b/{b}") == 200 for b in BUCKETS)


def prepare(settings: SandboxSettings, port: int) -> None:
    data_dir(settings.home).mkdir(parents=True, exist_ok=True)


def connections(settings: SandboxSettings, port: int) -> dict[str, dict[str, Any]]:
    extra = {
        "is_anonymous": True,
        "project": PROJECT,
        "api_endpoint": settings.url_for_port(port),
        "bucket": BUCKET,
        "public_url": settings.component_url("cdn"),
    }
    cdn = {"conn_type": "google_cloud_platform", "extra": extra}
    # The Composer repository is a static one in the same bucket, under composer/ (production may
    # give it its own bucket and domain through its own connection).
    backups = {"is_anonymous": True, "project": PROJECT, "api_endpoint": extra["api_endpoint"], "bucket": BACKUP_BUCKET}
    return {
        CONN_ID: cdn,
        COMPOSER_CONN_ID: {**cdn, "extra": {**extra, "prefix": "composer"}},
        BACKUP_CONN_ID: {"conn_type": "google_cloud_platform", "extra": backups},
        REPORTS_CONN_ID: {"conn_type": "google_cloud_platform", "extra": {**backups, "bucket": REPORTS_BUCKET}},
    }


def check_installed(settings: SandboxSettings) -> None:
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        raise SandboxError(
            "the sandbox storage needs the gcp-storage-emulator package in the venv: "
            "`.venv/bin/pip install -r requirements.txt` (or `make setup`)"
        )


COMPONENT = Component(
    name="storage",
    offset=0,
    marker=marker,
    ready=ready,
    prepare=prepare,
    connections=connections,
    check_installed=check_installed,
)
