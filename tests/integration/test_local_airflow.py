"""``make airflow`` (``airflow.sh local``) stops completely on Ctrl-C and on SIGTERM.

Each test starts it on a scratch Airflow home and a free port, waits until every component reports
healthy and the scheduler has forked its LocalExecutor workers, signals it as a terminal or
a service manager would, and checks that within 15 s nothing of it is left: the components, their
workers, their log servers.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tests.support import local_airflow
from tests.support.airflow_cluster import free_port, local_executor_workers, session_processes, wait_until_healthy

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_make_airflow_leaves_no_process_after_a_stop(tmp_path, sig):
    port = free_port(exclude={19880})
    env = {
        **os.environ,
        "VARAI_AIRFLOW_HOME": str(tmp_path / "airflow"),
        # Nothing scheduled (a backup falling due would run on the worker's sandbox mid-suite).
        "VARAI_SCHEDULED_ENVIRONMENT": "none",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    env.pop("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", None)
    out = tmp_path / "make-airflow.log"
    proc = local_airflow.start(env, out)

    def alive() -> None:
        assert proc.poll() is None, f"airflow.sh local exited with {proc.returncode}:\n{out.read_text()[-3000:]}"

    try:
        wait_until_healthy(
            f"http://127.0.0.1:{port}", timeout=180, check=alive, describe=lambda: out.read_text()[-3000:]
        )
        sessions = {int(pid) for pid in re.findall(r"\(pid (\d+)\)", out.read_text())}
        assert len(sessions) == 4, out.read_text()[-3000:]
        workers = local_executor_workers(sessions)
        assert workers, "the scheduler's LocalExecutor workers are what outlived airflow standalone"
        # The execution API is built before any task needs it (else the first task waits ~5 s for it).
        ready = time.monotonic() + 120
        while "the execution API is ready" not in out.read_text() and time.monotonic() < ready:
            alive()
            time.sleep(0.2)
        assert "the execution API is ready" in out.read_text(), out.read_text()[-3000:]

        stopped_at = time.monotonic()
        assert local_airflow.stop(proc, sig, timeout=20) == 0, out.read_text()[-3000:]
        while session_processes(sessions) and time.monotonic() - stopped_at < 15:
            time.sleep(0.2)
        left = session_processes(sessions)
        assert not left, f"left running 15 s after {sig.name}: {[p.cmdline() for p in left]}"
        assert "local_airflow: stopped" in out.read_text()
    finally:
        if proc.poll() is None:
            local_airflow.stop(proc, signal.SIGKILL)
        for process in session_processes({int(p) for p in re.findall(r"\(pid (\d+)\)", out.read_text())}):
            process.kill()
