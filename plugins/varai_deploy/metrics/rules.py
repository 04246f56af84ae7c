"""The guide's automatic rollback triggers as PromQL, sustained over a window like an alert's ``for``.

A rule is broken only when its condition held at every evaluation step of the whole window
(``min_over_time`` over a subquery), so one bad scrape never rolls a release back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REQUESTS = "varai_http_requests_total"
DURATION = "varai_http_request_duration_seconds_bucket"


def _regex_literal(text: str) -> str:
    """``text`` matched literally by an RE2 regex inside a PromQL string (whose backslashes double)."""
    return re.sub(r"([.+*?()\[\]{}|^$\\])", r"\\\\\1", text)


@dataclass(frozen=True)
class Scope:
    """The series one operation is judged on: the version(s) it switched the services to, no health
    probes. A release switches every service to one version; a maintenance window's security updates
    switch each to its own rebuild (v1.4.2+sec.20261206, v1.4.1+sec.20261206)."""

    services: tuple[str, ...]
    version: str | tuple[str, ...]

    def selector(self, extra: str = "") -> str:
        services = "|".join(self.services)
        versions = (self.version,) if isinstance(self.version, str) else tuple(sorted(set(self.version)))
        if len(versions) == 1:
            version = f'version="{versions[0]}"'
        else:
            version = 'version=~"' + "|".join(_regex_literal(v) for v in versions) + '"'
        return f'{{service=~"{services}",{version},path_group!="health"{extra}}}'


def error_ratio(scope: Scope, rate_window: int, for_seconds: int, step: int) -> str:
    server_errors = scope.selector(',code=~"5.."')
    errors = f"sum by (service) (rate({REQUESTS}{server_errors}[{rate_window}s]))"
    total = f"sum by (service) (rate({REQUESTS}{scope.selector()}[{rate_window}s]))"
    ratio = f"(({errors}) or (({total}) * 0)) / ({total})"
    return f"min_over_time(({ratio})[{for_seconds}s:{step}s])"


def latency_p95(scope: Scope, rate_window: int, for_seconds: int, step: int) -> str:
    buckets = f"sum by (service, le) (rate({DURATION}{scope.selector()}[{rate_window}s]))"
    return f"min_over_time((histogram_quantile(0.95, {buckets}))[{for_seconds}s:{step}s])"


def request_count(scope: Scope, window: int) -> str:
    return f"sum by (service) (increase({REQUESTS}{scope.selector()}[{window}s]))"
