import re
import textwrap
from pathlib import Path

import pytest

from varai_deploy.config import (
    ENVIRONMENTS_DIR,
    REPO_ROOT,
    ConfigError,
    check_environment,
    check_services,
    check_version,
    load_environment,
)
from varai_deploy.services import SERVICE_NAMES


@pytest.mark.parametrize("version", ["v1.0.0", "v1.4.2", "v10.20.30", "v1.5.0-rc.1", "v2.0.0-beta"])
def test_release_tags_are_accepted(version):
    assert check_version(version) == version


@pytest.mark.parametrize(
    "version",
    [
        "1.0.0",
        "v1.0",
        "v1",
        "v01.0.0",
        "v1.0.0; rm -rf /",
        "v1.0.0 && id",
        "$(id)",
        "v1.0.0\n",
        "",
        None,
        100,
    ],
)
def test_malformed_versions_are_refused_with_the_expected_format(version):
    with pytest.raises(ConfigError, match=r"semver tag such as v1\.4\.2"):
        check_version(version)


def test_unknown_environment_names_the_choices():
    with pytest.raises(ConfigError, match="sandbox, staging, production"):
        check_environment("moon")


def test_services_keep_catalogue_order_and_refuse_unknown_ones():
    assert check_services(["api-gateway", "ai-discovery", "ai-discovery"]) == ("ai-discovery", "api-gateway")
    with pytest.raises(ConfigError, match="unknown service"):
        check_services(["ai-discovery", "billing"])
    with pytest.raises(ConfigError, match="non-empty"):
        check_services([])


def test_sandbox_config_loads_with_every_threshold_typed():
    env = load_environment("sandbox")
    assert env.platform == "local"
    assert env.services == SERVICE_NAMES
    assert env.gateway_conn_id == "varai_gateway"
    assert env.release.health_streak == 3
    assert env.release.health_timeout_seconds >= env.release.health_streak * env.release.health_interval_seconds
    assert env.terraform.module.is_dir()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


BASE = """
name: sandbox
platform: local
connections: {gateway: gw, metrics: m, ledger: l}
terraform: {module: include/terraform/sandbox}
"""


def test_minimal_config_gets_safe_production_defaults(tmp_path):
    env = load_environment("sandbox", _write(tmp_path, "sandbox", BASE))
    assert env.release.health_streak == 3
    assert env.release.bake_seconds == 600


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: staging\n" + BASE.split("\n", 2)[2], "expected 'sandbox'"),
        (BASE.replace("local", "kubernetes"), "platform 'kubernetes'"),
        (BASE.replace("connections: {gateway: gw, metrics: m, ledger: l}", "connections: {}"), "connections.gateway"),
        (BASE.replace(", metrics: m", ""), "connections.metrics"),
        (BASE.replace(", ledger: l", ""), "connections.ledger"),
        (BASE + "analysis: {error_rate_threshold: 5}\n", "between 0 and 1"),
        (BASE + "analysis: {duration_seconds: 60}\n", "each rule's window <= duration_seconds"),
        # The latency rule (600 s) is judged once its rate window (60 s) has passed too: 660 s.
        (BASE + "analysis: {duration_seconds: 630}\n", "(now 660 <= 630 < 1800)"),
        (BASE.replace("include/terraform/sandbox", "include/terraform/nowhere"), "does not exist"),
        (BASE + "release: {health_streak: 0}\n", "health_streak must be at least 1"),
        (
            BASE + "release: {health_streak: 5, health_interval_seconds: 10, health_timeout_seconds: 20}\n",
            "no candidate could ever pass",
        ),
        (BASE + "release: {health_strek: 5}\n", "unexpected keyword argument 'health_strek'"),
        (BASE + "terraform: [\n", "not valid YAML"),
        (BASE + "analysis: {series: {requests: 'rate(x)'}}\n", "analysis.series.requests must be a metric name"),
        (BASE + "analysis: {series: {service_label: 'service name'}}\n", "service_label must be a label name"),
        (BASE + "analysis: {series: {revision_value: tag}}\n", "revision_value must be version or name"),
        (BASE + "analysis: {series: {service_value: staging}}\n", "service_value must contain {service}"),
        (BASE + "analysis: {series: {server_errors: '5xx'}}\n", "server_errors must be one label matcher"),
        (BASE + "analysis: {series: {exclude: 'a=\"b\"} or vector(1)'}}\n", "exclude must be one label matcher"),
        (BASE + "analysis: {series: {latency_unit_seconds: 0}}\n", "latency_unit_seconds must be a positive"),
        (BASE + "analysis: {series: {lables: x}}\n", "analysis.series: .*unexpected keyword argument 'lables'"),
        (BASE + "gateway: {allowed_origins: [shop.example.com]}\n", "allowed_origins has 'shop.example.com': use"),
        (BASE + "gateway: {allowed_origins: ['https://shop.example.com/']}\n", "allowed_origins has"),
        (BASE + "gateway: {allowed_origins: 'https://*'}\n", "gateway.allowed_origins must be a list"),
        (BASE + "gateway: {rate_limit: {requests: 0}}\n", "rate_limit.requests must be a whole number"),
        (
            BASE + "gateway: {rate_limit: {requests: 5, per: 60}}\n",
            r"rate_limit must be \{requests: N, per_seconds: S\}",
        ),
        (BASE + "gateway: {require_tls: maybe}\n", "require_tls must be true or false"),
        (BASE + "security_scan: {fail_on: severe}\n", "security_scan.fail_on must be one of low, medium, high"),
        (BASE + "security_scan: {terraform_severity: HIGH}\n", "security_scan.terraform_severity must be one of"),
        (BASE + "security_scan: {checkov: ''}\n", "security_scan.checkov must be a path to checkov"),
        (BASE + "security_scan: {fail_at: high}\n", "unexpected keyword argument 'fail_at'"),
    ],
)
def test_bad_config_says_what_to_fix(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_environment("sandbox", _write(tmp_path, "sandbox", text))


def test_a_gateway_without_config_lets_no_browser_in_and_requires_tls(tmp_path):
    policy = load_environment("sandbox", _write(tmp_path, "sandbox", BASE)).gateway
    assert (policy.allowed_origins, policy.require_tls) == ((), True)
    assert not policy.origin_allowed("https://shop.example.com")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://frames.myshopify.com", True),
        ("https://a.b.myshopify.com", True),
        ("https://frames.myshopify.com.evil.example", False),
        ("http://frames.myshopify.com", False),
        ("http://127.0.0.1:8000", True),
        ("http://127.0.0.1:shop.example", False),  # a * after ":" is a port
        ("http://127.0.0.1", False),
        ("https://shop.example.com", True),
        ("https://shop.example.com:8443", False),
        (None, False),
    ],
)
def test_storefront_origins_match_the_configured_patterns(origin, allowed):
    from varai_deploy.config import GatewayPolicy

    policy = GatewayPolicy(
        allowed_origins=("https://*.myshopify.com", "http://127.0.0.1:*", "https://shop.example.com")
    )
    assert policy.origin_allowed(origin) is allowed


