"""HTTP plumbing shared by the service and gateway processes (standard library only).

Both are ``ThreadingHTTPServer``s with a deep accept backlog (a burst of requests during a
switch must queue, not be refused) that stop cleanly on SIGTERM: stop accepting, let requests
in flight finish for a moment, then exit 0 so the wrapper records a clean stop.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Requests in flight at SIGTERM may finish for this long (a slow revision's 6 s answers
#: included): retiring or discarding a revision must not cut off users it is still answering.
DRAIN_SECONDS = 10.0
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.inflight = 0
        self._inflight_lock = threading.Lock()
        super().__init__((host, port), handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._inflight_lock:
            self.inflight += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._inflight_lock:
                self.inflight -= 1


class QuietHandler(BaseHTTPRequestHandler):
    """No access log (it would drown the log tail callers read); errors still go to stderr."""

    server_version = "varai-sandbox"
    sys_version = ""
    timeout = 30  # a client that stalls must not pin a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def send_payload(
        self, status: int, body: bytes, headers: list[tuple[str, str]], content_type: str = "application/json"
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away; nothing to tell it

    def send_json(self, status: int, payload: Any, headers: list[tuple[str, str]]) -> None:
        self.send_payload(status, json.dumps(payload).encode() + b"\n", headers)


def serve_until_signalled(server: Server, name: str) -> int:
    """Serve until SIGTERM/SIGINT, drain briefly, exit code 0.

    The server runs in a thread and the main thread only sleeps, so the signal handler (which
    Python runs in the main thread) never interrupts code holding a lock; the handler itself
    takes none. (Starting a thread or setting an Event from a handler can deadlock when the
    signal lands while the main thread holds the same lock, e.g. while starting a request thread.)
    """
    stopping = SignalFlag()
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    serving.start()
    while not stopping.raised and serving.is_alive():
        time.sleep(0.05)
    server.shutdown()
    deadline = time.monotonic() + DRAIN_SECONDS
    while server.inflight and time.monotonic() < deadline:
        time.sleep(0.02)
    server.server_close()
    print(f"{name}: stopped", flush=True)
    return 0


class SignalFlag:
    """Set by SIGTERM/SIGINT; the handler only assigns an attribute (safe at any moment)."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self.raised = False
        for signum in signals:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self.raised = True

    def sleep(self, seconds: float, step: float = 0.05) -> bool:
        """Sleep up to ``seconds``, waking early once signalled; returns whether it was."""
        deadline = time.monotonic() + seconds
        while not self.raised:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(step, left))
        return self.raised


def bind_or_explain(host: str, port: int, handler: type[BaseHTTPRequestHandler], name: str) -> Server | None:
    try:
        return Server(host, port, handler)
    except OSError as exc:
        print(f"{name}: cannot listen on {host}:{port}: {exc}", file=sys.stderr, flush=True)
        return None
