"""Talking to the integration stack: run a release through Airflow, ask the gateway what it serves."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from varai_deploy.release_cli import ReleaseRun, run_release
from varai_deploy.services import SERVICES

#: The integration stack's sandbox ports, apart from the demo's 18080/18100 (services from gateway + 20,
#: stand-ins from gateway - 20). VARAI_TEST_GATEWAY_PORT moves a second checkout's run out of the way;
#: each pytest-xdist worker (gw0, gw1, ...: ``make test`` runs the integration modules on two) has a
#: sandbox of its own, 600 ports further per worker (gw1: 19680, between the unit tests' and 19880).
WORKER_INDEX = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
GATEWAY_PORT = int(os.environ.get("VARAI_TEST_GATEWAY_PORT", "19080")) + 600 * WORKER_INDEX
PORT_BASE = GATEWAY_PORT + 20


def rollback(stack, **conf) -> ReleaseRun:
    run = run_release({"environment": "sandbox", **conf}, env=stack, dag_id="ai_discovery_rollback")
    print(f"rollback {conf}: rc={run.returncode} in {run.seconds:.1f}s; errors={run.errors}")
    return run


def release(stack, version: str, env: dict | None = None, **conf) -> ReleaseRun:
    """A release; without ``marketplaces`` a backend-only one (the widget tests publish widgets)."""
    conf.setdefault("marketplaces", [])
    run = run_release({"version": version, "environment": "sandbox", **conf}, env={**stack, **(env or {})})
    print(f"release {version} {conf}: rc={run.returncode} in {run.seconds:.1f}s; errors={run.errors}")
    return run


def served(path: str) -> tuple[int, str | None, str | None]:
    """What the sandbox gateway answers on ``path``: (status, X-Served-Version, X-Served-Colour)."""
    request = urllib.request.Request(f"http://127.0.0.1:{GATEWAY_PORT}{path}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.headers["X-Served-Version"], resp.headers["X-Served-Colour"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("X-Served-Version"), exc.headers.get("X-Served-Colour")


def gateway_versions() -> dict[str, tuple[int, str | None, str | None]]:
    return {name: served(svc.health_path) for name, svc in SERVICES.items()}
