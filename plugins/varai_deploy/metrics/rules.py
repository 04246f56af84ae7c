"""The guide's automatic rollback triggers as PromQL, sustained over a window like an alert's ``for``.

A rule is broken only when its condition held at every evaluation step of the whole window
(``min_over_time`` over a subquery), so one bad scrape never rolls a release back. Which series and
labels the rules read is the environment's ``analysis.series`` (:class:`varai_deploy.config.MetricSeries`),
so Cloud Run's metrics in Managed Service for Prometheus need config, not code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: The sandbox services' own request counter (what the drills' steady state reads at the gateway).
REQUESTS = "varai_http_requests_total"


def _regex_literal(text: str) -> str:
    """``text`` matched literally by an RE2 regex inside a PromQL string (whose backslashes double)."""
    return re.sub(r"([.+*?()\[\]{}|^$\\])", r"\\\\\1", text)


def _one_of(label: str, values: tuple[str, ...]) -> str:
    if len(values) == 1:
        return f'{label}="{values[0]}"'
    return f'{label}=~"' + "|".join(_regex_literal(v) for v in values) + '"'


@dataclass(frozen=True)
class Scope:
    """The series one operation is judged on: the services it switched, each on the revision it
    switched it to (one release's version, or a maintenance window's rebuild per service), no health
    probes. ``services`` and ``revisions`` are label values; ``series`` is the policy's, as a dict."""

    services: tuple[str, ...]
    revisions: tuple[str, ...]
    series: dict[str, Any]

    def selector(self, extra: str = "") -> str:
        s = self.series
        matchers = [
            _one_of(s["service_label"], tuple(sorted(self.services))),
            _one_of(s["revision_label"], tuple(sorted(set(self.revisions)))),
            s["exclude"],
            extra,
        ]
        return "{" + ",".join(m for m in matchers if m) + "}"

    @property
    def by(self) -> str:
        return self.series["service_label"]


def error_ratio(scope: Scope, rate_window: int, for_seconds: int, step: int) -> str:
    requests, by = scope.series["requests"], scope.by
    errors = f"sum by ({by}) (rate({requests}{scope.selector(scope.series['server_errors'])}[{rate_window}s]))"
    total = f"sum by ({by}) (rate({requests}{scope.selector()}[{rate_window}s]))"
    ratio = f"(({errors}) or (({total}) * 0)) / ({total})"
    return f"min_over_time(({ratio})[{for_seconds}s:{step}s])"


def latency_p95(scope: Scope, rate_window: int, for_seconds: int, step: int) -> str:
    buckets = f"sum by ({scope.by}, le) (rate({scope.series['latency_buckets']}{scope.selector()}[{rate_window}s]))"
    quantile = f"histogram_quantile(0.95, {buckets})"
    unit = float(scope.series["latency_unit_seconds"])
    seconds = quantile if unit == 1 else f"{quantile} * {unit:g}"
    return f"min_over_time(({seconds})[{for_seconds}s:{step}s])"


def request_count(scope: Scope, window: int) -> str:
    return f"sum by ({scope.by}) (increase({scope.series['requests']}{scope.selector()}[{window}s]))"


def window_requests(scope: Scope, window: int, extra: str = "") -> str:
    """Requests in the last ``window`` seconds (``extra``: a further matcher, e.g. the server errors)."""
    return f"sum by ({scope.by}) (increase({scope.series['requests']}{scope.selector(extra)}[{window}s]))"


def window_latency_p95(scope: Scope, window: int) -> str:
    """p95 latency in seconds over the last ``window`` seconds."""
    buckets = f"sum by ({scope.by}, le) (increase({scope.series['latency_buckets']}{scope.selector()}[{window}s]))"
    unit = float(scope.series["latency_unit_seconds"])
    quantile = f"histogram_quantile(0.95, {buckets})"
    return quantile if unit == 1 else f"{quantile} * {unit:g}"
