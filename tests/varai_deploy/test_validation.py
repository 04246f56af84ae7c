"""Phase 1 checks: each fails before anything is changed, saying what to fix."""

import dataclasses
import socket

import pytest

from varai_deploy.config import ConfigError, load_environment
from varai_deploy.validation import (
    ValidationError,
    check_credentials,
    check_prerequisites,
    check_request,
    check_resources,
)


def test_request_is_normalised():
    checked = check_request("v1.0.0", "sandbox", ["api-gateway", "analytics"])
    assert checked == {
        "version": "v1.0.0",
        "environment": "sandbox",
        "services": ["analytics", "api-gateway"],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("v1.0.0; id", "sandbox", ["analytics"]), "not a release tag"),
        (("v1.0.0", "moon", ["analytics"]), "unknown environment"),
        (("v1.0.0", "sandbox", ["billing"]), "unknown service"),
    ],
)
def test_bad_requests_are_refused(args, message):
    with pytest.raises(ConfigError, match=message):
        check_request(*args)


def test_credentials_present(monkeypatch):
    _service_connections(monkeypatch)
    assert check_credentials(load_environment("sandbox")) == {
        "gateway": "varai_gateway (http)",
        "metrics": "varai_metrics (http)",
        "ledger": "varai_ledger (postgres)",
    }


def test_staging_names_every_connection_it_lacks_before_anything_changes(monkeypatch):
    for conn_id in ("VARAI_STAGING_GATEWAY", "VARAI_STAGING_METRICS", "VARAI_STAGING_LEDGER", "VARAI_STAGING_GCP"):
        monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id}", raising=False)
    with pytest.raises(ValidationError) as refused:
        check_credentials(load_environment("staging"), ["html"])
    for named in ("'varai_staging_gateway' (gateway)", "'varai_staging_gcp' (cloud_run)", "'varai_staging_npm' (npm)"):
        assert named in str(refused.value)
    assert "make sandbox-up" not in str(refused.value)


def test_a_ledger_connection_without_its_password_is_refused(monkeypatch):
    _service_connections(monkeypatch)
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_LEDGER", '{"conn_type": "postgres", "host": "127.0.0.1", "login": "varai"}')
    with pytest.raises(ValidationError, match=r"'varai_ledger' \(ledger\) has no password"):
        check_credentials(load_environment("sandbox"))


def test_missing_connection_says_how_to_create_it(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_VARAI_GATEWAY", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_METRICS", '{"conn_type": "http", "host": "127.0.0.1"}')
    with pytest.raises(ValidationError, match=r"'varai_gateway' \(gateway\).*connections add"):
        check_credentials(load_environment("sandbox"))


def test_prerequisites_report_the_terraform_in_use():
    found = check_prerequisites(load_environment("sandbox"))
    assert "terraform" in found


def test_prerequisites_refuse_a_terraform_that_is_too_old():
    env = load_environment("sandbox")
    env = dataclasses.replace(env, prerequisites={"terraform": "99.0.0"})
    with pytest.raises(ValidationError, match="needs >= 99.0.0"):
        check_prerequisites(env)


def test_resources_refuse_a_stopped_sandbox(monkeypatch, tmp_path):
    monkeypatch.setenv("VARAI_SANDBOX_HOME", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("VARAI_SANDBOX_GATEWAY_PORT", "19999")
    with pytest.raises(ValidationError, match="the sandbox is not running: start it with `make sandbox-up`"):
        check_resources(load_environment("sandbox"), ["analytics"])


def test_resources_refuse_a_candidate_port_held_by_another_program(sandbox_env, settings):
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", settings.port_for("analytics", "blue")))
        squatter.listen()
        with pytest.raises(ValidationError, match=rf"analytics blue needs 127.0.0.1:{squatter.getsockname()[1]}"):
            check_resources(load_environment("sandbox"), ["analytics", "recommendation"])
    assert check_resources(load_environment("sandbox"), ["analytics"])["services"] == ["analytics"]


def _service_connections(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_GATEWAY", '{"conn_type": "http", "host": "127.0.0.1", "password": "vk"}')
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_METRICS", '{"conn_type": "http", "host": "127.0.0.1"}')
    monkeypatch.setenv(
        "AIRFLOW_CONN_VARAI_LEDGER",
        '{"conn_type": "postgres", "host": "127.0.0.1", "login": "varai", "password": "pw"}',
    )


def test_a_gateway_connection_without_the_check_key_is_refused_before_anything_changes(monkeypatch):
    _service_connections(monkeypatch)
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_GATEWAY", '{"conn_type": "http", "host": "127.0.0.1"}')
    with pytest.raises(ValidationError, match=r"'varai_gateway' \(gateway\) has no password: the widget API key"):
        check_credentials(load_environment("sandbox"))


def test_credentials_of_the_chosen_marketplaces_are_checked(monkeypatch):
    _service_connections(monkeypatch)
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_WORDPRESS_SVN", '{"conn_type": "generic", "login": "u", "password": "p"}')
    assert check_credentials(load_environment("sandbox"), ["woocommerce"]) == {
        "gateway": "varai_gateway (http)",
        "metrics": "varai_metrics (http)",
        "ledger": "varai_ledger (postgres)",
        "wordpress_svn": "varai_wordpress_svn (generic)",
    }


def test_a_marketplace_connection_without_its_secret_is_refused_naming_it(monkeypatch):
    _service_connections(monkeypatch)
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_CDN", '{"conn_type": "google_cloud_platform"}')
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_SHOPIFY", '{"conn_type": "http", "host": "shopify.example"}')
    with pytest.raises(ValidationError, match=r"'varai_shopify' \(shopify\) has no password: the Shopify access token"):
        check_credentials(load_environment("sandbox"), ["shopify"])


def test_a_missing_marketplace_connection_is_named_with_its_role(monkeypatch):
    _service_connections(monkeypatch)
    monkeypatch.delenv("AIRFLOW_CONN_VARAI_NPM", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_VARAI_CDN", raising=False)
    with pytest.raises(ValidationError, match=r"'varai_cdn' \(cdn\), 'varai_npm' \(npm\).*make sandbox-up"):
        check_credentials(load_environment("sandbox"), ["html"])
