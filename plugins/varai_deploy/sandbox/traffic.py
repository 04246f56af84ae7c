"""Steady synthetic traffic through the sandbox gateway, and the log that proves what it saw.

``python -m varai_deploy.sandbox.traffic --home H --gateway URL --rps R --max-seconds S``

Real users are what make Prometheus's numbers mean something and what a zero-downtime release
must not hurt, so the sandbox has a stand-in for them: requests at a steady rate, spread evenly
(one every 1/R seconds, never bursts), cycling through every service's working endpoint and
health path as the gateway exposes them. A small pool of worker threads sends them, so a slow
answer (a ``slow`` fault) delays nobody else's schedule; when every worker is busy the tick is
skipped and counted rather than queued into a burst. Services with nothing live yet are left
out until their first release (there is no one to serve; their 503s would say nothing).

Every request becomes one JSON line in ``<home>/traffic/requests.jsonl``::

    {"ts": 1767000000.123, "service": "recommendation", "method": "GET",
     "path": "/recommendations?face_shape=oval", "status": 200, "version": "v1.0.0",
     "colour": "blue", "latency": 0.004, "error": null}

``ts`` is the wall-clock time the request was sent; ``status`` is 0 when no HTTP answer came
(refused, reset, timed out) and ``error`` then says why; a request *failed* when its status is
0 or >= 500. The log rotates to ``requests.jsonl.1`` past ``LOG_MAX_BYTES``. :func:`report`
reads both files.

It only ever talks to a loopback address, stops on SIGTERM, and exits by itself after
``--max-seconds`` (at most four hours) so a forgotten sandbox does not load the machine forever.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import json
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from varai_deploy.sandbox.serving import SignalFlag
from varai_deploy.services import SERVICES

MAX_RPS = 200.0
MAX_SECONDS = 4 * 3600.0
#: Long enough that a deliberately slow answer (a few seconds) counts as slow, not failed.
REQUEST_TIMEOUT_SECONDS = 10.0
LOG_MAX_BYTES = 32 * 1024 * 1024
#: On SIGTERM, requests in flight get this long to finish (and be logged).
DRAIN_SECONDS = 2.0
SUMMARY_EVERY_SECONDS = 60.0
FAILURES_CAP = 100
USER_AGENT = "varai-sandbox-traffic/1"

#: What a synthetic user sends to each POST endpoint.
POST_BODIES = {
    "/face/analyze": {"image": "data:image/png;base64,iVBORw0KGgo="},
    "/analytics/events": {"type": "page_view", "source": "sandbox-traffic"},
}


@dataclass(frozen=True)
class Call:
    service: str
    method: str
    path: str
    body: bytes | None = None


def plan() -> list[Call]:
    """Every service's working endpoint, then every health path: one round of the cycle."""
    calls = []
    for svc in SERVICES.values():
        method, path = svc.probe
        body = POST_BODIES.get(path.split("?", 1)[0], {}) if method == "POST" else None
        calls.append(Call(svc.name, method, path, json.dumps(body).encode() if body is not None else None))
    calls += [Call(svc.name, "GET", svc.health_path) for svc in SERVICES.values()]
    return calls


def is_failure(record: dict[str, Any]) -> bool:
    status = record.get("status")
    return not isinstance(status, int) or status == 0 or status >= 500


