"""Wait for N consecutive healthy answers from one URL, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from airflow.triggers.base import TriggerEvent

from varai_deploy.triggers.base import ArgumentsTrigger


class HealthStreakTrigger(ArgumentsTrigger):
    """Fires ``healthy`` after ``streak`` consecutive 2xx answers, or ``timeout`` at ``deadline``.

    Any non-2xx answer or connection error resets the streak, so a flapping candidate never
    passes. The deadline is absolute (epoch seconds) so a triggerer restart does not extend it.
    """

    def __init__(self, url: str, streak: int, interval: float, deadline: float, request_timeout: float = 2.0):
        super().__init__(url=url, streak=streak, interval=interval, deadline=deadline, request_timeout=request_timeout)

    async def _probe(self, session) -> tuple[bool, str]:
        import aiohttp

        try:
            async with session.get(self.url) as resp:
                await resp.read()
                version = resp.headers.get("X-Served-Version", "")
                return 200 <= resp.status < 300, f"HTTP {resp.status}{f' from {version}' if version else ''}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            return False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import aiohttp

        consecutive = best = probes = 0
        last = "no answer yet"
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        # The session is closed before the event is yielded: the triggerer may never resume us.
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                healthy, last = await self._probe(session)
                probes += 1
                consecutive = consecutive + 1 if healthy else 0
                best = max(best, consecutive)
                if consecutive >= self.streak:
                    payload = {"status": "healthy", "probes": probes, "last": last}
                    break
                if time.time() + self.interval > self.deadline:
                    payload = {"status": "timeout", "probes": probes, "best_streak": best, "last": last}
                    break
                await asyncio.sleep(self.interval)
        yield TriggerEvent(payload)
