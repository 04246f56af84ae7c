"""PromQL over Prometheus's HTTP API (``/api/v1/query``), asynchronously for the triggerer."""

from __future__ import annotations

import math

from varai_deploy.metrics import MetricSourceError


class PrometheusSource:
    """``headers``: what every query sends (Managed Service for Prometheus: a Google access token)."""

    def __init__(self, url: str, timeout: float = 5.0, headers: dict[str, str] | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = headers or {}

    async def query(self, promql: str, by: str = "service") -> dict[str, float]:
        import aiohttp

        try:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout), headers=self.headers
                ) as session,
                session.get(f"{self.url}/api/v1/query", params={"query": promql}) as resp,
            ):
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise MetricSourceError(f"Prometheus at {self.url} did not answer: {type(exc).__name__}: {exc}") from exc
        if body.get("status") != "success":
            raise MetricSourceError(f"Prometheus refused the query: {body.get('error', body)}")
        values: dict[str, float] = {}
        for series in body["data"]["result"]:
            value = float(series["value"][1])
            if not math.isnan(value):
                values[series["metric"].get(by, "")] = value
        return values
