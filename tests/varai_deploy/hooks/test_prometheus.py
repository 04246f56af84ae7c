"""PrometheusHook against Managed Service for Prometheus' contract: the PromQL API answers only a Google access
token, which the hook gets as a Google connection's service account (google-auth's real JWT-bearer exchange).

Google's token endpoint and the query API cannot run here, so a stand-in plays both and checks what Google
checks: the assertion is RS256-signed by the account's key, addressed to Google's token endpoint, asks for a scope that
may read monitoring data; a query without a token it issued is 401, as the real API answers."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from varai_deploy.hooks.prometheus import PrometheusHook
from varai_deploy.metrics import MetricSourceError
from varai_deploy.metrics.prometheus import PrometheusSource
from varai_deploy.triggers.analysis import ReleaseAnalysisTrigger

ACCOUNT = "varai-deploy@ml-datadriven-recos.iam.gserviceaccount.com"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: The audience of every assertion google-auth signs, whatever token URI the key names (Google's own).
AUDIENCE = "https://oauth2.googleapis.com/token"
READ_SCOPES = {"https://www.googleapis.com/auth/monitoring.read", "https://www.googleapis.com/auth/cloud-platform"}
PROMETHEUS_PATH = "/v1/projects/ml-datadriven-recos/location/global/prometheus"


@contextmanager
def google(public_key) -> Iterator[dict]:
    """Google's token endpoint (``/token``) and the Managed Prometheus query API, on one loopback port."""
    issued: set[str] = set()
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            try:
                assert self.path == "/token" and form["grant_type"] == [GRANT]
                claims = jwt.decode(form["assertion"][0], public_key, algorithms=["RS256"], audience=AUDIENCE)
                assert claims["iss"] == ACCOUNT and READ_SCOPES & set(claims["scope"].split())
            except (AssertionError, KeyError, jwt.InvalidTokenError) as exc:
                return self._answer(400, {"error": "invalid_grant", "error_description": repr(exc)})
            token = "ya29." + secrets.token_urlsafe(16)
            issued.add(token)
            self._answer(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

        def do_GET(self):
            url = urlsplit(self.path)
            seen.append({"path": url.path, "headers": dict(self.headers)})
            if self.headers.get("Authorization", "").removeprefix("Bearer ") not in issued:
                return self._answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
            if url.path != PROMETHEUS_PATH + "/api/v1/query" or "query" not in parse_qs(url.query):
                return self._answer(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
            result = [{"metric": {"service": "analytics"}, "value": [time.time(), "0.25"]}]
            self._answer(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "issued": issued, "seen": seen}
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def managed_prometheus(monkeypatch) -> Iterator[dict]:
    """``varai_metrics_gmp`` (HTTP, the query API) naming ``varai_gcp`` (a service account's key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with google(key.public_key()) as stand_in:
        keyfile = {
            "type": "service_account",
            "project_id": "ml-datadriven-recos",
            "private_key_id": "k1",
            "private_key": pem.decode(),
            "client_email": ACCOUNT,
            "client_id": "1",
            "token_uri": f"{stand_in['url']}/token",
        }
        gcp = {"keyfile_dict": json.dumps(keyfile), "scope": "https://www.googleapis.com/auth/monitoring.read"}
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_GCP", json.dumps({"conn_type": "google_cloud_platform", "extra": gcp}))
        metrics = {
            "conn_type": "http",
            "host": stand_in["url"] + PROMETHEUS_PATH,
            "extra": {"gcp_conn_id": "varai_gcp"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_METRICS_GMP", json.dumps(metrics))
        unauthenticated = {"conn_type": "http", "host": stand_in["url"] + PROMETHEUS_PATH}
        monkeypatch.setenv("AIRFLOW_CONN_VARAI_METRICS_PLAIN", json.dumps(unauthenticated))
        yield stand_in


def test_queries_carry_a_token_the_service_account_got_and_never_the_extra_itself(managed_prometheus):
    hook = PrometheusHook("varai_metrics_gmp")
    assert hook.ready()
    answer = hook.run("/api/v1/query", data={"query": "up"})
    assert answer.json()["data"]["result"][0]["value"][1] == "0.25"
    sent = managed_prometheus["seen"][-1]["headers"]
    assert sent["Authorization"].removeprefix("Bearer ") in managed_prometheus["issued"]
    assert not {name.lower() for name in sent} & {"gcp_conn_id", "keyfile_dict"}
    for _ in range(3):  # the token serves every query until it expires: one token request, not one per query
        PrometheusHook("varai_metrics_gmp").run("/api/v1/query", data={"query": "up"})
    assert len(managed_prometheus["issued"]) == 1


def test_without_a_google_connection_the_query_api_refuses_and_validation_would_say_so(managed_prometheus):
    hook = PrometheusHook("varai_metrics_plain")
    assert hook.auth_headers() == {}
    assert not hook.ready()
    assert "Authorization" not in managed_prometheus["seen"][-1]["headers"]


def test_the_analysis_in_the_triggerer_queries_with_a_token_it_got_itself(managed_prometheus):
    trigger = ReleaseAnalysisTrigger(
        PrometheusHook("varai_metrics_gmp").url, "v1.0.0", {}, 0.0, {}, metrics_conn_id="varai_metrics_gmp"
    )
    assert "Bearer" not in json.dumps(trigger.serialize())  # no token in what the triggerer stores
    trigger.metrics_headers = trigger._auth_headers()
    assert asyncio.run(trigger._source().query("up")) == {"analytics": 0.25}
    with pytest.raises(MetricSourceError, match="refused the query"):
        asyncio.run(PrometheusSource(trigger.metrics_url).query("up"))  # the same query without the token


def test_an_anonymous_google_connection_sends_nothing(monkeypatch):
    anonymous = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True}}
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_GCP_ANON", json.dumps(anonymous))
    metrics = {"conn_type": "http", "host": "http://127.0.0.1:9", "extra": {"gcp_conn_id": "varai_gcp_anon"}}
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_METRICS_ANON", json.dumps(metrics))
    assert PrometheusHook("varai_metrics_anon").auth_headers() == {}
