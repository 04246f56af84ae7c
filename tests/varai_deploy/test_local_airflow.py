"""``make airflow``'s warm-up of the api-server's execution API, against a small HTTP server (the whole of
``make airflow``, started and stopped, is tests/integration/test_local_airflow.py)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from varai_deploy.local_airflow import warm_execution_api


@pytest.fixture
def api_server():
    """Answers /execution/health with 503 until ``ready`` is set, then 200; records every path asked."""
    asked: list[str] = []
    ready = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(200 if ready.is_set() else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", asked, ready
    finally:
        server.shutdown()


def test_the_execution_api_is_asked_until_it_answers(api_server):
    base_url, asked, ready = api_server
    threading.Timer(0.3, ready.set).start()
    took = warm_execution_api(base_url, timeout=30, poll=0.1)
    assert took is not None and took < 30
    assert asked and set(asked) == {"/execution/health"} and len(asked) >= 2  # 503 first, then the 200


def test_an_api_server_that_never_answers_is_given_up_on(api_server):
    base_url, asked, _ = api_server
    assert warm_execution_api(base_url, timeout=0.5, poll=0.1) is None
    assert asked


def test_no_api_server_at_all_is_given_up_on():
    assert warm_execution_api("http://127.0.0.1:9/", timeout=0.3, poll=0.1) is None
