"""Where a release's health is measured: one small interface, Prometheus behind it today.

Production's Cloud Monitoring speaks PromQL too (Managed Service for Prometheus exposes the same
query API), so a source is simply "evaluate this PromQL now".
"""

from __future__ import annotations

from typing import Protocol


class MetricSource(Protocol):
    async def query(self, promql: str, by: str = "service") -> dict[str, float]:
        """Evaluate an instant query; returns the value of each series keyed by its ``by`` label."""


class MetricSourceError(RuntimeError):
    pass
