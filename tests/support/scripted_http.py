"""A real HTTP server on loopback whose answers follow a script (for trigger and hook tests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def scripted_server(statuses: list[int], then: int = 200, headers: dict[str, str] | None = None) -> Iterator[dict]:
    """Answers each request with the next status of ``statuses``, then ``then`` forever."""
    script = list(statuses)
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            status = script.pop(0) if script else then
            body = json.dumps({"status": status}).encode()
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "url": f"http://127.0.0.1:{server.server_address[1]}",
            "seen": seen,
            "port": server.server_address[1],
        }
    finally:
        server.shutdown()
        server.server_close()
