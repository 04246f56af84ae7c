"""GatewayHook through a real Airflow HTTP connection to a real server."""

import pytest

from tests.support.scripted_http import scripted_server
from varai_deploy.hooks.gateway import GatewayHook


def use_connection(monkeypatch, port: int) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_GATEWAY", f'{{"conn_type": "http", "host": "127.0.0.1", "port": {port}}}')


def test_reports_which_revision_answered(monkeypatch):
    headers = {"X-Served-Version": "v1.2.3", "X-Served-Colour": "green"}
    with scripted_server([], headers=headers) as srv:
        use_connection(monkeypatch, srv["port"])
        hook = GatewayHook("varai_gateway")
        answer = hook.probe("/ai/health")
    assert hook.url == srv["url"]
    assert answer.ok
    assert (answer.status, answer.version, answer.colour) == (200, "v1.2.3", "green")
    assert srv["seen"] == ["/ai/health"]
    assert answer.describe() == "/ai/health: HTTP 200 from v1.2.3 (green)"


def test_an_error_status_is_an_answer_not_an_exception(monkeypatch):
    with scripted_server([503]) as srv:
        use_connection(monkeypatch, srv["port"])
        answer = GatewayHook("varai_gateway").probe("/health")
    assert not answer.ok
    assert answer.status == 503


def test_an_unreachable_gateway_is_reported(monkeypatch):
    with scripted_server([]) as srv:
        port = srv["port"]
    use_connection(monkeypatch, port)
    answer = GatewayHook("varai_gateway").probe("/health")
    assert not answer.ok
    assert "connection refused" in answer.describe()


def test_a_missing_connection_names_it(monkeypatch):
    from airflow.sdk.exceptions import AirflowNotFoundException

    monkeypatch.delenv("AIRFLOW_CONN_VARAI_GATEWAY", raising=False)
    with pytest.raises(AirflowNotFoundException, match="varai_gateway"):
        GatewayHook("varai_gateway").url  # noqa: B018
