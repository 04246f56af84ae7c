"""A scratch Airflow (its own SQLite metadata DB) and a scratch sandbox on ports apart from the demo's."""

from __future__ import annotations

import os
import subprocess
import urllib.request

import pytest

from varai_deploy.config import REPO_ROOT
from varai_deploy.release_cli import ReleaseRun, run_release
from varai_deploy.services import SERVICES

GATEWAY_PORT = 19080
PORT_BASE = 19100


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """Environment shared by the test process and every Airflow process it starts."""
    root = tmp_path_factory.mktemp("stack")
    env = {
        "VARAI_AIRFLOW_HOME": str(root / "airflow"),
        "VARAI_SANDBOX_HOME": str(root / "sandbox"),
        "VARAI_SANDBOX_GATEWAY_PORT": str(GATEWAY_PORT),
        "VARAI_SANDBOX_PORT_BASE": str(PORT_BASE),
    }
    saved = {key: os.environ.get(key) for key in [*env, "AIRFLOW_CONN_VARAI_GATEWAY"]}
    os.environ.update(env)
    os.environ.pop("AIRFLOW_CONN_VARAI_GATEWAY", None)  # airflow.sh derives it from the port
    migrate = subprocess.run([str(REPO_ROOT / "airflow.sh"), "db", "migrate"], capture_output=True, text=True,
                             check=False)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def sandbox(stack):
    from varai_deploy.sandbox import Sandbox

    box = Sandbox()
    box.up()
    try:
        yield box
    finally:
        box.down(purge=True)


def release(stack, version: str, **conf) -> ReleaseRun:
    run = run_release({"version": version, "environment": "sandbox", **conf}, env=stack)
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
