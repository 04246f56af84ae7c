"""Phase 5's performance and monitoring checks against the sandbox's real Prometheus, steady traffic and alert
rules."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.support.sandbox import deploy, wait_for
from varai_deploy.config import load_environment
from varai_deploy.post_deploy_metrics import PostDeployMetricsError, check_monitoring, check_performance
from varai_deploy.sandbox import Sandbox, prometheus


@pytest.fixture
def env():
    sandbox = load_environment("sandbox")
    return replace(sandbox, post_deploy=replace(sandbox.post_deploy, window_seconds=8, min_requests=5))


def served_enough(sandbox: Sandbox, env, version: str, service: str = "recommendation") -> dict:
    """``service`` at ``version`` live, then the checks' window of the shoppers' traffic on it."""
    deploy(sandbox, service, version)
    time.sleep(env.post_deploy.window_seconds)
    return wait_for(
        lambda: _performance_or_none(env, version, service), timeout=15, interval=1, what=f"{service} measured"
    )


def _performance_or_none(env, version, service):
    try:
        return check_performance(env, version, [service])
    except PostDeployMetricsError as exc:
        if "fewer than" in str(exc):
            return None  # Prometheus has not scraped enough of it yet
        raise


def test_a_good_release_meets_the_key_metrics_on_what_prometheus_measured(sandbox_env: Sandbox, env) -> None:
    report = served_enough(sandbox_env, env, "v1.2.3")
    row = report["recommendation"]
    assert row["requests"] >= env.post_deploy.min_requests
    assert row["error_rate"] == 0.0
    assert 0 < row["latency_p95_seconds"] < env.post_deploy.latency_p95_seconds


@pytest.mark.parametrize(
    ("version", "fault", "message"),
    [
        ("v1.2.4", {"mode": "errors", "rate": 0.3}, r"recommendation: error rate (2\d|3\d)\.\d\d% > 1\.00%"),
        ("v1.2.5", {"mode": "slow", "latency_seconds": 2.5}, r"recommendation: p95 \d\.\d+ s > 2 s"),
    ],
    ids=["errors", "slow"],
)
def test_a_release_missing_a_key_metric_fails_naming_the_service_and_the_value(
    sandbox_env: Sandbox, env, version, fault, message
) -> None:
    sandbox_env.register_fault(version, fault.pop("mode"), ["recommendation"], **fault)
    deploy(sandbox_env, "recommendation", version)
    time.sleep(env.post_deploy.window_seconds)
    with pytest.raises(PostDeployMetricsError, match=message):
        wait_for(lambda: _performance_or_none(env, version, "recommendation"), timeout=15, interval=1, what="data")


def test_too_little_traffic_cannot_validate_and_fails_safe(sandbox_env: Sandbox, env) -> None:
    sandbox_env.stop_traffic()
    deploy(sandbox_env, "recommendation", "v1.2.6")
    with pytest.raises(PostDeployMetricsError, match="recommendation: 0 requests in 8 s, fewer than 5"):
        check_performance(env, "v1.2.6", ["recommendation"])


def test_a_service_not_serving_the_version_is_named(sandbox_env: Sandbox, env) -> None:
    deploy(sandbox_env, "recommendation", "v1.2.7")
    with pytest.raises(PostDeployMetricsError, match=r"recommendation does not serve v1\.2\.8 \(it serves v1\.2\.7\)"):
        check_performance(env, "v1.2.8", ["recommendation"])


def test_the_guides_alerts_are_loaded_and_evaluating(sandbox_env: Sandbox, env) -> None:
    report = wait_for(lambda: _monitoring_or_none(env), timeout=15, interval=0.5, what="the rules evaluated")
    assert set(report) == {"VaraiServiceDown", "VaraiHighErrorRate", "VaraiHighResponseTime", "VaraiHighResourceUsage"}
    assert report["VaraiServiceDown"].startswith("inactive (critical; evaluated ")
    assert report["VaraiHighResponseTime"].startswith("inactive (warning; evaluated ")


def _monitoring_or_none(env):
    try:
        return check_monitoring(env)
    except PostDeployMetricsError as exc:
        if "never evaluated" in str(exc):
            return None
        raise


def test_a_missing_or_unknown_alert_fails_naming_it(sandbox_env: Sandbox, env) -> None:
    wait_for(lambda: _monitoring_or_none(env), timeout=15, interval=0.5, what="the rules evaluated")
    wanting = replace(env, post_deploy=replace(env.post_deploy, alerts=(*env.post_deploy.alerts, "VaraiDiskFull")))
    with pytest.raises(
        PostDeployMetricsError, match="monitoring of sandbox is not set up: VaraiDiskFull is not loaded"
    ):
        check_monitoring(wanting)

    # Prometheus loses a rule (its file rewritten without it, then reloaded).
    s = sandbox_env.settings
    kept = tuple(r for r in prometheus.SERVICE_ALERTS if r["alert"] != "VaraiHighResourceUsage")
    prometheus.service_rules_file(s).write_text(prometheus.rules_text("varai-services", kept))
    prometheus._reload(s)
    wait_for(lambda: _lost(env), timeout=15, interval=0.5, what="Prometheus reloaded its rules")


def _lost(env) -> bool:
    try:
        check_monitoring(env)
    except PostDeployMetricsError as exc:
        return str(exc) == "monitoring of sandbox is not set up: VaraiHighResourceUsage is not loaded"
    return False


def test_a_rule_evaluated_long_ago_is_reported_with_its_age(sandbox_env: Sandbox, env) -> None:
    later = datetime.now(UTC).replace(microsecond=0)
    report = wait_for(lambda: _monitoring_or_none(env), timeout=15, interval=0.5, what="the rules evaluated")
    assert all("evaluated" in state for state in report.values())
    aged = check_monitoring(env, now=later.replace(year=later.year + 1))
    assert all(int(state.split("evaluated ")[1].split(" s")[0]) > 3e7 for state in aged.values())
