"""Post-switch analysis: the guide's automatic rollback triggers, judged while the release bakes.

Rules, each against the version this release switched to:
  * health:   N consecutive failed health checks of a switched service (a flap resets the count);
  * error:    error rate above the threshold for the whole error window;
  * latency:  p95 above the threshold for the whole latency window.
No data is not healthy: a service that has not served ``min_requests`` keeps the analysis
inconclusive, and at the deadline an inconclusive analysis fails safe (roll back).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from varai_deploy.metrics import MetricSource, MetricSourceError
from varai_deploy.metrics.rules import Scope, error_ratio, latency_p95, request_count
from varai_deploy.probe_identity import ProbeIdentity
from varai_deploy.triggers.base import ArgumentsTrigger


class ReleaseAnalysisTrigger(ArgumentsTrigger):
    def __init__(
        self,
        metrics_url: str,
        version: str | dict[str, str],
        health_urls: dict[str, str],
        switched_at: float,
        policy: dict[str, Any],
        metrics_conn_id: str | None = None,
        revision_labels: dict[str, str] | None = None,
        gcp_conn_id: str | None = None,
        audiences: dict[str, str] | None = None,
    ):
        """``revision_labels``: each service's value of ``policy["series"]``'s revision label (the
        switched revision's version or name); by default the version it was switched to. ``gcp_conn_id``
        and ``audiences``: whose ID token each service's health check carries (a private Cloud Run service)."""
        super().__init__(
            metrics_url=metrics_url,
            version=version,
            health_urls=health_urls,
            switched_at=switched_at,
            policy=policy,
            metrics_conn_id=metrics_conn_id,
            revision_labels=revision_labels,
            gcp_conn_id=gcp_conn_id,
            audiences=audiences or {},
        )
        #: What each query sends (a Google access token for Managed Prometheus), made in the triggerer by ``run``.
        self.metrics_headers: dict[str, str] = {}

    def _versions(self) -> str | tuple[str, ...]:
        """One release's version, or (a maintenance window's security updates) each service's own."""
        return self.version if isinstance(self.version, str) else tuple(sorted(set(self.version.values())))

    def _version_of(self, service: str | None) -> str:
        if isinstance(self.version, str):
            return self.version
        return self.version.get(service) or ", ".join(self._versions())

    def _scope(self) -> tuple[Scope, dict[str, str]]:
        """The query scope, and each service label's value mapped back to our service name (the backend
        may label them otherwise)."""
        from dataclasses import asdict

        from varai_deploy.config import MetricSeries

        series = self.policy.get("series") or asdict(MetricSeries())
        services = sorted(self.health_urls)
        revisions = self.revision_labels or {s: self._version_of(s) for s in services}
        labelled = {series["service_value"].format(service=s): s for s in services}
        return Scope(tuple(labelled), tuple(revisions[s] for s in services), series), labelled

    async def _query(
        self, source: MetricSource, scope: Scope, labelled: dict[str, str], promql: str
    ) -> dict[str, float]:
        """The query's value per service, keyed by our service names (``labelled``: from ``_scope``)."""
        values = await source.query(promql, by=scope.by)
        return {labelled[label]: value for label, value in values.items() if label in labelled}

    def _source(self) -> MetricSource:
        """Prometheus' query API: the sandbox's Prometheus, or Managed Service for Prometheus with its token."""
        from varai_deploy.metrics.prometheus import PrometheusSource

        return PrometheusSource(self.metrics_url, headers=self.metrics_headers)

    def _auth_headers(self) -> dict[str, str]:
        from varai_deploy.hooks.prometheus import PrometheusHook

        return PrometheusHook(self.metrics_conn_id).auth_headers() if self.metrics_conn_id else {}

    async def _health(self, session, identity: ProbeIdentity, service: str) -> bool:
        """One health check of ``service``'s switched revision; a token that cannot be minted fails it."""
        import aiohttp

        try:
            headers = await identity.headers_async(self.audiences.get(service))
        except Exception as exc:
            self.log.warning("No ID token for %s's health check: %s", service, exc)
            return False
        try:
            async with session.get(self.health_urls[service], headers=headers) as resp:
                await resp.read()
                return 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError):
            return False

    def _verdict(self, verdict: str, **detail: Any) -> dict[str, Any]:
        return {
            "verdict": verdict,
            "version": self._version_of(detail.get("service")),
            "services": sorted(self.health_urls),
            "seconds_after_switch": round(time.time() - self.switched_at, 1),
            "health": getattr(self, "health", {}),
            "measured": getattr(self, "measured", {}),
            "health_failures": self.policy["health_failures"],
            "min_requests": self.policy["min_requests"],
            **detail,
        }

    async def evaluate_metrics(self, elapsed: float) -> dict[str, Any] | None:
        """A broken metric rule, or None. Each rule is judged once its whole window has passed."""
        p, source = self.policy, self._source()
        scope, labelled = self._scope()
        step = max(1, int(p["interval_seconds"]))
        rules = [
            ("error_rate", p["error_rate_for_seconds"], p["error_rate_threshold"], error_ratio),
            ("latency_p95", p["latency_p95_for_seconds"], p["latency_p95_threshold_seconds"], latency_p95),
        ]
        for rule, window, threshold, promql in rules:
            if elapsed < window + p["rate_window_seconds"]:
                continue
            values = await self._query(source, scope, labelled, promql(scope, p["rate_window_seconds"], window, step))
            # What a passing verdict reports: each rule's last measurement against its threshold.
            self.measured[rule] = {"values": values, "threshold": threshold, "window_seconds": window}
            for service, value in sorted(values.items()):
                if value > threshold:
                    return self._verdict(
                        "rollback",
                        rule=rule,
                        service=service,
                        value=value,
                        threshold=threshold,
                        window_seconds=window,
                    )
        return None

    async def traffic_seen(self) -> dict[str, float]:
        p = self.policy
        scope, labelled = self._scope()
        counts = await self._query(self._source(), scope, labelled, request_count(scope, p["error_rate_for_seconds"]))
        return {service: counts.get(service, 0.0) for service in self.health_urls}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import aiohttp

        p = self.policy
        failures = dict.fromkeys(self.health_urls, 0)
        #: Every verdict says what the health checks saw: checks, failed ones, the longest failing streak.
        self.health = {s: {"checks": 0, "failed": 0, "longest_failing_streak": 0} for s in self.health_urls}
        self.measured: dict[str, dict[str, Any]] = {}
        last_metric_error = None
        try:  # the connection's credentials, in a thread: a token request must not block the triggerer's loop
            self.metrics_headers = await asyncio.to_thread(self._auth_headers)
        except Exception as exc:  # judged like a metric source that does not answer: inconclusive
            last_metric_error = f"no credentials for the metrics connection {self.metrics_conn_id}: {exc}"
        timeout = aiohttp.ClientTimeout(total=max(1.0, p["interval_seconds"]))
        identity = ProbeIdentity(self.gcp_conn_id)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                elapsed = time.time() - self.switched_at
                healthy = await asyncio.gather(*(self._health(session, identity, s) for s in self.health_urls))
                for service, ok in zip(self.health_urls, healthy, strict=True):
                    failures[service] = 0 if ok else failures[service] + 1
                    seen = self.health[service]
                    seen["checks"] += 1
                    seen["failed"] += 0 if ok else 1
                    seen["longest_failing_streak"] = max(seen["longest_failing_streak"], failures[service])
                broken = [s for s, n in failures.items() if n >= p["health_failures"]]
                if broken:
                    payload = self._verdict(
                        "rollback",
                        rule="health",
                        service=broken[0],
                        value=failures[broken[0]],
                        threshold=p["health_failures"],
                        window_seconds=None,
                    )
                    break
                try:
                    payload = await self.evaluate_metrics(elapsed)
                    if payload:
                        break
                    if elapsed >= p["duration_seconds"]:
                        seen = await self.traffic_seen()
                        starved = {s: n for s, n in seen.items() if n < p["min_requests"]}
                        if not starved:
                            payload = self._verdict("pass", requests=seen)
                            break
                        last_metric_error = "too little traffic to judge: " + ", ".join(
                            f"{s} served {n:.0f} < {p['min_requests']}" for s, n in starved.items()
                        )
                except MetricSourceError as exc:
                    last_metric_error = str(exc)
                if elapsed >= p["deadline_seconds"]:
                    payload = self._verdict(
                        "rollback",
                        rule="inconclusive",
                        service=None,
                        value=None,
                        threshold=None,
                        window_seconds=p["deadline_seconds"],
                        reason=last_metric_error or "no verdict before the deadline",
                    )
                    break
                await asyncio.sleep(p["interval_seconds"])
        yield TriggerEvent(payload)
