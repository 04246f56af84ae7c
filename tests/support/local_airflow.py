"""``airflow.sh local`` (what ``make airflow`` runs) started for a test or a benchmark, and stopped
the way a user stops it (Ctrl-C to its process group)."""

from __future__ import annotations

import os
import signal
import subprocess
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
