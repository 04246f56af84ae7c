"""The sandbox's load balancer: one port, a URL map by path prefix, traffic to the live colour.

``python -m varai_deploy.sandbox.gateway --home H --host 127.0.0.1 --port 18080``

It plays the part of production's load balancer: a request goes to the live colour's process
of the service owning its path prefix, and the answer (status, headers including ``X-Served-*``,
body) comes back unchanged. Routing is re-read from ``routes.json`` whenever that file changes,
so a switch takes effect on the next request without a restart.

A live revision runs several instances (``instances`` in its route): requests go round-robin
over them, and a connection an instance refuses (its process died, or has not started listening
yet) is tried on the next one, so losing a process costs users nothing; that port is then tried
last for a second. Only a refusal is retried: it delivered nothing, whereas a connection reset
mid-request may have been processed (a POST) and stays a 502.

It is the global front end of the sandbox's regions: a route lists the instances of the active
region only, and every answer it relays says which region served it (``X-Served-Region``).

Before routing, it is the API gateway toward the storefront widget (edge.py): CORS for storefront
origins, merchants' API keys, a rate limit per key, security headers; its policy and keys live in
``<home>/gateway/``.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from varai_deploy.sandbox.edge import Edge, Verdict
from varai_deploy.sandbox.routes import RouteTable
from varai_deploy.sandbox.serving import HOP_BY_HOP, QuietHandler, bind_or_explain, serve_until_signalled
from varai_deploy.services import service_for_path

UPSTREAM_TIMEOUT_SECONDS = 60
#: How long a port that refused a connection is tried only after the others.
DOWN_SECONDS = 1.0
#: The gateway's own answers name the gateway, so "every answer carries X-Served-*" holds.
OWN_HEADERS = [
    ("X-Served-Version", "none"),
    ("X-Served-Colour", "none"),
    ("X-Served-Service", "sandbox-gateway"),
]


class UpstreamError(Exception):
    def __init__(self, detail: str, refused: bool) -> None:
        super().__init__(detail)
        self.refused = refused


class Balancer:
    """Which instance of a route to try first: round-robin per service, the ports that refused a
    connection within ``down_seconds`` last. Shared by the server's request threads."""

    def __init__(self, down_seconds: float = DOWN_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.down_seconds = down_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._turn: dict[str, int] = {}
        self._down_until: dict[tuple[str, int], float] = {}

    def order(self, service: str, route: dict[str, Any]) -> list[int]:
        ports = [int(p) for p in route.get("instances") or [route["port"]]]
        with self._lock:
            turn = self._turn.get(service, 0)
            self._turn[service] = turn + 1
            now = self._clock()
            down = {p for p in ports if self._down_until.get((route["host"], p), 0.0) > now}
        start = turn % len(ports)
        rotated = ports[start:] + ports[:start]
        # A port marked down is still tried, last: the mark is a hint, and only a refusal by
        # every instance may fail the request.
        return [p for p in rotated if p not in down] + [p for p in rotated if p in down]

    def refused(self, host: str, port: int) -> None:
        with self._lock:
            self._down_until[(host, port)] = self._clock() + self.down_seconds


def forward_any(
    balancer: Balancer,
    service: str,
    route: dict[str, Any],
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Forward to the route's instances in the balancer's order until one takes the connection;
    raises the last refusal when all refused, any other UpstreamError at once."""
    refusal: UpstreamError | None = None
    for port in balancer.order(service, route):
        try:
            return forward(route["host"], port, method, target, headers, body)
        except UpstreamError as exc:
            if not exc.refused:
                raise
            balancer.refused(route["host"], port)
            refusal = exc
    assert refusal is not None  # a route has at least one instance
    raise refusal


def forward(
    host: str, port: int, method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection(host, int(port), timeout=UPSTREAM_TIMEOUT_SECONDS)
    try:
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
        except ConnectionRefusedError as exc:
            raise UpstreamError(str(exc), refused=True) from exc
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP], data
    except (OSError, http.client.HTTPException) as exc:
        raise UpstreamError(f"{type(exc).__name__}: {exc}", refused=False) from exc
    finally:
        conn.close()


def gateway_dir(home: Path) -> Path:
    """Where the gateway's policy and merchants' keys live."""
    return home / "gateway"


def send_verdict(handler: QuietHandler, verdict: Verdict, own: list[tuple[str, str]]) -> None:
    """The gateway's own answer to a request its edge stopped (a preflight's 204 has no body)."""
    status, payload = verdict.answer
    if status == 204:
        handler.send_payload(204, b"", [*own, *verdict.headers], content_type="text/plain")
    else:
        handler.send_json(status, payload, [*own, *verdict.headers])


def make_handler(routes: RouteTable, balancer: Balancer | None = None, edge: Edge | None = None) -> type[QuietHandler]:
    """``edge``: the widget-facing checks (edge.py); None lets every request through (routing tests)."""
    balancer = balancer or Balancer()

    class Handler(QuietHandler):
        def _proxy(self) -> None:
            if self.path.split("?", 1)[0] == "/_sandbox/routes":
                self.send_json(200, {"routes": routes.current()}, OWN_HEADERS)
                return
            verdict = edge.admit(self.command, self.path, list(self.headers.items())) if edge else Verdict(None)
            if verdict.answer is not None:
                self.read_body()
                send_verdict(self, verdict, OWN_HEADERS)
                return
            service = service_for_path(self.path).name
            body = self.read_body()
            headers = [
                (k, v)
                for k, v in (verdict.forward_headers if edge else self.headers.items())
                if k.lower() not in HOP_BY_HOP and k.lower() not in ("content-length", "x-forwarded-for")
            ]
            headers += [("X-Forwarded-For", self.client_address[0]), ("X-Forwarded-Proto", "http")]
            route = routes.route_for(service)
            for attempt in (1, 2):
                if not route:
                    self.send_json(
                        503,
                        {"error": f"no live revision of {service}", "service": service},
                        [*OWN_HEADERS, *verdict.headers],
                    )
                    return
                try:
                    status, resp_headers, data = forward_any(
                        balancer, service, route, self.command, self.path, headers, body
                    )
                except UpstreamError as exc:
                    # Every instance refused: that delivered nothing, so trying the (maybe just
                    # switched) current route once more is safe even for a POST.
                    fresh = routes.route_for(service)
                    if exc.refused and attempt == 1 and fresh:
                        route = fresh
                        continue
                    self.send_json(
                        502,
                        {
                            "error": f"{service} ({route['colour']}, {route['version']}) did not answer",
                            "service": service,
                            "colour": route["colour"],
                            "version": route["version"],
                            "detail": str(exc),
                        },
                        [*OWN_HEADERS, *verdict.headers],
                    )
                    return
                if route.get("region"):
                    resp_headers.append(("X-Served-Region", route["region"]))
                added = {name.lower() for name, _ in verdict.headers}
                kept = [(k, v) for k, v in resp_headers if k.lower() not in added]
                self._relay(status, [*kept, *verdict.headers], data)
                return

        def _relay(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            try:
                self.send_response_only(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "server", "date"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _proxy

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.gateway")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)

    routes = RouteTable(args.home / "routes.json")
    server = bind_or_explain(args.host, args.port, make_handler(routes, edge=Edge(gateway_dir(args.home))), "gateway")
    if server is None:
        return 2
    print(f"gateway: serving on {args.host}:{args.port}, routes from {routes.path}", flush=True)
    return serve_until_signalled(server, "gateway")


if __name__ == "__main__":
    sys.exit(main())
