"""HTTP and waiting helpers for the sandbox tests (a uniquely named module: importable from tests)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from varai_deploy.sandbox import Sandbox, SandboxSettings
from varai_deploy.sandbox.settings import PLUGINS_DIR, REPO_ROOT


def request(
    url_or_port: str | int,
    path: str,
    method: str = "GET",
    body: Any = None,
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request on a fresh connection: (status, headers, JSON or raw body)."""
    if isinstance(url_or_port, int):
        host, port = "127.0.0.1", url_or_port
    else:
        host, port_s = url_or_port.removeprefix("http://").split(":")
        port = int(port_s)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        sent = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers={**sent, **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            data = json.loads(raw)
        except ValueError:
            data = raw
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def shopper(settings, environment: str = "sandbox") -> dict[str, str]:
    """The headers the sandbox's synthetic shoppers send through its gateway: their widget API key."""
    from varai_deploy.sandbox.credentials import api_key

    return {"X-API-Key": api_key(settings, "sandbox-shoppers", environment)}


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_listening(url: str, timeout: float = 10.0) -> None:
    wait_for(lambda: request(url, "/health", timeout=1)[0] in (200, 503), timeout, what=f"{url} to answer")


def deploy(sb: Sandbox, service: str, version: str, switch: bool = True) -> dict[str, Any]:
    """Start a candidate, wait until it answers, optionally make it live."""
    cand = sb.start_candidate(service, version)
    wait_listening(cand["url"])
    if switch:
        sb.switch(service, cand["colour"])
    return cand


def run_cli(settings: SandboxSettings, *args: str) -> subprocess.CompletedProcess:
    """``python -m varai_deploy.sandbox ARGS`` in a child process, pointed at these settings."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(PLUGINS_DIR),
        VARAI_SANDBOX_HOME=str(settings.home),
        VARAI_SANDBOX_GATEWAY_PORT=str(settings.gateway_port),
        VARAI_SANDBOX_PORT_BASE=str(settings.service_port_base),
        VARAI_SANDBOX_PROMETHEUS_PORT=str(settings.prometheus_port),
        VARAI_SANDBOX_TRAFFIC_RPS=str(settings.traffic_rps),
    )
    return subprocess.run(
        [sys.executable, "-m", "varai_deploy.sandbox", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