def check_gateway(url: str) -> tuple[str, int]:
    """(host, port) of an http:// URL on loopback; anything else is refused."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"gateway must be an http:// URL such as http://127.0.0.1:18080, got {url!r}")
    host = parts.hostname
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        raise ValueError(
            f"refusing to send traffic to {host}: the load generator only targets the sandbox gateway "
            "on loopback (127.0.0.0/8, ::1 or localhost)"
        )
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ValueError(f"bad port in gateway URL {url!r}: {exc}") from None
    return host, port


# -- the log -----------------------------------------------------------------------------------
class RequestLog:
    """Appends one JSON line per request, thread-safe, rotating to ``<name>.1`` when full."""

    def __init__(self, path: Path, max_bytes: int = LOG_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")
        self._size = self._fh.tell()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            if self._size and self._size + len(line) > self.max_bytes:
                self._fh.close()
                os.replace(self.path, rotated(self.path))
                self._fh = self.path.open("a", encoding="utf-8")
                self._size = 0
            self._fh.write(line)
            self._fh.flush()
            self._size += len(line)

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def rotated(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def read_records(path: Path, since: float | None = None, until: float | None = None) -> Iterator[dict]:
    """The logged requests sent in [since, until], oldest file first; torn or foreign lines skipped."""
    for file in (rotated(path), path):
        try:
            if since is not None and file != path and file.stat().st_mtime < since:
                continue  # everything in it was written before `since`
            fh = file.open(encoding="utf-8")
        except OSError:
            continue
        with fh:
            for line in fh:
                try:
                    record = json.loads(line)
                    ts = float(record["ts"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line being written right now, or not ours
                if (since is None or ts >= since) and (until is None or ts <= until):
                    yield record


def report(
    path: Path, since: float | None = None, until: float | None = None, failures_cap: int = FAILURES_CAP
) -> dict[str, Any]:
    """Count what the generator saw: totals, by status/version/service/path, and the failures."""
    total = failed = 0
    by_status: dict[int, int] = {}
    groups: dict[str, dict[str, dict[str, int]]] = {"by_version": {}, "by_service": {}, "by_path": {}}
    failures: list[dict[str, Any]] = []
    first_ts = last_ts = first_failure = last_failure = None
    for record in read_records(path, since, until):
        ts = float(record["ts"])
        bad = is_failure(record)
        total += 1
        failed += bad
        status = record.get("status") if isinstance(record.get("status"), int) else 0
        by_status[status] = by_status.get(status, 0) + 1
        keys = {
            "by_version": str(record.get("version") or "unknown"),
            "by_service": str(record.get("service")),
            "by_path": str(record.get("path")),
        }
        for group, key in keys.items():
            counts = groups[group].setdefault(key, {"total": 0, "failed": 0})
            counts["total"] += 1
            counts["failed"] += bad
        first_ts = ts if first_ts is None else min(first_ts, ts)
        last_ts = ts if last_ts is None else max(last_ts, ts)
        if bad:
            first_failure = ts if first_failure is None else min(first_failure, ts)
            last_failure = ts if last_failure is None else max(last_failure, ts)
            failures.append(record)
    failures.sort(key=lambda r: r["ts"])
    return {
        "since": since,
        "until": until,
        "total": total,
        "failed": failed,
        "error_rate": failed / total if total else 0.0,
        "first_ts": first_ts,
        "last_ts": last_ts,
        "by_status": {str(code): by_status[code] for code in sorted(by_status)},
        **{group: dict(sorted(counts.items())) for group, counts in groups.items()},
        "first_failure_ts": first_failure,
        "last_failure_ts": last_failure,
        "failures": failures[:failures_cap],
        "failures_truncated": len(failures) > failures_cap,
        "log": str(path),
    }


# -- the generator -----------------------------------------------------------------------------
class Generator:
    """``api_key``: the shoppers' widget API key, sent as the widget sends it (``X-API-Key``)."""

    def __init__(
        self,
        host: str,
        port: int,
        rps: float,
        log: RequestLog,
        routes_file: Path | None = None,
        api_key: str | None = None,
    ) -> None:
        from varai_deploy.sandbox.routes import RouteTable

        self.host, self.port, self.rps, self.log = host, port, rps, log
        self.api_key = api_key
        self.routes = RouteTable(routes_file) if routes_file else None
        self.calls = plan()
        self.workers = max(8, min(128, math.ceil(rps * 3)))
        self._queue: queue.SimpleQueue[Call] = queue.SimpleQueue()
        self._next = 0
        self._counts_lock = threading.Lock()
        self.in_flight = self.sent = self.failed = self.skipped = 0

    def _next_call(self) -> Call | None:
        """The next call in the cycle whose service has something live (all, without routes)."""
        for _ in range(len(self.calls)):
            call = self.calls[self._next % len(self.calls)]
            self._next += 1
            if self.routes is None or self.routes.route_for(call.service):
                return call
        return None

    def send(self, call: Call) -> dict[str, Any]:
        headers = {"User-Agent": USER_AGENT, "Connection": "close"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        ts = time.time()
        started = time.perf_counter()
        status, version, colour, error = 0, None, None, None
        conn = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT_SECONDS)
        try:
            conn.request(call.method, call.path, body=call.body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            version, colour = resp.getheader("X-Served-Version"), resp.getheader("X-Served-Colour")
            if status >= 500:
                error = f"HTTP {status}" + (f": {detail}" if (detail := _error_text(data)) else "")
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        finally:
            conn.close()
        return {
            "ts": round(ts, 6),
            "service": call.service,
            "method": call.method,
            "path": call.path,
            "status": status,
            "version": version,
            "colour": colour,
            "latency": round(time.perf_counter() - started, 6),
            "error": error[:200] if error else None,
        }

    def _worker(self) -> None:
        while True:
            call = self._queue.get()
            try:
                record = self.send(call)
                self.log.write(record)
                with self._counts_lock:
                    self.sent += 1
                    self.failed += is_failure(record)
            except Exception as exc:  # a logging failure must not kill the worker
                print(f"traffic: could not record a request: {exc!r}", file=sys.stderr, flush=True)
            finally:
                with self._counts_lock:
                    self.in_flight -= 1

    def _dispatch(self, call: Call) -> bool:
        """Hand the call to an idle worker; False (and counted as skipped) when all are busy."""
        with self._counts_lock:
            if self.in_flight >= self.workers:
                self.skipped += 1
                return False
            self.in_flight += 1
        self._queue.put(call)
        return True

    def run(self, stop: SignalFlag, max_seconds: float) -> None:
        interval = 1.0 / self.rps
        # Daemon threads: a request still hanging when we stop must not hold the process up.
        for i in range(self.workers):
            threading.Thread(target=self._worker, name=f"traffic-{i}", daemon=True).start()
        start = time.monotonic()
        deadline = start + max_seconds
        tick = start
        next_summary = start + SUMMARY_EVERY_SECONDS
        try:
            while not stop.raised:
                now = time.monotonic()
                if now >= deadline:
                    print(f"traffic: reached --max-seconds {max_seconds:g}; stopping", flush=True)
                    break
                if tick > now:
                    if stop.sleep(tick - now, step=0.02):
                        break
                elif now - tick > interval:
                    tick = now  # fell behind (a busy machine): drop the missed ticks, never burst
                tick += interval
                if now >= next_summary:
                    next_summary += SUMMARY_EVERY_SECONDS
                    self._summary()
                call = self._next_call()
                if call is not None:
                    self._dispatch(call)
        finally:
            drain_until = time.monotonic() + DRAIN_SECONDS
            while self.in_flight and time.monotonic() < drain_until:
                time.sleep(0.02)
            self._summary()

    def _summary(self) -> None:
        with self._counts_lock:
            sent, failed, skipped = self.sent, self.failed, self.skipped
        print(f"traffic: {sent} sent, {failed} failed, {skipped} skipped (all workers busy)", flush=True)


def _error_text(data: bytes) -> str | None:
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    return str(error)[:150] if error else None


def shoppers_key(home: Path, environment: str = "sandbox") -> str | None:
    """The synthetic shoppers' API key, as ``sandbox up`` made it (None before any up)."""
    from varai_deploy.sandbox.credentials import api_key
    from varai_deploy.sandbox.settings import SandboxSettings

    if not (home / "credentials.json").is_file():
        return None
    return api_key(SandboxSettings(home=home), "sandbox-shoppers", environment)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.traffic")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--gateway", required=True, help="the sandbox gateway, e.g. http://127.0.0.1:18080")
    parser.add_argument("--rps", required=True, type=float, help=f"requests per second (0-{MAX_RPS:g}]")
    parser.add_argument(
        "--max-seconds", type=float, default=MAX_SECONDS, help=f"stop after this long (<= {MAX_SECONDS:g})"
    )
    args = parser.parse_args(argv)
    try:
        host, port = check_gateway(args.gateway)
    except ValueError as exc:
        print(f"traffic: {exc}", file=sys.stderr, flush=True)
        return 2
    if not 0 < args.rps <= MAX_RPS:
        print(f"traffic: --rps must be in (0, {MAX_RPS:g}], got {args.rps:g}", file=sys.stderr, flush=True)
        return 2
    if not 0 < args.max_seconds <= MAX_SECONDS:
        print(f"traffic: --max-seconds must be in (0, {MAX_SECONDS:g}]", file=sys.stderr, flush=True)
        return 2

    stop = SignalFlag()  # the handler takes no lock: a lock-taking one can deadlock the main thread
    log = RequestLog(args.home / "traffic" / "requests.jsonl")
    generator = Generator(host, port, args.rps, log, args.home / "routes.json", api_key=shoppers_key(args.home))
    print(
        f"traffic: pid {os.getpid()}, {args.rps:g} req/s to {args.gateway} for at most "
        f"{args.max_seconds:g}s with {generator.workers} workers; log {log.path}",
        flush=True,
    )
    try:
        generator.run(stop, args.max_seconds)
    finally:
        with contextlib.suppress(OSError):
            log.close()
    print("traffic: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