def test_missing_environment_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match=r"staging\.yaml"):
        load_environment("staging", tmp_path)


def test_sandbox_publishes_to_all_four_marketplaces():
    env = load_environment("sandbox")
    assert env.marketplaces == ("html", "shopify", "woocommerce", "magento")
    assert env.cdn_check_timeout_seconds == 60.0


def test_a_cdn_check_timeout_must_be_positive(tmp_path):
    text = (
        (ENVIRONMENTS_DIR / "sandbox.yaml")
        .read_text()
        .replace("cdn_check_timeout_seconds: 60", "cdn_check_timeout_seconds: 0")
    )
    (tmp_path / "sandbox.yaml").write_text(text)
    with pytest.raises(ConfigError, match="widgets.cdn_check_timeout_seconds must be a positive"):
        load_environment("sandbox", directory=tmp_path)


def test_a_marketplace_without_its_connections_is_a_config_error(tmp_path):
    text = (ENVIRONMENTS_DIR / "sandbox.yaml").read_text().replace("  npm: varai_npm", "")
    (tmp_path / "sandbox.yaml").write_text(text)
    with pytest.raises(ConfigError, match="widgets.marketplaces has html, which needs connections.npm"):
        load_environment("sandbox", directory=tmp_path)


def test_an_unknown_marketplace_is_a_config_error(tmp_path):
    text = (ENVIRONMENTS_DIR / "sandbox.yaml").read_text().replace("[html, shopify,", "[html, etsy, shopify,")
    (tmp_path / "sandbox.yaml").write_text(text)
    with pytest.raises(ConfigError, match="unknown marketplace.*'etsy'"):
        load_environment("sandbox", directory=tmp_path)


TERRAFORM_BASE = """
name: {name}
platform: {platform}
connections: {{gateway: gw, metrics: m, ledger: l, cloud_run: run}}
terraform:
  module: include/terraform/sandbox
"""


def _terraform_env(tmp_path: Path, name: str, terraform: str = ""):
    platform = "local" if name == "sandbox" else "cloudrun"
    text = TERRAFORM_BASE.format(name=name, platform=platform) + textwrap.indent(terraform, "  ")
    return load_environment(name, _write(tmp_path, name, text))


