"""Phase 1 of the guide: checks that fail fast, before anything is changed, saying what to fix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from varai_deploy.config import (
    ConfigError,
    check_environment,
    check_services,
    check_version,
    load_environment,
)

if TYPE_CHECKING:
    from varai_deploy.config import EnvironmentConfig


class ValidationError(ConfigError):
    pass


def check_request(version: Any, environment: Any, services: Any) -> dict:
    """The release request, checked again at run time (params can also arrive by API or CLI)."""
    check_version(version)
    env = load_environment(check_environment(environment))
    chosen = check_services(services, allowed=env.services)
    return {"version": version, "environment": env.name, "services": list(chosen)}


def check_prerequisites(env: EnvironmentConfig) -> dict[str, str]:
    """Tools and versions the run needs are present: the terraform the release will run, not any on PATH."""
    from varai_deploy.hooks.terraform import TerraformError, TerraformHook, find_terraform, parse_version

    found: dict[str, str] = {}
    minimum = env.prerequisites.get("terraform")
    try:
        binary = find_terraform(env.terraform.binary)
        with TerraformHook(env.terraform.module, binary=binary) as hook:
            version = hook.version()
    except TerraformError as exc:
        raise ValidationError(f"prerequisite terraform: {exc}") from exc
    if minimum and version < parse_version(minimum):
        raise ValidationError(
            f"prerequisite terraform: {binary} is {'.'.join(map(str, version))}, this environment needs >= {minimum}"
        )
    found["terraform"] = f"{'.'.join(map(str, version))} ({binary})"
    return found


def check_credentials(env: EnvironmentConfig, marketplaces: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Every Airflow Connection this release goes through exists, and those that authenticate carry their
    secret (values are never logged): the gateway, metrics and ledger always, the platform's (Cloud Run's
    Google connection), plus each chosen marketplace's."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError

    from varai_deploy.widgets.channels import ROLES, SECRET_ROLES

    secret_roles = {
        **SECRET_ROLES,
        "ledger": "the ledger's database password",
        "gateway": "the widget API key the release checks the gateway's search and security with",
    }
    platform = ["cloud_run"] if env.platform == "cloudrun" else []
    roles = dict.fromkeys(
        ["gateway", "metrics", "ledger", *platform, *(role for channel in marketplaces for role in ROLES[channel])]
    )
    present, missing = {}, []
    for role in roles:
        conn_id = env.connections[role]
        try:
            conn = BaseHook.get_connection(conn_id)
        except (AirflowNotFoundException, AirflowRuntimeError):
            missing.append(f"{conn_id!r} ({role})")
            continue
        if role in secret_roles and not conn.password:
            missing.append(f"{conn_id!r} ({role}) has no password: {secret_roles[role]}")
            continue
        present[role] = f"{conn_id} ({conn.conn_type})"
    if missing:
        raise ValidationError(
            f"missing Airflow connection(s) for {env.name}: {', '.join(missing)}. Create them with "
            "`./airflow.sh connections add <conn_id> --conn-uri ...` or in the UI under Admin > Connections"
            + ("; in the sandbox, `make sandbox-up` writes them" if env.platform == "local" else "")
        )
    return present


def check_resources(env: EnvironmentConfig, services: list[str]) -> dict[str, Any]:
    """The platform can take the candidates (the sandbox: running, ports free), and the metric
    source the release is judged on answers."""
    from varai_deploy.platforms import PlatformError, get_platform

    try:
        checked = get_platform(env).check_capacity(services)
    except PlatformError as exc:
        raise ValidationError(str(exc)) from exc
    from varai_deploy.hooks.prometheus import PrometheusHook

    metrics = PrometheusHook(env.metrics_conn_id)
    if not metrics.ready():
        raise ValidationError(
            f"Prometheus is not answering at {metrics.url} (connection {env.metrics_conn_id!r}): the release "
            "could not be judged after its switch"
            + (". Restart the sandbox with `make sandbox-up`" if env.platform == "local" else "")
        )
    return {**checked, "metrics": metrics.url}


def check_promotion(
    env: EnvironmentConfig, version: str, services: list[str], marketplaces: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Where ``env.promoted_from`` says so (production: staging), the version passed there first:
    every service of the release served it there, with an image digest, and passed its analysis
    (each candidate here must resolve to that digest: :class:`DeployCandidateOperator`), and, when the release
    publishes widgets, they build byte-identical to the build recorded there (its manifest digest).
    Returns what the release rests on; otherwise refuses, naming everything missing."""
    if not env.promoted_from:
        return {}
    import tempfile
    from pathlib import Path

    from varai_deploy.ledger import PASSED, WIDGETS_BUILT, LedgerError, ledger_for
    from varai_deploy.widgets import build_release

    source = env.promoted_from
    try:
        ledger = ledger_for(load_environment(source))
        records = {service: ledger.revision(service, version) for service in services}
        builds = ledger.audit(action=WIDGETS_BUILT, version=version) if marketplaces else []
    except (ConfigError, LedgerError) as exc:
        raise ValidationError(f"{source}'s ledger, which {env.name} releases rest on, cannot be read: {exc}") from exc
    problems, passed = [], {}
    for service, record in records.items():
        if record is None:
            problems.append(f"{service} {version} was never deployed to {source}")
        elif record.verdict != PASSED or record.served_at is None:
            why = f": {record.reason}" if record.reason else ""
            problems.append(f"{service} {version} did not pass on {source} ({record.verdict}{why})")
        elif not record.digest:
            problems.append(f"{source} kept no image digest of {service} {version}: no proof of the same image")
        else:
            passed[service] = {"run_id": record.run_id, "image": record.image, "digest": record.digest}
    widgets: dict[str, str] = {}
    if marketplaces:
        with tempfile.TemporaryDirectory(prefix="varai-promotion-") as tmp:
            digest = build_release(version, Path(tmp) / "build").digest()
        recorded = builds[-1]["detail"].get("manifest") if builds else None
        if recorded is None:
            problems.append(f"{source} never built the widgets of {version}")
        elif recorded != digest:
            problems.append(f"the widgets of {version} build as {digest} here, not as {source} built them ({recorded})")
        else:
            widgets = {"manifest": digest, "run_id": builds[-1]["run_id"]}
    if problems:
        raise ValidationError(f"{version} cannot go to {env.name} before it passed {source}: " + "; ".join(problems))
    return {"from": source, "services": passed, "widgets": widgets}
