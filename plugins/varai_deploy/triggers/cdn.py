"""Wait until the CDN serves a release's bytes at every URL, as a merchant's browser would get them."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from varai_deploy.triggers.base import ArgumentsTrigger


def _directives(value: str | None) -> set[str]:
    """Cache-Control compared as directives: case, spacing and order do not matter."""
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


class CdnHashTrigger(ArgumentsTrigger):
    """Fires ``success`` once every URL answers 200 with a body of sha256 ``sha256`` (and the expected
    Cache-Control where ``expect_cache_control`` names one), or ``timeout`` with what each URL got wrong.

    A URL that passed is not asked again. The deadline is absolute (epoch seconds, from ``timeout``
    when the trigger is built) so a triggerer restart does not extend the wait.
    """

    def __init__(
        self,
        urls: list[str],
        sha256: str,
        expect_cache_control: dict[str, str] | None = None,
        poll_interval: float = 1.0,
        timeout: float = 120.0,
        deadline: float | None = None,
        request_timeout: float = 5.0,
    ):
        super().__init__(
            urls=list(urls),
            sha256=sha256,
            expect_cache_control=dict(expect_cache_control) if expect_cache_control else None,
            poll_interval=poll_interval,
            timeout=timeout,
            deadline=time.time() + timeout if deadline is None else deadline,
            request_timeout=request_timeout,
        )

    async def _check(self, session, url: str) -> dict[str, Any]:
        import aiohttp

        seen: dict[str, Any] = {"ok": False, "status": None, "sha256": None, "cache_control": None, "size": None}
        try:
            async with session.get(url) as resp:
                body = await resp.read()
                seen.update(
                    status=resp.status,
                    sha256=hashlib.sha256(body).hexdigest(),
                    cache_control=resp.headers.get("Cache-Control"),
                    size=len(body),
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            seen["problem"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return seen
        expected_cc = (self.expect_cache_control or {}).get(url)
        if seen["status"] != 200:
            seen["problem"] = f"HTTP {seen['status']}"
        elif seen["sha256"] != self.sha256:
            seen["problem"] = f"sha256 {seen['sha256']} ({seen['size']} bytes), expected {self.sha256}"
        elif expected_cc is not None and _directives(seen["cache_control"]) != _directives(expected_cc):
            seen["problem"] = f"Cache-Control {seen['cache_control']!r}, expected {expected_cc!r}"
        else:
            seen["ok"] = True
        return seen

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import aiohttp

        seen: dict[str, dict[str, Any]] = {}
        polls = 0
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        # The session is closed before the event is yielded: the triggerer may never resume us.
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                pending = [url for url in self.urls if not seen.get(url, {}).get("ok")]
                answers = await asyncio.gather(*(self._check(session, url) for url in pending))
                seen.update(zip(pending, answers, strict=True))
                polls += 1
                failing = [url for url in self.urls if not seen[url]["ok"]]
                if not failing:
                    payload = {"status": "success", "polls": polls, "urls": seen}
                    break
                if time.time() + self.poll_interval > self.deadline:
                    message = "; ".join(f"{url}: {seen[url]['problem']}" for url in failing)
                    payload = {"status": "timeout", "polls": polls, "urls": seen, "message": message}
                    break
                await asyncio.sleep(self.poll_interval)
        yield TriggerEvent(payload)
