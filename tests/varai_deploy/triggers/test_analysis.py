"""ReleaseAnalysisTrigger against the sandbox's real Prometheus and steady traffic."""

import asyncio
import dataclasses
import time

import pytest

from tests.support.sandbox import wait_listening
from tests.support.scripted_http import scripted_server
from varai_deploy.config import AnalysisPolicy
from varai_deploy.platforms.local import LocalPlatform
from varai_deploy.triggers.analysis import ReleaseAnalysisTrigger

POLICY = dataclasses.asdict(
    AnalysisPolicy(
        interval_seconds=1,
        duration_seconds=9,
        deadline_seconds=25,
        min_requests=5,
        rate_window_seconds=3,
        health_failures=3,
        error_rate_threshold=0.05,
        error_rate_for_seconds=4,
        latency_p95_threshold_seconds=5,
        latency_p95_for_seconds=6,
    )
)


def go_live(sandbox, service: str, version: str) -> tuple[dict, float]:
    platform = LocalPlatform(sandbox)
    candidate = platform.deploy_candidate(service, version, "img")
    wait_listening(candidate["url"])
    platform.switch_traffic(service, candidate, expected=platform.current_revision(service))
    return candidate, time.time()


def judge(sandbox, version, health_urls, switched_at, **policy) -> dict:
    trigger = ReleaseAnalysisTrigger(
        sandbox.settings.prometheus_url, version, health_urls, switched_at, {**POLICY, **policy}
    )
    return asyncio.run(anext(trigger.run())).payload


def test_a_good_version_passes_once_it_served_enough(sandbox_env):
    candidate, at = go_live(sandbox_env, "analytics", "v1.0.0")
    verdict = judge(sandbox_env, "v1.0.0", {"analytics": candidate["url"] + "/health"}, at)
    assert verdict["verdict"] == "pass", verdict
    assert verdict["requests"]["analytics"] >= POLICY["min_requests"]
    assert verdict["seconds_after_switch"] >= POLICY["duration_seconds"]
    # Both metric rules were judged on what Prometheus measured, and the verdict carries it.
    error, latency = verdict["measured"]["error_rate"], verdict["measured"]["latency_p95"]
    assert error["values"]["analytics"] == 0.0 and error["threshold"] == POLICY["error_rate_threshold"]
    assert 0 < latency["values"]["analytics"] < POLICY["latency_p95_threshold_seconds"], latency


def test_an_error_rate_above_the_threshold_for_the_window_rolls_back(sandbox_env):
    sandbox_env.register_fault("v1.0.1", "errors", ["analytics"], rate=0.5)
    candidate, at = go_live(sandbox_env, "analytics", "v1.0.1")
    verdict = judge(sandbox_env, "v1.0.1", {"analytics": candidate["url"] + "/health"}, at)
    assert (verdict["verdict"], verdict["rule"], verdict["service"]) == ("rollback", "error_rate", "analytics")
    assert verdict["value"] > 0.05 and verdict["threshold"] == 0.05
    assert verdict["seconds_after_switch"] < POLICY["deadline_seconds"]


def test_no_traffic_is_not_healthy_it_fails_safe_at_the_deadline(sandbox_env):
    sandbox_env.stop_traffic()
    candidate, at = go_live(sandbox_env, "analytics", "v1.0.2")
    verdict = judge(sandbox_env, "v1.0.2", {"analytics": candidate["url"] + "/health"}, at, deadline_seconds=12)
    assert (verdict["verdict"], verdict["rule"]) == ("rollback", "inconclusive")
    assert "too little traffic to judge: analytics served 0" in verdict["reason"]


def test_three_consecutive_failed_health_checks_roll_back():
    with scripted_server([200, 503, 503, 503]) as health:
        verdict = judge(_NoMetrics, "v1.0.3", {"analytics": health["url"]}, time.time())
    assert (verdict["verdict"], verdict["rule"], verdict["value"]) == ("rollback", "health", 3)


