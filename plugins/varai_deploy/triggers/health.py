"""Wait for N consecutive healthy answers from one URL, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from varai_deploy.probe_identity import ProbeIdentity
from varai_deploy.triggers.base import ArgumentsTrigger


async def _probe(session, url: str, headers: dict[str, str]) -> tuple[bool, str]:
    import aiohttp

    try:
        async with session.get(url, headers=headers) as resp:
            await resp.read()
            version = resp.headers.get("X-Served-Version", "")
            return 200 <= resp.status < 300, f"HTTP {resp.status}{f' from {version}' if version else ''}"
    except (TimeoutError, aiohttp.ClientError) as exc:
        return False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def streak(
    session,
    url: str,
    streak: int,
    interval: float,
    deadline: float,
    identity: ProbeIdentity | None = None,
    audience: str | None = None,
) -> dict:
    """Probe ``url`` until ``streak`` consecutive 2xx answers (``healthy``) or ``deadline`` (``timeout``), as
    ``identity`` for the service at ``audience`` (a private one needs it)."""
    consecutive = best = probes = 0
    while True:
        try:
            headers: dict[str, str] | None = await identity.headers_async(audience) if identity else {}
        except Exception as exc:  # no token, no healthy answer: said, and minted again at the next probe
            headers, last = None, f"no ID token for {audience}: {type(exc).__name__}: {exc}"
        healthy = False
        if headers is not None:
            healthy, last = await _probe(session, url, headers)
        probes += 1
        consecutive = consecutive + 1 if healthy else 0
        best = max(best, consecutive)
        if consecutive >= streak:
            return {"status": "healthy", "probes": probes, "last": last}
        if time.time() + interval > deadline:
            return {"status": "timeout", "probes": probes, "best_streak": best, "last": last}
        await asyncio.sleep(interval)


class HealthStreakTrigger(ArgumentsTrigger):
    """Fires ``healthy`` after ``streak`` consecutive 2xx answers, or ``timeout`` at ``deadline``.

    Any non-2xx answer or connection error resets the streak, so a flapping candidate never
    passes. The deadline is absolute (epoch seconds) so a triggerer restart does not extend it.
    """

    def __init__(
        self,
        url: str,
        streak: int,
        interval: float,
        deadline: float,
        request_timeout: float = 2.0,
        gcp_conn_id: str | None = None,
        audience: str | None = None,
    ):
        super().__init__(
            url=url,
            streak=streak,
            interval=interval,
            deadline=deadline,
            request_timeout=request_timeout,
            gcp_conn_id=gcp_conn_id,
            audience=audience,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        # The session is closed before the event is yielded: the triggerer may never resume us.
        async with aiohttp.ClientSession(timeout=timeout) as session:
            identity = ProbeIdentity(self.gcp_conn_id)
            payload = await streak(
                session, self.url, self.streak, self.interval, self.deadline, identity, self.audience
            )
        yield TriggerEvent(payload)


class HealthStreaksTrigger(ArgumentsTrigger):
    """The same streak for several URLs at once (``{key: url}``); fires one event, ``{"results":
    {key: result}, "carry": carry}``. ``carry`` comes back as given: what the resumed task needs,
    without defer kwargs (``airflow dags test`` drops them, Airflow 3.3)."""

    def __init__(
        self,
        urls: dict[str, str],
        streak: int,
        interval: float,
        deadline: float,
        request_timeout: float = 2.0,
        carry: Any = None,
        gcp_conn_id: str | None = None,
        audiences: dict[str, str] | None = None,
    ):
        super().__init__(
            urls=urls,
            streak=streak,
            interval=interval,
            deadline=deadline,
            request_timeout=request_timeout,
            carry=carry,
            gcp_conn_id=gcp_conn_id,
            audiences=audiences or {},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            keys, identity = list(self.urls), ProbeIdentity(self.gcp_conn_id)
            results = await asyncio.gather(
                *(
                    streak(session, url, self.streak, self.interval, self.deadline, identity, self.audiences.get(k))
                    for k, url in self.urls.items()
                )
            )
        yield TriggerEvent({"results": dict(zip(keys, results, strict=True)), "carry": self.carry})