def test_sandbox_terraform_state_lives_under_the_sandbox_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VARAI_SANDBOX_HOME", str(tmp_path / "home"))
    tf = load_environment("sandbox").terraform
    assert (tf.backend, tf.binary) == ("local", None)
    assert tf.state_path == tmp_path / "home" / "terraform" / "sandbox" / "terraform.tfstate"
    assert "images" in tf.outputs
    monkeypatch.delenv("VARAI_SANDBOX_HOME")
    assert (
        load_environment("sandbox").terraform.state_path == REPO_ROOT / ".sandbox/terraform/sandbox/terraform.tfstate"
    )


@pytest.mark.parametrize("name", ["staging", "production"])
@pytest.mark.parametrize("backend", ["", "backend: local\n"])
def test_only_the_sandbox_may_keep_local_terraform_state(tmp_path, name, backend):
    with pytest.raises(ConfigError, match=rf"{name}\.yaml: terraform\.backend is local.*set terraform\.backend: gcs"):
        _terraform_env(tmp_path, name, backend)


def test_a_gcs_backend_needs_its_bucket_and_keeps_no_local_state(tmp_path):
    with pytest.raises(ConfigError, match=r"staging\.yaml: terraform\.backend gcs needs terraform\.state_bucket"):
        _terraform_env(tmp_path, "staging", "backend: gcs\n")
    tf = _terraform_env(tmp_path, "staging", "backend: gcs\nstate_bucket: varai-tf\nstate_prefix: staging\n").terraform
    assert (tf.backend, tf.state_bucket, tf.state_prefix, tf.state_path) == ("gcs", "varai-tf", "staging", None)


def test_terraform_outputs_and_binary_are_configurable(tmp_path):
    tf = _terraform_env(tmp_path, "sandbox", "outputs: [images, url_map]\nbinary: tools/terraform\n").terraform
    assert tf.outputs == ("images", "url_map")
    assert tf.binary == str(REPO_ROOT / "tools" / "terraform")
    assert _terraform_env(tmp_path, "sandbox", "binary: terraform\n").terraform.binary == "terraform"
    assert _terraform_env(tmp_path, "sandbox").terraform.outputs == ("images",)
    for bad in ("outputs: images\n", "outputs: []\n", "outputs: [images, 'a b']\n"):
        with pytest.raises(ConfigError, match=r"sandbox\.yaml: terraform\.outputs must be a"):
            _terraform_env(tmp_path, "sandbox", bad)


PEOPLE_BASE = """
name: {name}
platform: {platform}
connections: {{gateway: gw, metrics: m, ledger: l, slack: s, email_endpoint: e, cloud_run: run}}
terraform:
  module: include/terraform/sandbox
  backend: gcs
  state_bucket: b
"""


def _people_env(tmp_path: Path, name: str, extra: str):
    platform = "local" if name == "sandbox" else "cloudrun"
    text = PEOPLE_BASE.format(name=name, platform=platform)
    if name == "sandbox":
        text = text.replace("  backend: gcs\n  state_bucket: b\n", "")
    return load_environment(name, _write(tmp_path, name, text + textwrap.dedent(extra)))


def test_the_sandbox_routes_each_severity_and_asks_nobody():
    env = load_environment("sandbox")
    assert env.notifications.channels("critical") == ("slack", "email")
    assert env.notifications.channels("info") == ("slack",)
    assert env.notifications.email_recipients == ("devops@varai.ai",)
    assert env.requires_approval is False


