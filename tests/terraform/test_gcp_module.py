"""include/terraform/gcp, the staging and production module, checked without its provider.

The google provider cannot be downloaded here, so ``terraform init``/``validate`` cannot run on the
module. It is checked instead with the project's pinned Terraform 1.0.3 (``fmt``, and the files that
need no provider, variables.tf and locals.tf, evaluated for real) and through its parsed HCL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from varai_deploy.config import REPO_ROOT, AnalysisPolicy, TerraformConfig, check_version, load_environment
from varai_deploy.hooks.terraform import find_terraform
from varai_deploy.operators.terraform import release_variables, terraform_for
from varai_deploy.services import SERVICE_NAMES, SERVICES

MODULE = REPO_ROOT / "include" / "terraform" / "gcp"
ENVIRONMENTS = ("staging", "production")
PROJECT, REGION = "ml-datadriven-recos", "us-central1"

#: The deployment guide, "Alerting": critical (service down, high error rate) and warning (high
#: response time, resource usage); info events are the release's own notifications.
GUIDE_ALERTS = {
    ("critical", "service-down"),
    ("critical", "high-error-rate"),
    ("warning", "high-response-time"),
    ("warning", "resource-usage"),
}
#: The guide's key metric: API calls under 2 s at p95 (Cloud Run reports latencies in milliseconds).
GUIDE_P95_MS = 2000

#: Plain strings, no ``__is_block__`` markers or comments: blocks are lists of dicts, as Terraform's JSON has them.
_PLAIN = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True, preserve_heredocs=False
)


def parse(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text(), serialization_options=_PLAIN)


@pytest.fixture(scope="module")
def module() -> dict[str, Any]:
    """Every .tf file, merged: resources and data sources by (type, name), variables, outputs, locals."""
    merged: dict[str, Any] = {"resource": {}, "data": {}, "variable": {}, "output": {}, "locals": {}}
    merged["terraform"], merged["provider"] = [], []
    files = sorted(MODULE.glob("*.tf"))
    assert files, f"no .tf files in {MODULE}"
    for path in files:
        parsed = parse(path)
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        assert (rtype, name) not in merged[kind], f"{rtype}.{name} declared twice"
                        merged[kind][(rtype, name)] = body
        for kind in ("variable", "output"):
            for block in parsed.get(kind, []):
                merged[kind].update(block)
        for block in parsed.get("locals", []):
            merged["locals"].update(block)
        merged["terraform"] += parsed.get("terraform", [])
        merged["provider"] += parsed.get("provider", [])
    return merged


def resources(module: dict, rtype: str) -> dict[str, dict]:
    return {name: body for (kind, name), body in module["resource"].items() if kind == rtype}


def resource(module: dict, rtype: str, name: str) -> dict:
    assert (rtype, name) in module["resource"], f"no resource {rtype}.{name}"
    return module["resource"][(rtype, name)]


def block(body: dict, name: str) -> dict:
    """A nested block that occurs once (HCL's JSON form makes every block a list)."""
    found = body.get(name)
    assert isinstance(found, list) and len(found) == 1, f"expected one {name} block, found {found!r}"
    return found[0]


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (attribute name, value) at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def resolve_list(module: dict, expression: str) -> list[str]:
    """``${toset(local.x)}`` or ``${local.x}``: the local's list."""
    match = re.fullmatch(r"\$\{(?:toset\()?local\.(\w+)\)?\}", expression)
    assert match, f"cannot resolve {expression!r}: use a literal or a local list"
    return module["locals"][match.group(1)]


def roles_of(module: dict, rtype: str, member: str) -> list[tuple[str, dict]]:
    """(role, binding) for every binding of ``rtype`` that gives ``member`` a role."""
    found = []
    for body in resources(module, rtype).values():
        if body["member"] != member:
            continue
        role = body["role"]
        if role == "${each.value}":
            found += [(r, body) for r in resolve_list(module, body["for_each"])]
        else:
            found.append((role, body))
    return found


# -- real terraform, the pinned one ---------------------------------------------------------------


def terraform(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
        "TF_DATA_DIR": str(workdir / ".terraform"),
    }
    return subprocess.run(
        [find_terraform(), f"-chdir={workdir}", *args], env=env, capture_output=True, text=True, check=False
    )


#: What the evaluation reads back: the locals the release's outputs are made of.
PROBE = """
output "images" { value = local.images }
output "url_map" { value = local.url_map }
output "run_service_names" { value = local.run_service_names }
output "image_repository" { value = local.image_repository }
"""


@pytest.fixture
def evaluate(tmp_path):
    """Apply the module's provider-free files (variables.tf, locals.tf) with real terraform: (result, outputs)."""
    assert set(parse(MODULE / "locals.tf")) == {"locals"}, "locals.tf must hold only locals (no provider needed)"
    workdir = tmp_path / "gcp-locals"
    workdir.mkdir()
    for name in ("variables.tf", "locals.tf"):
        shutil.copy(MODULE / name, workdir / name)
    (workdir / "probe.tf").write_text(PROBE)
    init = terraform(workdir, "init", "-input=false", "-no-color")
    assert init.returncode == 0, init.stderr

    def run(*args: str) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
        result = terraform(workdir, "apply", "-input=false", "-no-color", "-auto-approve", *args)
        if result.returncode != 0:
            return result, {}
        outputs = json.loads(terraform(workdir, "output", "-json").stdout)
        return result, {name: item["value"] for name, item in outputs.items()}

    return run


def test_the_module_is_formatted_as_the_pinned_terraform_formats_it():
    version = subprocess.run([find_terraform(), "version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("Terraform v1.0.3"), version
    result = subprocess.run(
        [find_terraform(), "fmt", "-check", "-recursive", "-diff", str(MODULE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_google_provider_is_pinned_and_state_is_in_gcs(module):
    (settings,) = module["terraform"]
    google = block(settings, "required_providers")["google"]
    assert google["source"] == "hashicorp/google"
    assert google["version"].startswith("~>"), "the provider needs an upper bound: a new major version is a review"
    # Partial configuration: bucket and prefix come from backends/<env>.gcs.tfbackend or the release.
    assert settings["backend"] == [{"gcs": {}}]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_environment_has_its_state_where_the_release_looks_for_it(environment):
    backend = parse(MODULE / "backends" / f"{environment}.gcs.tfbackend")
    assert set(backend) == {"bucket", "prefix"}
    # The release's terraform task with the environment's state bucket and no explicit prefix.
    env = SimpleNamespace(
        name=environment,
        terraform=TerraformConfig(module=MODULE, backend="gcs", state_bucket=backend["bucket"]),
    )
    with terraform_for(env) as hook:
        assert hook.backend_config == backend


def test_staging_and_production_never_share_a_state():
    prefixes = {parse(MODULE / "backends" / f"{env}.gcs.tfbackend")["prefix"] for env in ENVIRONMENTS}
    assert len(prefixes) == len(ENVIRONMENTS)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_tfvars_names_its_environment_in_the_guides_project_and_region(environment, evaluate):
    tfvars = MODULE / f"{environment}.tfvars"
    assert parse(tfvars) == {"environment": environment, "project_id": PROJECT, "region": REGION}
    result, outputs = evaluate(f"-var-file={tfvars}")
    assert result.returncode == 0, result.stderr
    assert outputs["images"] == {}, "a hand run without release_version names no images"
    assert outputs["run_service_names"] == {name: f"{name}-{environment}" for name in SERVICE_NAMES}


def test_cloud_run_services_are_the_projects_services(module):
    (_name, service), *others = resources(module, "google_cloud_run_v2_service").items()
    assert not others, "one for_each resource makes every service"
    assert service["for_each"] == "${var.services}"
    default = module["variable"]["services"]["default"]
    assert list(default) == list(SERVICE_NAMES)
    for svc, route in default.items():
        assert route == {"prefix": SERVICES[svc].prefix, "health_path": SERVICES[svc].health_path}, svc


def test_terraform_never_deploys_a_release_or_moves_traffic(module):
    for name, service in resources(module, "google_cloud_run_v2_service").items():
        ignored = set(block(service, "lifecycle")["ignore_changes"])
        assert {"template", "traffic", "client", "client_version"} <= ignored, name
        # Created with the placeholder, never with a release image.
        (container,) = block(service, "template")["containers"]
        assert container["image"] == "${local.placeholder_image}", name
        assert "release_version" not in json.dumps(service), name
    placeholder = module["locals"]["placeholder_image"]
    assert "${" not in placeholder and "/varai/" not in placeholder, placeholder


def test_services_and_the_database_survive_a_mistaken_destroy(module):
    for name, service in resources(module, "google_cloud_run_v2_service").items():
        assert service["deletion_protection"] is True, name
    sql = resource(module, "google_sql_database_instance", "main")
    assert sql["deletion_protection"] is True
    assert block(sql, "lifecycle")["prevent_destroy"] is True


def test_images_live_in_the_varai_repository_of_the_region(module, evaluate):
    assert module["locals"]["repository_id"] == "varai"
    repository = resource(module, "google_artifact_registry_repository", "varai")
    assert (repository["repository_id"], repository["format"], repository["location"]) == (
        "${local.repository_id}",
        "DOCKER",
        "${var.region}",
    )
    pattern = module["locals"]["image_repository"].replace("${local.repository_id}", module["locals"]["repository_id"])
    assert pattern == "${var.region}-docker.pkg.dev/${var.project_id}/varai"

    result, outputs = evaluate("-var=environment=staging", "-var=release_version=v1.4.2")
    assert result.returncode == 0, result.stderr
    assert outputs["image_repository"] == f"{REGION}-docker.pkg.dev/{PROJECT}/varai"
    assert outputs["images"] == {
        name: f"{REGION}-docker.pkg.dev/{PROJECT}/varai/{name}:v1.4.2" for name in SERVICE_NAMES
    }
    assert outputs["url_map"] == {(svc.prefix or "/"): name for name, svc in SERVICES.items()}


def test_the_module_takes_every_variable_the_release_passes(module, evaluate, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_GATEWAY", '{"conn_type": "http", "host": "127.0.0.1", "port": 18080}')
    passed = release_variables(load_environment("sandbox"), "v1.5.0-rc.1") | {"environment": "staging"}
    declared = module["variable"]
    assert set(passed) <= set(declared), "terraform only warns about an undeclared variable: declare it"
    required = {name for name, var in declared.items() if "default" not in var}
    assert required <= set(passed), "a variable the release does not pass needs a default"

    var_file = tmp_path / "release.tfvars.json"
    var_file.write_text(json.dumps(passed))
    result, outputs = evaluate(f"-var-file={var_file}")
    assert result.returncode == 0, result.stderr
    assert set(outputs["images"]) == set(passed["services"])
    assert {"images", "url_map", "gateway_url", "release_version"} <= set(module["output"])


@pytest.mark.parametrize("version", ["v1.4.2", "v1.5.0-rc.1", "v10.0.0-beta", "1.4.2", "v1.4", "v01.4.2", "v1.4.2+x"])
def test_release_versions_are_judged_as_the_release_judges_them(version, evaluate):
    try:
        accepted_by_release = check_version(version) == version
    except ValueError:
        accepted_by_release = False
    result, _ = evaluate("-var=environment=production", f"-var=release_version={version}")
    assert (result.returncode == 0) is accepted_by_release, result.stderr
    if not accepted_by_release:
        assert "must be a semver tag" in result.stderr


def test_an_environment_other_than_staging_or_production_is_refused(evaluate):
    result, _ = evaluate("-var=environment=sandbox")
    assert result.returncode != 0
    assert "must be staging or production" in result.stderr


def test_every_variable_and_output_says_what_it_is(module):
    for kind in ("variable", "output"):
        assert module[kind], kind
        for name, body in module[kind].items():
            assert str(body.get("description", "")).strip(), f"{kind} {name} has no description"


def test_cloud_sql_keeps_backups_and_point_in_time_recovery(module):
    sql = resource(module, "google_sql_database_instance", "main")
    assert sql["database_version"].startswith("POSTGRES_")
    settings = block(sql, "settings")
    backups = block(settings, "backup_configuration")
    assert backups["enabled"] is True
    assert backups["point_in_time_recovery_enabled"] is True
    assert backups["transaction_log_retention_days"] >= 1
    # The guide: daily backups kept 30 days.
    assert block(backups, "backup_retention_settings") == {"retained_backups": 30, "retention_unit": "COUNT"}
    assert block(settings, "ip_configuration")["ipv4_enabled"] is False


def test_redis_and_the_vpc_connector_sit_on_the_environments_network(module):
    redis = resource(module, "google_redis_instance", "cache")
    assert redis["authorized_network"] == "${google_compute_network.main.id}"
    connector = resource(module, "google_vpc_access_connector", "main")
    assert connector["network"] == "${google_compute_network.main.name}"
    for name, service in resources(module, "google_cloud_run_v2_service").items():
        access = block(block(service, "template"), "vpc_access")
        assert access["connector"] == "${google_vpc_access_connector.main.id}", name


def test_no_secret_value_is_ever_declared(module):
    assert resources(module, "google_secret_manager_secret"), "the secrets' names are declared"
    for kind in ("resource", "data"):
        kinds = {rtype for rtype, _ in module[kind]}
        assert "google_secret_manager_secret_version" not in kinds, kind
        assert "google_sql_user" not in kinds, "a SQL user's password would be kept in the state"
    for path in sorted(MODULE.rglob("*.tf")) + sorted(MODULE.rglob("*.tfvars")):
        keys = {key for key, _ in walk(parse(path))}
        assert not keys & {"secret_data", "password"}, path.name


def test_the_cdn_bucket_is_served_over_https_by_cloud_cdn(module):
    backend = resource(module, "google_compute_backend_bucket", "cdn")
    assert backend["enable_cdn"] is True
    assert backend["bucket_name"] == "${google_storage_bucket.cdn.name}"
    url_map = resource(module, "google_compute_url_map", "cdn")
    assert url_map["default_service"] == "${google_compute_backend_bucket.cdn.id}"
    proxy = resource(module, "google_compute_target_https_proxy", "cdn")
    assert proxy["url_map"] == "${google_compute_url_map.cdn.id}"
    assert proxy["ssl_certificates"] == ["${google_compute_managed_ssl_certificate.cdn.id}"]
    https = resource(module, "google_compute_global_forwarding_rule", "cdn_https")
    assert (https["target"], https["port_range"]) == ("${google_compute_target_https_proxy.cdn.id}", "443")


def test_alert_policies_cover_the_guides_critical_and_warning_alerts(module):
    policies = resources(module, "google_monitoring_alert_policy")
    labelled = {}
    for name, policy in policies.items():
        labels = policy["user_labels"]
        assert policy["severity"] == labels["severity"].upper(), name
        assert policy["notification_channels"], f"{name} notifies nobody"
        labelled[(labels["severity"], labels["alert"])] = policy
    assert set(labelled) >= GUIDE_ALERTS


def test_critical_alerts_fire_at_the_guides_rollback_triggers(module):
    triggers = AnalysisPolicy()  # the guide's production rollback triggers

    error_rate = block(resource(module, "google_monitoring_alert_policy", "high_error_rate"), "conditions")
    threshold = block(error_rate, "condition_threshold")
    assert 'response_code_class = "5xx"' in threshold["filter"]
    assert threshold["denominator_filter"], "a rate: 5xx over all requests"
    assert threshold["threshold_value"] == triggers.error_rate_threshold
    assert threshold["duration"] == f"{triggers.error_rate_for_seconds}s"

    down = block(resource(module, "google_monitoring_alert_policy", "service_down"), "conditions")
    threshold = block(down, "condition_threshold")
    period = int(block(threshold, "aggregations")["alignment_period"].removesuffix("s"))
    assert int(threshold["duration"].removesuffix("s")) == triggers.health_failures * period
    checks = resource(module, "google_monitoring_uptime_check_config", "health")
    assert checks["for_each"] == "${var.services}"
    assert block(checks, "http_check")["path"] == "${each.value.health_path}"
    assert checks["period"] == f"{period}s"


def test_the_response_time_warning_uses_the_guides_p95(module):
    slow = block(resource(module, "google_monitoring_alert_policy", "high_response_time"), "conditions")
    threshold = block(slow, "condition_threshold")
    assert "run.googleapis.com/request_latencies" in threshold["filter"]
    assert block(threshold, "aggregations")["cross_series_reducer"] == "REDUCE_PERCENTILE_95"
    assert threshold["threshold_value"] == GUIDE_P95_MS


def test_the_deploy_account_gets_what_the_release_uses_and_no_more(module):
    deploy = "${local.deploy_member}"
    project_roles = {role for role, _ in roles_of(module, "google_project_iam_member", deploy)}
    assert {"roles/run.developer", "roles/cloudsql.client", "roles/monitoring.viewer"} <= project_roles
    broad = {"roles/owner", "roles/editor", "roles/iam.serviceAccountUser", "roles/storage.objectAdmin"}
    assert not project_roles & broad, "project-wide: grant these on the one account or bucket instead"
    assert not [r for r in project_roles if r.endswith(".admin")], project_roles

    acts_as = roles_of(module, "google_service_account_iam_member", deploy)
    assert [(r, b["service_account_id"]) for r, b in acts_as] == [
        ("roles/iam.serviceAccountUser", "${google_service_account.runtime.name}")
    ]
    assert [r for r, _ in roles_of(module, "google_artifact_registry_repository_iam_member", deploy)] == [
        "roles/artifactregistry.reader"
    ]
    (bucket_binding,) = (b for r, b in roles_of(module, "google_storage_bucket_iam_member", deploy))
    assert bucket_binding["role"] == "roles/storage.objectAdmin"
    assert {"cdn", "backups"} <= set(bucket_binding["for_each"])

    secrets = resource(module, "google_secret_manager_secret_iam_member", "accessor")
    assert secrets["role"] == "roles/secretmanager.secretAccessor"
    assert "deploy" in set(module["locals"]["secrets"].values())

    custom = resource(module, "google_project_iam_custom_role", "database_backup")
    assert all(p.startswith("cloudsql.") for p in custom["permissions"])
