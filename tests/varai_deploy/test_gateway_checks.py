"""Phase 5's search and security checks against the sandbox's real gateway, against one that forgot its policy,
and against real TLS servers (1.2 and 1.3) for the TLS rule."""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.sandbox import deploy
from tests.support.threaded_http import serving
from varai_deploy import self_signed
from varai_deploy.config import load_environment
from varai_deploy.gateway_checks import GatewayCheckError, _tls, check_search, check_security, storefront_origin
from varai_deploy.sandbox import Sandbox
from varai_deploy.sandbox.gateway import make_handler
from varai_deploy.sandbox.routes import RouteTable
from varai_deploy.sandbox.serving import Server


@pytest.fixture
def env():
    return load_environment("sandbox")


def test_a_release_of_the_sandbox_passes_the_search_and_every_security_check(sandbox_env: Sandbox, env) -> None:
    deploy(sandbox_env, "ai-discovery", "v1.2.3")
    found = check_search(env, "v1.2.3", ["ai-discovery"])
    assert found == {"status": 200, "suggestions": 3, "version": "v1.2.3", "origin": "http://127.0.0.1:8443"}

    report = check_security(env)
    assert report["cors_storefront"] == "ok: preflight from http://127.0.0.1:8443 allowed (GET, X-API-Key)"
    assert report["cors_foreign_origin"].startswith("ok: preflight from https://foreign.invalid refused (HTTP 403")
    assert report["api_key_missing"].startswith("ok: no key gets 401")
    assert report["api_key_invalid"] == "ok: a bad key gets 401 (this API key is not valid)"
    # The check key's plan is 10 per 10 s; the search took one token, so the burst's 10th request is refused.
    assert report["rate_limit"] == "ok: request 10 of a burst got 429, Retry-After 1 s (limit 10)"
    assert report["security_headers"].startswith("ok:")
    assert report["tls"].startswith("skipped: plain HTTP")


def test_a_search_answered_by_another_version_fails_naming_both(sandbox_env: Sandbox, env) -> None:
    deploy(sandbox_env, "ai-discovery", "v1.2.3")
    with pytest.raises(
        GatewayCheckError, match=r"GET http://127\.0\.0\.1:\d+/ai/discover.*answered by v1\.2\.3, expected v1\.3\.0"
    ):
        check_search(env, "v1.3.0", ["ai-discovery"])
    assert check_search(env, "v1.3.0", ["analytics"])["version"] == "v1.2.3"  # ai-discovery was not released


def gateway_without_policy(home: Path):
    """The sandbox's gateway routing the same revisions, with its edge left out: what a gateway that lost its
    CORS, key and rate-limit configuration does."""
    return serving(Server("127.0.0.1", 0, make_handler(RouteTable(home / "routes.json"))))


def test_a_gateway_that_lost_its_policy_fails_naming_every_check_it_fails(
    sandbox_env: Sandbox, env, monkeypatch
) -> None:
    deploy(sandbox_env, "ai-discovery", "v1.2.3")
    with gateway_without_policy(sandbox_env.settings.home) as port:
        conn = json.loads(os.environ["AIRFLOW_CONN_VARAI_GATEWAY"])
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_GATEWAY", json.dumps({**conn, "port": port}))
        with pytest.raises(GatewayCheckError) as failed:
            check_security(env)
        with pytest.raises(GatewayCheckError, match="Access-Control-Allow-Origin is None, so a browser hides"):
            check_search(env, "v1.2.3", ["ai-discovery"])
    message = str(failed.value)
    assert f"the gateway http://127.0.0.1:{port} of sandbox does not enforce" in message
    assert "cors_storefront FAILED: the preflight from http://127.0.0.1:8443 got HTTP 501" in message
    assert "api_key_missing FAILED: a search with no key got HTTP 200" in message
    assert "api_key_invalid FAILED: a search with a bad key got HTTP 200" in message
    assert "rate_limit FAILED: HTTP 200 without X-RateLimit-Limit" in message
    assert "security_headers FAILED: /health answers without X-Content-Type-Options" in message
    assert "cors_foreign_origin" not in message and "tls" not in message  # those hold


def test_a_gateway_connection_without_a_key_is_refused_before_any_request(env, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_GATEWAY", '{"conn_type": "http", "host": "127.0.0.1", "port": 9}')
    with pytest.raises(GatewayCheckError, match="varai_gateway has no password: it must hold the widget API key"):
        check_security(env)


def test_no_allowed_origin_means_the_widget_works_nowhere(env, monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_VARAI_GATEWAY", '{"conn_type": "http", "host": "127.0.0.1", "port": 9, "password": "k"}'
    )
    closed = replace(env, gateway=replace(env.gateway, allowed_origins=()))
    assert storefront_origin(closed.gateway) is None
    with pytest.raises(GatewayCheckError, match="allows no storefront: the widget cannot call the API anywhere"):
        check_search(closed, "v1.0.0", [])


# -- TLS -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, trusted through SSL_CERT_FILE."""
    made = self_signed.certificate("localhost", ca=True)
    directory = tmp_path_factory.mktemp("tls")
    (directory / "cert.pem").write_bytes(made.cert_pem)
    (directory / "key.pem").write_bytes(made.key_pem)
    return directory / "cert.pem", directory / "key.pem"


def tls_server(certificate: tuple[Path, Path], newest: ssl.TLSVersion):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    context.maximum_version = newest
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return serving(server)


@pytest.mark.parametrize(
    ("newest", "verdict"),
    [
        (ssl.TLSVersion.TLSv1_3, "ok: localhost negotiated TLS 1.3"),
        (ssl.TLSVersion.TLSv1_2, "FAILED: localhost negotiated TLSv1.2, not TLS 1.3"),
    ],
)
def test_an_https_endpoint_must_negotiate_tls_1_3(certificate, monkeypatch, newest, verdict) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with tls_server(certificate, newest) as port:
        assert _tls(f"https://localhost:{port}", required=True) == verdict


def test_plain_http_fails_where_tls_is_required() -> None:
    assert (
        _tls("http://127.0.0.1:9", required=True)
        == "FAILED: http://127.0.0.1:9 is plain HTTP; the guide asks TLS 1.3 in transit"
    )
