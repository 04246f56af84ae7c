"""Phase 5's performance validation and monitoring setup, read from the environment's metrics backend.

* :func:`check_performance`: over ``post_deploy.window_seconds`` ending now, each released service's new
  revision must meet the guide's key metrics (p95 under ``latency_p95_seconds``, server errors under
  ``error_rate``) on at least ``min_requests`` requests; fewer cannot validate anything and fail safe.
* :func:`check_monitoring`: every alert rule in ``post_deploy.alerts`` (the guide's critical and warning
  alerts) is loaded in the rule evaluator, healthy, and has been evaluated.
"""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import UTC, datetime
from typing import Any

from varai_deploy.config import EnvironmentConfig
from varai_deploy.hooks.prometheus import PrometheusHook
from varai_deploy.metrics.rules import Scope, window_latency_p95, window_requests

#: Prometheus' lastEvaluation of a rule it never evaluated.
NEVER = "0001-01-01T00:00:00Z"


class PostDeployMetricsError(RuntimeError):
    pass


def _query(hook: PrometheusHook, promql: str, by: str) -> dict[str, float]:
    answer = hook.run("/api/v1/query", data={"query": promql}, extra_options={"check_response": False, "timeout": 10})
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code != 200 or body.get("status") != "success":
        raise PostDeployMetricsError(f"Prometheus at {hook.url} refused {promql!r}: HTTP {answer.status_code} {body}")
    values = {}
    for series in body["data"]["result"]:
        value = float(series["value"][1])
        if not math.isnan(value):
            values[series["metric"].get(by, "")] = value
    return values


def check_performance(env: EnvironmentConfig, version: str, released: list[str]) -> dict[str, dict[str, Any]]:
    """Per released service: requests, error rate and p95 over the window; raises naming every miss."""
    from varai_deploy.platforms import get_platform

    policy, series = env.post_deploy, dataclasses.asdict(env.analysis.series)
    if not released:
        return {}
    platform = get_platform(env)
    labels, revisions = {}, []
    for service in released:
        live = platform.current_revision(service)
        if not live or live["version"] != version:
            raise PostDeployMetricsError(f"{service} does not serve {version} (it serves {live and live['version']})")
        labels[series["service_value"].format(service=service)] = service
        revisions.append(live[series["revision_value"]])
    scope = Scope(tuple(labels), tuple(revisions), series)
    window = math.ceil(policy.window_seconds)
    hook = PrometheusHook(env.metrics_conn_id)
    total = _query(hook, window_requests(scope, window), scope.by)
    errors = _query(hook, window_requests(scope, window, series["server_errors"]), scope.by)
    p95 = _query(hook, window_latency_p95(scope, window), scope.by)
    report, problems = {}, []
    for label, service in labels.items():
        requests = total.get(label, 0.0)
        ratio = errors.get(label, 0.0) / requests if requests else None
        latency = p95.get(label)
        report[service] = {
            "requests": round(requests),
            "error_rate": None if ratio is None else round(ratio, 4),
            "latency_p95_seconds": None if latency is None else round(latency, 3),
        }
        if requests < policy.min_requests:
            problems.append(f"{service}: {requests:.0f} requests in {window} s, fewer than {policy.min_requests}")
            continue
        if ratio > policy.error_rate:
            problems.append(f"{service}: error rate {ratio:.2%} > {policy.error_rate:.2%}")
        if latency is not None and latency > policy.latency_p95_seconds:
            problems.append(f"{service}: p95 {latency:.3f} s > {policy.latency_p95_seconds:g} s")
    if problems:
        raise PostDeployMetricsError(
            f"{version} on {env.name} misses the guide's key metrics over the last {window} s: " + "; ".join(problems)
        )
    return report


def check_monitoring(env: EnvironmentConfig, now: datetime | None = None) -> dict[str, str]:
    """Per required alert: its state; raises naming the ones missing, unhealthy or never evaluated."""
    wanted = env.post_deploy.alerts
    if not wanted:
        return {}
    hook = PrometheusHook(env.metrics_conn_id)
    answer = hook.run("/api/v1/rules", data={"type": "alert"}, extra_options={"check_response": False, "timeout": 10})
    try:
        groups = answer.json()["data"]["groups"]
    except (ValueError, KeyError, TypeError):
        raise PostDeployMetricsError(
            f"{hook.url}/api/v1/rules answered HTTP {answer.status_code}, not the rules: {answer.text[:200]}"
        ) from None
    rules = {
        rule["name"]: rule for group in groups for rule in group.get("rules", []) if rule.get("type") == "alerting"
    }
    now = now or datetime.now(UTC)
    report, problems = {}, []
    for name in wanted:
        rule = rules.get(name)
        if rule is None:
            problems.append(f"{name} is not loaded")
            continue
        evaluated = rule.get("lastEvaluation") or NEVER
        if rule.get("health") == "unknown" or evaluated.startswith("0001-"):
            problems.append(f"{name} was never evaluated")
            continue
        if rule.get("health") != "ok":
            problems.append(f"{name} does not evaluate: {rule.get('lastError') or rule.get('health')}")
            continue
        # Prometheus gives nanoseconds; Python reads microseconds.
        stamp = re.sub(r"(\.\d{6})\d+", r"\1", evaluated).replace("Z", "+00:00")
        ago = (now - datetime.fromisoformat(stamp)).total_seconds()
        severity = (rule.get("labels") or {}).get("severity", "?")
        report[name] = f"{rule.get('state', '?')} ({severity}; evaluated {max(ago, 0):.0f} s ago)"
    if problems:
        raise PostDeployMetricsError(f"monitoring of {env.name} is not set up: " + "; ".join(problems))
    return report
