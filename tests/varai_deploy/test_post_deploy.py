"""Post-deploy health checks through a real Airflow HTTP connection to a real (scripted) gateway."""

from dataclasses import replace

import pytest

from tests.support.scripted_http import scripted_server
from varai_deploy.config import load_environment
from varai_deploy.post_deploy import PostDeployError, check_gateway

SERVED = {"X-Served-Version": "v1.2.3", "X-Served-Colour": "green"}


@pytest.fixture
def env():
    """The sandbox's config for analytics alone, with the analysis' rule: 3 failures in a row, 1 s apart."""
    sandbox = load_environment("sandbox")
    return replace(
        sandbox, services=["analytics"], analysis=replace(sandbox.analysis, health_failures=3, interval_seconds=1)
    )


def checked(monkeypatch, env, statuses, then=200, headers=SERVED, released=("analytics",)):
    slept: list[float] = []
    with scripted_server(statuses, then=then, headers=headers) as srv:
        monkeypatch.setenv(
            "AIRFLOW_CONN_VARAI_GATEWAY", f'{{"conn_type": "http", "host": "127.0.0.1", "port": {srv["port"]}}}'
        )
        try:
            report = check_gateway(env, "v1.2.3", list(released), sleep=slept.append)
        except PostDeployError as exc:
            report = exc
    return report, srv["seen"], slept


def test_a_healthy_service_is_asked_once(monkeypatch, env):
    report, seen, slept = checked(monkeypatch, env, [])
    assert report == {"analytics": {"path": "/analytics/health", "status": 200, "version": "v1.2.3", "colour": "green"}}
    assert (seen, slept) == (["/analytics/health"], [])


def test_fewer_failures_in_a_row_than_the_rule_pass(monkeypatch, env):
    """A revision the analysis saw flap (and passed) is not failed by one unlucky 503 afterwards."""
    report, seen, slept = checked(monkeypatch, env, [503, 503])
    assert report["analytics"]["status"] == 200
    assert (len(seen), slept) == (3, [1, 1])


def test_as_many_failures_in_a_row_as_the_rule_fail_naming_the_answer_and_the_rule(monkeypatch, env):
    error, seen, slept = checked(monkeypatch, env, [], then=503)
    assert isinstance(error, PostDeployError)
    assert "failed 3 times in a row, 1 s apart: /analytics/health: HTTP 503 from v1.2.3 (green)" in str(error)
    assert (len(seen), slept) == (3, [1, 1])


def test_a_released_service_answering_from_another_version_fails(monkeypatch, env):
    error, _, _ = checked(monkeypatch, env, [], headers={**SERVED, "X-Served-Version": "v1.2.2"})
    assert isinstance(error, PostDeployError)
    assert "HTTP 200 from v1.2.2 (green), expected v1.2.3" in str(error)


def test_a_service_not_released_may_serve_any_version(monkeypatch, env):
    report, seen, _ = checked(monkeypatch, env, [], headers={**SERVED, "X-Served-Version": "v0.9.0"}, released=())
    assert report["analytics"]["version"] == "v0.9.0" and len(seen) == 1
