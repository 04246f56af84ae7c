"""Staging in the sandbox: ``include/environments/staging.yaml`` released for real through ``CloudRunPlatform``
against the local Cloud Run, with nothing but Connections pointing elsewhere.

What ``up`` provides for it (component ``staging``, offset 13, after ``cloudrun``):

- the load balancer (``load_balancer``), staging's public address: its URL map sends ``/widgets/`` to the
  staging widget bucket and every other path to the ``{service}-staging`` Cloud Run service owning its prefix,
  past the API gateway's checks toward the widget (edge.py; policy and keys in ``<home>/staging/gateway/``);
  with staging's shoppers (``staging_traffic_rps``) whose requests the analysis judges;
- the five ``{service}-staging`` services on the local Cloud Run, created once at ``BASELINE`` as
  include/terraform/gcp creates them before staging's first release;
- staging's Connections (``varai_staging_*``): Google's, pointing at the local Cloud Run, the storage emulator
  and Cloud SQL stand-in; the sandbox Prometheus (scraping the local Cloud Run's request metrics) as Managed
  Service for Prometheus; the sandbox's PostgreSQL as Cloud SQL; Verdaccio as Artifact Registry's npm;
- ``<home>/environments/``: the shipped environment files, staging's with the sandbox's provider-free Terraform
  module (hashicorp/google cannot be fetched here; it names the same Artifact Registry images) and the
  sandbox's short release windows; ``make demo ENVIRONMENT=staging`` reads them (``VARAI_ENVIRONMENTS_DIR``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from varai_deploy.sandbox.cdn_server import HEALTH_PATH
from varai_deploy.sandbox.cloudrun_fake import LOCATION, PROJECT
from varai_deploy.sandbox.components import Component, load
from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.processes import Marker, http_status, stand_in_marker
from varai_deploy.sandbox.settings import SandboxSettings
from varai_deploy.sandbox.state import write_text_atomic
from varai_deploy.sandbox.storage import STAGING_BUCKET as BUCKET

MODULE = "varai_deploy.sandbox.load_balancer"
SERVICE_NAME = "{service}-staging"
#: The version the services are created at (Terraform's first image), before any release of staging.
BASELINE = "v0.9.0"
IMAGE_REGISTRY = f"{LOCATION}-docker.pkg.dev/{PROJECT}/varai"
NEEDS = ("storage", "postgres", "npm_registry", "cloudsql", "cloudrun")
CREATE_TIMEOUT = 60.0


def environments_dir(settings: SandboxSettings) -> Path:
    return settings.home / "environments"


def marker(settings: SandboxSettings, port: int) -> Marker:
    return stand_in_marker(
        MODULE,
        settings,
        port,
        ("--cloudrun", settings.component_url("cloudrun")),
        ("--service-name", SERVICE_NAME),
        ("--storage", settings.component_url("storage")),
        ("--bucket", BUCKET),
        ("--shoppers-rps", repr(float(settings.staging_traffic_rps))),
    )


def ready(settings: SandboxSettings, port: int) -> bool:
    return http_status(settings.host, port, HEALTH_PATH) == 200


def gateway_dir(home: Path) -> Path:
    return home / "staging" / "gateway"


def prepare(settings: SandboxSettings, port: int) -> None:
    from varai_deploy.config import ConfigError, load_environment
    from varai_deploy.sandbox import credentials, edge

    missing = [name for name in NEEDS if name not in (settings.components or ())]
    if missing:
        raise SandboxError(f"the sandbox's staging needs the component(s) {', '.join(missing)} too")
    try:  # the sandbox's: staging's storefronts here are pages on loopback, without TLS
        policy = load_environment("sandbox").gateway
    except ConfigError as exc:
        raise SandboxError(f"staging's gateway policy: {exc}") from exc
    edge.prepare(gateway_dir(settings.home), policy, lambda m: credentials.api_key(settings, m, "staging"))


def staging_config(staging: dict, sandbox: dict, home: Path) -> dict:
    """The shipped ``staging`` config as the sandbox runs it: its Terraform the sandbox's provider-free module
    naming staging's Artifact Registry images, in a local state every worker on this one machine shares; its
    release and analysis windows the sandbox's (Cloud Run's metric series kept), so a release takes a minute; its
    gateway policy the sandbox's (storefronts on loopback, no TLS)."""
    config = json.loads(json.dumps(staging))
    config["terraform"] = {
        "module": "include/terraform/sandbox",
        "backend": "local",
        "state_path": str(home / "terraform" / "staging" / "terraform.tfstate"),
        "variables": {"image_registry": IMAGE_REGISTRY},
        "outputs": staging["terraform"]["outputs"],
    }
    config["release"] = dict(sandbox["release"])
    config["gateway"] = dict(sandbox["gateway"])
    config["analysis"] = {**sandbox["analysis"], "series": staging["analysis"]["series"]}
    return config