def test_a_flapping_service_is_not_three_consecutive_failures():
    # healthy, unhealthy, healthy, unhealthy, ...: never three failures in a row.
    with scripted_server([200, 503, 200, 503, 503, 200] * 10, then=200) as health:
        verdict = judge(_NoMetrics, "v1.0.4", {"analytics": health["url"]}, time.time(), deadline_seconds=10)
    assert verdict["rule"] != "health", verdict
    assert verdict["rule"] == "inconclusive"  # and no metrics: fail safe, never "pass"


class _NoMetrics:
    """Stands for a sandbox whose Prometheus is gone: nothing listens on this port."""

    class settings:
        prometheus_url = "http://127.0.0.1:9"


def test_an_unreachable_prometheus_never_passes():
    with scripted_server([]) as health:
        verdict = judge(_NoMetrics, "v1.0.5", {"analytics": health["url"]}, time.time(), deadline_seconds=10)
    assert (verdict["verdict"], verdict["rule"]) == ("rollback", "inconclusive")
    assert "Prometheus at http://127.0.0.1:9 did not answer" in verdict["reason"]


@pytest.mark.parametrize(
    ("rule", "value", "threshold", "text"),
    [
        ("error_rate", 0.312, 0.05, "error rate of analytics v2.0.0 was 31.2% for 300s (threshold 5.0%)"),
        ("latency_p95", 6.4, 5, "p95 latency of analytics v2.0.0 was 6.40s for 300s (threshold 5s)"),
        ("health", 3, 3, "analytics v2.0.0 failed 3 consecutive health checks (threshold 3)"),
        ("inconclusive", None, None, "analysis inconclusive after 300s, failing safe: too little traffic"),
    ],
)
def test_verdicts_read_as_sentences(rule, value, threshold, text):
    from varai_deploy.operators.analysis import describe_verdict

    verdict = {
        "rule": rule,
        "service": "analytics",
        "version": "v2.0.0",
        "value": value,
        "threshold": threshold,
        "window_seconds": 300,
        "reason": "too little traffic",
    }
    assert describe_verdict(verdict) == text


def test_a_pass_says_what_was_measured_against_each_threshold():
    """The analysis log and the ledger tell why a release passed, not only that it did."""
    from varai_deploy.operators.analysis import describe_verdict

    verdict = {
        "verdict": "pass",
        "seconds_after_switch": 12.3,
        "measured": {
            "error_rate": {"values": {"analytics": 0.004, "api-gateway": 0.0}, "threshold": 0.05, "window_seconds": 4},
            "latency_p95": {
                "values": {"analytics": 0.0475, "api-gateway": float("nan")},
                "threshold": 5,
                "window_seconds": 5,
            },
        },
        "health": {"analytics": {"checks": 12, "failed": 2, "longest_failing_streak": 1}},
        "health_failures": 3,
        "requests": {"analytics": 96.0, "api-gateway": 40.4},
        "min_requests": 10,
    }
    assert describe_verdict(verdict) == (
        "analysis passed after 12.3s: "
        "error rate analytics 0.4%, api-gateway 0.0% (threshold 5.0%, over 4s); "
        "p95 latency analytics 0.05s, api-gateway no data (threshold 5s, over 5s); "
        "health analytics: 2 of 12 checks failed, at most 1 in a row (threshold 3 in a row); "
        "requests analytics 96, api-gateway 40 (at least 10 each)"
    )
    assert "error rate not judged" in describe_verdict({"verdict": "pass", "seconds_after_switch": 1})


def test_serializes_to_its_import_path_for_the_triggerer():
    trigger = ReleaseAnalysisTrigger("http://p:9090", "v1.0.0", {"analytics": "http://a/health"}, 12.5, POLICY)
    path, kwargs = trigger.serialize()
    assert path == "varai_deploy.triggers.analysis.ReleaseAnalysisTrigger"
    assert ReleaseAnalysisTrigger(**kwargs).serialize() == (path, kwargs)
