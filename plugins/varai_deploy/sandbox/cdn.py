"""The sandbox's CDN: serves the storage emulator's widget bucket over HTTP at the guide's public paths.

``public_url`` of the ``varai_cdn`` connection points here, so the URLs a release reports are the
ones a merchant's browser (and the release's own consumer-side check) loads.
"""

from __future__ import annotations

from varai_deploy.sandbox.cdn_server import HEALTH_PATH
from varai_deploy.sandbox.components import Component
from varai_deploy.sandbox.processes import Marker, http_status, stand_in_marker
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.storage import BUCKET

MODULE = "varai_deploy.sandbox.cdn_server"


def marker(settings: SandboxSettings, port: int) -> Marker:
    storage = ("--storage", settings.component_url("storage"))
    return stand_in_marker(MODULE, settings, port, storage, ("--bucket", BUCKET))


def ready(settings: SandboxSettings, port: int) -> bool:
    return http_status(settings.host, port, HEALTH_PATH) == 200


COMPONENT = Component(name="cdn", offset=1, marker=marker, ready=ready)