def write_environments(directory: Path, home: Path) -> Path:
    """Every shipped environment file into ``directory``, staging's as :func:`staging_config` has it."""
    import yaml

    from varai_deploy.config import ENVIRONMENTS_DIR

    directory.mkdir(parents=True, exist_ok=True)
    shipped = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(ENVIRONMENTS_DIR.glob("*.yaml"))}
    shipped["staging"] = staging_config(shipped["staging"], shipped["sandbox"], home)
    for name, config in shipped.items():
        write_text_atomic(directory / f"{name}.yaml", yaml.safe_dump(config, sort_keys=False))
    return directory


def after_start(settings: SandboxSettings, port: int) -> None:
    write_environments(environments_dir(settings), settings.home)
    create_services(settings.component_url("cloudrun"))


def create_services(cloudrun: str) -> None:
    """Each ``{service}-staging`` at ``BASELINE``, as Terraform would leave it, unless it exists."""
    import requests

    from varai_deploy.services import SERVICE_NAMES

    parent = f"{cloudrun}/v2/projects/{PROJECT}/locations/{LOCATION}/services"
    made = []
    for service in SERVICE_NAMES:
        sid = SERVICE_NAME.format(service=service)
        if requests.get(f"{parent}/{sid}", timeout=10).status_code == 200:
            continue
        template = {
            "revision": f"{sid}-{BASELINE.replace('.', '-')}",
            "containers": [{"image": f"{IMAGE_REGISTRY}/{service}:{BASELINE}"}],
        }
        # Callable by anyone: the load balancer routes to each service itself (include/terraform/gcp keeps the
        # backends private behind the api-gateway service, which the sandbox's staging does not model).
        body = {"template": template, "invokerIamDisabled": True}
        answer = requests.post(parent, params={"serviceId": sid}, json=body, timeout=10)
        if answer.status_code != 200:
            raise SandboxError(f"the local Cloud Run refused to create {sid}: {answer.status_code} {answer.text[:300]}")
        made.append(sid)
    deadline = time.monotonic() + CREATE_TIMEOUT
    for sid in made:
        while (svc := requests.get(f"{parent}/{sid}", timeout=10).json()).get("reconciling"):
            if time.monotonic() > deadline:
                raise SandboxError(f"the local Cloud Run did not start {sid} within {CREATE_TIMEOUT:g}s")
            time.sleep(0.2)
        if not svc.get("latestReadyRevision"):
            raise SandboxError(f"the local Cloud Run could not start {sid}: {svc.get('terminalCondition')}")


def connections(settings: SandboxSettings, port: int) -> dict[str, dict[str, Any]]:
    from varai_deploy.sandbox import credentials

    def served(component: str, conn_id: str) -> dict[str, Any]:
        return load(component).connections(settings, settings.component_port(component))[conn_id]

    cloud_run = served("cloudrun", "varai_cloudrun")
    cdn = served("storage", "varai_cdn")
    return {
        "varai_staging_gateway": {
            "conn_type": "http",
            "host": settings.url_for_port(port),
            "password": credentials.api_key(settings, "release-check", "staging"),
        },
        "varai_staging_metrics": {"conn_type": "http", "host": settings.prometheus_url},
        "varai_staging_ledger": served("postgres", "varai_ledger"),
        "varai_staging_app_db": served("postgres", "varai_app_db"),
        "varai_staging_gcp": cloud_run,
        "varai_staging_cloudsql": served("cloudsql", "varai_cloudsql"),
        "varai_staging_cdn": {
            **cdn,
            "extra": {**cdn["extra"], "bucket": BUCKET, "public_url": settings.url_for_port(port)},
        },
        "varai_staging_npm": served("npm_registry", "varai_npm"),
        "varai_staging_backups": served("storage", "varai_backups"),
        "varai_staging_reports": served("storage", "varai_reports"),
    }


COMPONENT = Component(
    name="staging",
    offset=13,
    marker=marker,
    ready=ready,
    prepare=prepare,
    after_start=after_start,
    connections=connections,
    start_timeout=15.0,
)


if __name__ == "__main__":  # the environment files the running sandbox's staging is released with
    print(environments_dir(SandboxSettings.current()))
