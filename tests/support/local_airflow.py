"""``airflow.sh local`` (what ``make airflow`` runs) started for a test or a benchmark, and stopped
the way a user stops it (Ctrl-C to its process group)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from varai_deploy.config import REPO_ROOT


def start(env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start it in a process group of its own (a terminal's foreground job), output to ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(
            [str(REPO_ROOT / "airflow.sh"), "local"],
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 30) -> int:
    """``sig`` to its group and its exit code; SIGKILL to the group if it outlives ``timeout``."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


@contextlib.contextmanager
def running(airflow_home: Path, port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """``make airflow`` on ``port`` for the ``with`` block, healthy; yields the admin's password."""
    from tests.support.airflow_cluster import admin_password, free_port, wait_until_healthy

    log = airflow_home / f"make-airflow-{port}.log"
    # Log servers on ports of their own, not 8793/8794: another test worker's Airflow may hold those.
    ports = {
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    # No scheduled maintenance window mid-test (see airflow_cluster.TUNING).
    proc = start({**os.environ, "VARAI_SCHEDULED_ENVIRONMENT": "none", **ports, **(env or {})}, log)
    try:

        def alive() -> None:
            assert proc.poll() is None, log.read_text()[-3000:]

        wait_until_healthy(
            f"http://127.0.0.1:{port}",
            timeout=120,
            check=alive,
            describe=lambda: log.read_text()[-3000:],
            what="make airflow",
        )
        yield admin_password(airflow_home / "simple_auth_manager_passwords.json.generated")
    finally:
        stop(proc)
