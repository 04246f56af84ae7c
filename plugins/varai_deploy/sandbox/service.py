"""One version of one AI Discovery service, as a local HTTP process in a colour slot.

``python -m varai_deploy.sandbox.service --service S --version V --colour C --port P --home H``

It answers like the real service would through the gateway (same paths, JSON), names itself in
``X-Served-*`` headers so callers can tell which revision answered, exposes Prometheus metrics
labelled with its version (rollback analysis queries them), and misbehaves as the faults
registered for its version say. Like the real one, it keeps what it serves in its database (see
app_data.py): each working answer is one row, and without its store it answers 503.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from varai_deploy.sandbox.app_data import Unavailable, Writer
from varai_deploy.sandbox.faults import CRASH_EXIT_CODE, CRASH_MESSAGE, ActiveFaults
from varai_deploy.sandbox.serving import QuietHandler, bind_or_explain, serve_until_signalled
from varai_deploy.services import SERVICE_NAMES, SERVICES

FACE_SHAPES = ("oval", "round", "square", "heart", "oblong", "diamond")
FRAMES = (
    ("VA-101", "Aviator Classic", "aviator"),
    ("VA-102", "Round Wire", "round"),
    ("VA-103", "Wayfarer Bold", "wayfarer"),
    ("VA-104", "Cat Eye Luxe", "cat-eye"),
    ("VA-105", "Rectangle Slim", "rectangle"),
    ("VA-106", "Browline Heritage", "browline"),
    ("VA-107", "Geometric Hex", "geometric"),
    ("VA-108", "Oversized Square", "square"),
    ("VA-109", "Rimless Air", "rimless"),
)
#: Frame styles that flatter each face shape (the usual optician's rules of thumb).
STYLES_FOR_SHAPE = {
    "oval": ("aviator", "wayfarer", "geometric"),
    "round": ("rectangle", "square", "wayfarer"),
    "square": ("round", "cat-eye", "rimless"),
    "heart": ("aviator", "rimless", "browline"),
    "oblong": ("oversized", "square", "browline"),
    "diamond": ("cat-eye", "browline", "round"),
}
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Request count by code and latency, labelled with the revision that served them."""

    def __init__(self, service: str, version: str, colour: str) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            ProcessCollector,
            disable_created_metrics,
        )

        disable_created_metrics()  # *_created series only add noise to every scrape
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # memory and CPU: the resource-usage alert's
        self.labels = {"service": service, "version": version, "colour": colour}
        self.requests = Counter(
            "varai_http_requests",
            "HTTP requests answered, by status code and endpoint group.",
            [*self.labels, "code", "path_group"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "varai_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint group.",
            [*self.labels, "path_group"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        info = Gauge(
            "varai_service_info",
            "The revision this process serves (always 1).",
            [*self.labels],
            registry=self.registry,
        )
        info.labels(**self.labels).set(1)

    def observe(self, code: int, path_group: str, seconds: float) -> None:
        self.requests.labels(**self.labels, code=str(code), path_group=path_group).inc()
        self.duration.labels(**self.labels, path_group=path_group).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class ServiceApp:
    """The behaviour of one service revision, independent of the HTTP plumbing."""

    def __init__(
        self, service: str, version: str, colour: str, faults: ActiveFaults, writer: Writer | None = None
    ) -> None:
        self.service = SERVICES[service]
        self.version = version
        self.colour = colour
        self.faults = faults
        #: Where working answers are recorded; None: nowhere (no database, or a service that keeps no data).
        self.writer = writer
        self.metrics = Metrics(service, version, colour)
        self.started = time.time()
        #: When the faults' clock started: at start, or when they were last applied (SIGHUP).
        self._fault_epoch = time.monotonic()
        #: Set by the SIGHUP handler (an assignment, safe at any moment); the next request reloads.
        self.reload_requested_at: float | None = None
        self._faults_file: Path | None = None
        self._lock = threading.Lock()
        self._work_count = 0
        self.events_received = 0

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [
            ("X-Served-Version", self.version),
            ("X-Served-Colour", self.colour),
            ("X-Served-Service", self.service.name),
        ]

    def identity(self) -> dict[str, str]:
        return {"service": self.service.name, "version": self.version, "colour": self.colour}

    def handle(
        self, method: str, target: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, str]:
        """Answer one request: (status, JSON payload, path group for metrics)."""
        self.reload_faults()
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        query = parse_qs(url.query)
        if path in ("/health", self.service.health_path):
            if method not in ("GET", "HEAD"):
                return 405, {"error": f"{method} not allowed on {path}"}, "health"
            if self._unhealthy_now():
                return 503, {"status": "unhealthy", **self.identity(), "reason": "fault injected"}, "health"
            return 200, {"status": "ok", **self.identity()}, "health"
        endpoint = self._endpoints().get(path)
        if endpoint is None:
            return 404, {"error": f"no such path {path} on {self.service.name}", **self.identity()}, "unknown"
        want_method, func, group = endpoint
        if method != want_method and not (want_method == "GET" and method == "HEAD"):
            return 405, {"error": f"{method} not allowed on {path}; use {want_method}"}, group
        if self._inject_error():
            return 500, {"error": "fault injected: internal error", **self.identity()}, group
        site = {k.lower(): v for k, v in (headers or {}).items()}.get("sec-fetch-site", "none")
        if self.faults.browser_refused and site not in ("same-origin", "none"):
            return 403, {"error": f"fault injected: {site} request refused", **self.identity()}, group
        status, payload, row = func(query, body)
        if row is not None and self.writer is not None:
            try:
                self.writer.insert(row)
            except Unavailable as exc:
                return 503, {"error": f"database unavailable: {exc}", **self.identity()}, group
        return status, {**payload, **self.identity()}, group

    def watch_faults(self, faults_file: Path) -> None:
        """On SIGHUP (``Sandbox.apply_faults``), take this version's faults from ``faults_file``
        again, their clock starting at the signal: a serving revision that goes bad."""
        self._faults_file = faults_file
        signal.signal(signal.SIGHUP, lambda _signum, _frame: setattr(self, "reload_requested_at", time.monotonic()))

    def reload_faults(self) -> None:
        requested = self.reload_requested_at
        if requested is None or self._faults_file is None:
            return
        with self._lock:
            if self.reload_requested_at is None:
                return
            self.faults = ActiveFaults.for_process(self._faults_file, self.version, self.service.name)
            self._fault_epoch, self.reload_requested_at = requested, None
        print(
            f"{self.service.name} {self.version} ({self.colour}): faults applied: {self.faults.describe() or 'none'}",
            flush=True,
        )

    def _unhealthy_now(self) -> bool:
        elapsed = time.monotonic() - self._fault_epoch
        if self.faults.unhealthy and elapsed >= self.faults.unhealthy_after_seconds:
            return True
        # flap: by the clock since start (or apply), so every prober sees the same phase at the same moment.
        return self.faults.flap_unhealthy(elapsed)

    def _inject_error(self) -> bool:
        """Exactly ``rate`` of working-endpoint answers fail, evenly spread (deterministic)."""
        rate = self.faults.error_rate
        if not rate:
            return False
        with self._lock:
            self._work_count += 1
            n = self._work_count
        return math.floor(n * rate) > math.floor((n - 1) * rate)

    def _endpoints(self) -> dict[str, tuple[str, Any, str]]:
        return {
            "ai-discovery": {"/ai/discover": ("GET", self.discover, "discover")},
            "face-analysis": {"/face/analyze": ("POST", self.analyze, "analyze")},
            "recommendation": {"/recommendations": ("GET", self.recommend, "recommendations")},
            "analytics": {"/analytics/events": ("POST", self.events, "events")},
            "api-gateway": {"/api/status": ("GET", self.api_status, "status")},
        }[self.service.name]

    # -- the working endpoints: (status, payload, the row to store or None) --------------------
    def discover(self, query: dict[str, list[str]], _body: bytes) -> tuple[int, dict, dict | None]:
        q = (query.get("q") or [""])[0].strip()
        words = set(q.lower().replace("-", " ").split())

        def score(frame: tuple[str, str, str]) -> tuple[int, int]:
            overlap = len(words & set(f"{frame[1]} {frame[2]}".lower().replace("-", " ").split()))
            return overlap, _stable_int(q + frame[0]) % 1000

        ranked = [] if self.faults.no_results else sorted(FRAMES, key=score, reverse=True)[:3]
        suggestions = [{"sku": sku, "name": name, "style": style} for sku, name, style in ranked]
        row = {"query": q, "result_count": len(ranked), "top_sku": ranked[0][0] if ranked else None}
        return 200, {"query": q, "suggestions": suggestions}, row

    def analyze(self, _query: dict[str, list[str]], body: bytes) -> tuple[int, dict, dict | None]:
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return 400, {"error": 'body must be JSON, e.g. {"image": "<base64>"}'}, None
        canonical = json.dumps(data, sort_keys=True)
        digest = _stable_int(canonical)
        shape, confidence = FACE_SHAPES[digest % len(FACE_SHAPES)], round(0.7 + (digest % 30) / 100, 2)
        # The analysis is kept, never the image: only its hash, to tell repeated uploads apart.
        row = {
            "image_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
            "face_shape": shape,
            "confidence": confidence,
        }
        return 200, {"face_shape": shape, "confidence": confidence, "stored": False}, row

    def recommend(self, query: dict[str, list[str]], _body: bytes) -> tuple[int, dict, dict | None]:
        shape = (query.get("face_shape") or [""])[0]
        if shape not in STYLES_FOR_SHAPE:
            return 400, {"error": f"face_shape must be one of: {', '.join(FACE_SHAPES)}"}, None
        styles = STYLES_FOR_SHAPE[shape]
        products = [
            {"sku": sku, "name": name, "style": style, "price": 89 + 10 * (int(sku[-1]) % 5)}
            for sku, name, style in FRAMES
            if style in styles
        ]
        row = {"face_shape": shape, "shown_skus": [p["sku"] for p in products]}
        return 200, {"face_shape": shape, "products": products}, row

    def events(self, _query: dict[str, list[str]], body: bytes) -> tuple[int, dict, dict | None]:
        try:
            data = json.loads(body) if body.strip() else {"events": []}
        except ValueError:
            return 400, {"error": 'body must be JSON: one event object or {"events": [...]}'}, None
        if isinstance(data, dict) and isinstance(data.get("events"), list):
            count, event_type = len(data["events"]), "batch"
        elif isinstance(data, list):
            count, event_type = len(data), "batch"
        else:
            count = 1
            event_type = str(data.get("type") or "unknown") if isinstance(data, dict) else "unknown"
        with self._lock:
            self.events_received += count
            total = self.events_received
        row = {"event_type": event_type, "event_count": count, "payload": json.dumps(data)}
        return 202, {"accepted": count, "total": total}, row

    def api_status(self, _query: dict[str, list[str]], _body: bytes) -> tuple[int, dict, dict | None]:
        return 200, {"status": "ok", "uptime_seconds": round(time.time() - self.started, 3)}, None


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def make_handler(app: ServiceApp) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def _answer(self) -> None:
            started = time.perf_counter()
            path = urlsplit(self.path).path
            app.reload_faults()  # before the latency fault, which it may change
            if path == "/metrics":
                body, ctype = app.metrics.render()
                self.send_payload(200, body, app.headers, content_type=ctype)
                return
            # A slow release is slow where users feel it; its health probe stays cheap, as real
            # health endpoints are, so it passes the health gate and the latency rule must catch it.
            if app.faults.latency_seconds and path not in ("/health", app.service.health_path):
                time.sleep(app.faults.latency_seconds)
            status, payload, group = app.handle(self.command, self.path, self.read_body(), dict(self.headers.items()))
            self.send_json(status, payload, app.headers)
            app.metrics.observe(status, group, time.perf_counter() - started)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.service")
    parser.add_argument("--service", required=True, choices=SERVICE_NAMES)
    parser.add_argument("--version", required=True)
    parser.add_argument("--colour", required=True, choices=("blue", "green"))
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    name = f"{args.service} {args.version} ({args.colour})"
    faults = ActiveFaults.for_process(args.home / "faults.json", args.version, args.service)
    print(
        f"{name}: pid {os.getpid()} on {args.host}:{args.port}; faults: {faults.describe() or 'none'}",
        flush=True,
    )
    if faults.crash:
        print(CRASH_MESSAGE, file=sys.stderr, flush=True)
        return CRASH_EXIT_CODE
    app = ServiceApp(
        args.service, args.version, args.colour, faults, Writer.for_service(args.home, args.service, args.version, name)
    )
    app.watch_faults(args.home / "faults.json")
    server = bind_or_explain(args.host, args.port, make_handler(app), name)
    if server is None:
        return 2
    print(f"{name}: serving", flush=True)
    return serve_until_signalled(server, name)


if __name__ == "__main__":
    sys.exit(main())