def test_production_always_needs_an_approval_with_named_approvers(tmp_path):
    with pytest.raises(ConfigError, match="approval.approvers must name who may approve"):
        _people_env(tmp_path, "production", "")
    with pytest.raises(ConfigError, match="production releases always need a human approval"):
        _people_env(tmp_path, "production", "requires_approval: false\napproval: {approvers: [alice]}\n")
    env = _people_env(tmp_path, "production", "approval: {approvers: [alice, bob], timeout_minutes: 30}\n")
    assert env.requires_approval is True
    assert env.approval.approvers == ("alice", "bob")
    assert env.approval.timeout_minutes == 30


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("requires_approval: yes please\n", "requires_approval must be true or false"),
        ("requires_approval: true\napproval: {approvers: ['a b; rm']}\n", "is not an Airflow user name"),
        ("requires_approval: true\napproval: {approvers: [a], timeout_minutes: 0}\n", "timeout_minutes must be"),
        ("requires_approval: true\napproval: {approvers: [a], evidence_from: moon}\n", "is not an environment"),
        ("notifications: {routes: {fatal: [slack]}}\n", "unknown severity 'fatal'"),
        ("notifications: {routes: {critical: [pager]}}\n", "unknown channel 'pager'"),
        ("notifications: {routes: {critical: [email]}}\n", "email_recipients must name who gets it"),
        (
            "notifications: {routes: {critical: [email]}, email_recipients: [not-an-address]}\n",
            "is not an email address",
        ),
        ("notifications: {routes: {info: [slack]}, attempts: 0}\n", "attempts must be >= 1"),
    ],
)
def test_bad_people_settings_are_refused_saying_what_to_fix(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        _people_env(tmp_path, "sandbox", extra)


def test_a_routed_channel_needs_its_connection(tmp_path):
    text = PEOPLE_BASE.format(name="sandbox", platform="local").replace(", slack: s", "")
    text = text.replace("  backend: gcs\n  state_bucket: b\n", "") + "notifications: {routes: {info: [slack]}}\n"
    with pytest.raises(ConfigError, match="uses slack, which needs connections.slack"):
        load_environment("sandbox", _write(tmp_path, "sandbox", text))


def test_another_config_directory_can_stand_in_for_the_repository_one(tmp_path, monkeypatch):
    text = (ENVIRONMENTS_DIR / "sandbox.yaml").read_text() + "\napproval: {approvers: [carol]}\n"
    _write(tmp_path, "sandbox", text.replace("requires_approval: false", "requires_approval: true"))
    monkeypatch.setenv("VARAI_ENVIRONMENTS_DIR", str(tmp_path))
    env = load_environment("sandbox")
    assert (env.requires_approval, env.approval.approvers) == (True, ("carol",))


CLOUD_RUN = """
name: staging
platform: cloudrun
connections: {gateway: gw, metrics: m, ledger: l, cloud_run: run}
terraform: {module: include/terraform/gcp, backend: gcs, state_bucket: b}
"""


def test_an_environment_on_cloud_run_names_its_services_and_keeps_revisions_for_rollbacks(tmp_path):
    env = load_environment("staging", _write(tmp_path, "staging", CLOUD_RUN))
    assert (env.cloud_run.service_name, env.cloud_run.keep_revisions) == ("{service}", 3)
    text = CLOUD_RUN + "cloud_run: {service_name: '{service}-staging', keep_revisions: 5}\n"
    env = load_environment("staging", _write(tmp_path, "staging", text))
    assert env.cloud_run.service_name.format(service="analytics") == "analytics-staging"
    assert env.cloud_run.keep_revisions == 5
    assert load_environment("sandbox", _write(tmp_path, "sandbox", BASE)).cloud_run is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CLOUD_RUN.replace(", cloud_run: run", ""), "platform cloudrun needs connections.cloud_run"),
        (CLOUD_RUN + "cloud_run: {service_name: staging}\n", "must contain {service}"),
        (CLOUD_RUN + "cloud_run: {service_name: '{service}_Staging'}\n", "not a Cloud Run service name"),
        (CLOUD_RUN + "cloud_run: {service_name: '{service}-{env}'}\n", "'env'"),
        (CLOUD_RUN + "cloud_run: {keep_revisions: 0}\n", "keep_revisions must be a whole number"),
        (
            CLOUD_RUN + "cloud_run: {operation_timeout_seconds: -1}\n",
            "operation_timeout_seconds must be a positive number",
        ),
        (CLOUD_RUN + "cloud_run: {keep: 1}\n", "unexpected keyword argument 'keep'"),
    ],
)
def test_bad_cloud_run_settings_say_what_to_fix(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_environment("staging", _write(tmp_path, "staging", text))


def test_cloud_run_settings_on_another_platform_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="cloud_run is for platform cloudrun, not local"):
        load_environment("sandbox", _write(tmp_path, "sandbox", BASE + "cloud_run: {keep_revisions: 2}\n"))


@pytest.mark.parametrize(("name", "window"), [("staging", 300), ("production", 600)])
def test_staging_and_production_run_on_cloud_run_under_the_names_terraform_gives_their_services(name, window):
    env = load_environment(name)
    assert (env.platform, env.analysis.duration_seconds, env.backups.method) == ("cloudrun", window, "cloud_sql")
    assert (env.terraform.module, env.terraform.backend) == (REPO_ROOT / "include/terraform/gcp", "gcs")
    assert env.terraform.state_prefix == name
    # include/terraform/gcp names each service "${name}-${var.environment}": the release must find them.
    assert 'name => "${name}-${var.environment}"' in (REPO_ROOT / "include/terraform/gcp/locals.tf").read_text()
    assert env.cloud_run.service_name.format(service="analytics") == f"analytics-{name}"
    # The analysis reads Cloud Run's series of those same services.
    assert env.analysis.series.service_value == env.cloud_run.service_name
    assert env.analysis.series.requests == "run_googleapis_com:request_count"
    assert env.requires_approval == (name == "production")
    assert not [
        c
        for c in env.connections.values()
        if c.startswith(f"varai_{'production' if name == 'staging' else 'staging'}_")
    ]


def test_production_waits_for_an_approver_who_sees_what_staging_said():
    env = load_environment("production")
    assert env.approval.approvers and env.approval.evidence_from == "staging"
    assert env.marketplaces == ("html", "shopify", "woocommerce", "magento")
