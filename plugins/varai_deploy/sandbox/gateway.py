"""The sandbox's load balancer: one port, a URL map by path prefix, traffic to the live colour.

``python -m varai_deploy.sandbox.gateway --home H --host 127.0.0.1 --port 18080``

It plays the part of production's load balancer: a request goes to the live colour's process
of the service owning its path prefix, and the answer (status, headers including ``X-Served-*``,
body) comes back unchanged. Routing is re-read from ``routes.json`` whenever that file changes,
so a switch takes effect on the next request without a restart.
"""

from __future__ import annotations

import argparse
import http.client
import sys
from pathlib import Path
from typing import Any

from varai_deploy.sandbox.routes import RouteTable
from varai_deploy.sandbox.serving import HOP_BY_HOP, QuietHandler, bind_or_explain, serve_until_signalled
from varai_deploy.services import service_for_path

UPSTREAM_TIMEOUT_SECONDS = 60
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


def forward(
    route: dict[str, Any], method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection(route["host"], int(route["port"]), timeout=UPSTREAM_TIMEOUT_SECONDS)
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


def make_handler(routes: RouteTable) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def _proxy(self) -> None:
            if self.path.split("?", 1)[0] == "/_sandbox/routes":
                self.send_json(200, {"routes": routes.current()}, OWN_HEADERS)
                return
            service = service_for_path(self.path).name
            body = self.read_body()
            headers = [
                (k, v)
                for k, v in self.headers.items()
                if k.lower() not in HOP_BY_HOP and k.lower() not in ("content-length", "x-forwarded-for")
            ]
            headers += [("X-Forwarded-For", self.client_address[0]), ("X-Forwarded-Proto", "http")]
            route = routes.route_for(service)
            for attempt in (1, 2):
                if not route:
                    self.send_json(503, {"error": f"no live revision of {service}", "service": service}, OWN_HEADERS)
                    return
                try:
                    status, resp_headers, data = forward(route, self.command, self.path, headers, body)
                except UpstreamError as exc:
                    # A refused connection delivered nothing, so trying the (maybe just switched)
                    # current route once more is safe even for a POST.
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
                        OWN_HEADERS,
                    )
                    return
                self._relay(status, resp_headers, data)
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
    server = bind_or_explain(args.host, args.port, make_handler(routes), "gateway")
    if server is None:
        return 2
    print(f"gateway: serving on {args.host}:{args.port}, routes from {routes.path}", flush=True)
    return serve_until_signalled(server, "gateway")


if __name__ == "__main__":
    sys.exit(main())
