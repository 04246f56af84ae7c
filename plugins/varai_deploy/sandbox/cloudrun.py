"""The sandbox's Cloud Run: a Cloud Run Admin API v2 stand-in (``cloudrun_fake``) on offset 12 whose revisions are
real service processes, so staging's release path (``CloudRunPlatform``) runs for real on one machine.

Airflow gets it as the connection ``varai_cloudrun``: conn_type ``google_cloud_platform``, extras ``project``
(``ml-datadriven-recos``), ``location`` (``us-central1``), ``api_endpoint`` this stand-in, and ``keyfile_dict`` the
deploy account's key (``google_identity``; its ``token_uri`` this stand-in's ``/token``), which is what
``varai_deploy.hooks.cloud_run`` reads. Production's has the same fields without ``api_endpoint`` (and a key from
the secrets backend, or none: the machine's own account), so the hook cannot tell them apart.

The revision processes are detached and outlive the stand-in (a restart keeps them serving, as Cloud Run's
instances outlive its control plane); ``down`` stops them through ``shutdown`` before it stops the stand-in.
"""

from __future__ import annotations

import json
from typing import Any

from varai_deploy.sandbox.cloudrun_fake import LOCATION, PROJECT, TOKEN_PATH, VERSION, state_dir, stop_revisions
from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.processes import Marker, http_status, stand_in_marker
from varai_deploy.sandbox.settings import SandboxSettings

MODULE = "varai_deploy.sandbox.cloudrun_fake"
CONN_ID = "varai_cloudrun"


def marker(settings: SandboxSettings, port: int) -> Marker:
    return stand_in_marker(MODULE, settings, port)


def services_path() -> str:
    return f"/{VERSION}/projects/{PROJECT}/locations/{LOCATION}/services"


def prepare(settings: SandboxSettings, port: int) -> None:
    state_dir(settings.home).mkdir(mode=0o700, parents=True, exist_ok=True)


def ready(settings: SandboxSettings, port: int) -> bool:
    """It answers ``services.list``."""
    return http_status(settings.host, port, services_path()) == 200


def connections(settings: SandboxSettings, port: int) -> dict[str, dict[str, Any]]:
    """The deploy account's key (its token endpoint this stand-in's), so the Admin API is called with OAuth
    access tokens and health probes carry ID tokens, minted by google-auth as against Google."""
    from varai_deploy.sandbox.google_identity import service_account_info

    url = settings.url_for_port(port)
    extra = {
        "project": PROJECT,
        "location": LOCATION,
        "api_endpoint": url,
        "keyfile_dict": json.dumps(service_account_info(settings.home, url + TOKEN_PATH)),
    }
    return {CONN_ID: {"conn_type": "google_cloud_platform", "extra": extra}}


def shutdown(settings: SandboxSettings, record: dict[str, Any]) -> None:
    """Stop the revisions' processes (the stand-in itself is stopped by ``down`` afterwards)."""
    stop_revisions(settings.home)


COMPONENT = Component(
    name="cloudrun",
    offset=12,
    marker=marker,
    ready=ready,
    prepare=prepare,
    connections=connections,
    shutdown=shutdown,
    start_timeout=15.0,
)
