"""``make airflow``: Airflow on this machine (api-server, scheduler, triggerer, dag-processor) until
Ctrl-C or SIGTERM, and then all of it is gone within 15 s.

``airflow standalone`` leaves its scheduler and the LocalExecutor workers running after Ctrl-C
(they ignore the SIGTERM it forwards). Here each component runs in a session of its own; on
SIGINT/SIGTERM each gets SIGTERM, and whatever of its session is left after ``GRACE_SECONDS``
(workers, task processes) gets SIGKILL. Processes a task started in a session of their own (the
sandbox's services) are not Airflow's and stay. Run through ``airflow.sh local``, which sets the
project's Airflow configuration.

Once the api-server answers, it is asked for the execution API's health: the api-server builds that
API (Cadwyn's versioned routes) on its first request, about 5 s of CPU, which the first task of the
first release would otherwise wait for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

COMPONENTS = ("api-server", "scheduler", "triggerer", "dag-processor")
#: SIGTERM first; SIGKILL for whatever of a component's session is left this long after.
GRACE_SECONDS = 10


def session_pids(sessions: set[int]) -> list[int]:
    """Live, non-zombie processes whose session is one of ``sessions``."""
    import psutil

    found = []
    for process in psutil.process_iter(["status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(process.pid) in sessions:
                found.append(process.pid)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            continue
    return found


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue


def stop(procs: dict[str, subprocess.Popen], grace: float = GRACE_SECONDS) -> list[int]:
    """SIGTERM every component's session, SIGKILL what is left after ``grace``; the pids killed."""
    sessions = {proc.pid for proc in procs.values()}
    signal_all(session_pids(sessions), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while session_pids(sessions) and time.monotonic() < deadline:
        for proc in procs.values():
            proc.poll()  # reap our children, so they do not linger as zombies
        time.sleep(0.2)
    left = session_pids(sessions)
    signal_all(left, signal.SIGKILL)
    for proc in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    return left


def warm_execution_api(base_url: str, timeout: float = 300, poll: float = 1.0) -> float | None:
    """GET ``<base_url>/execution/health`` until it answers 200; the seconds that took, or None if it never
    did within ``timeout`` (nothing is lost then: the first task pays the build)."""
    import requests

    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            if requests.get(f"{base_url.rstrip('/')}/execution/health", timeout=60).status_code == 200:
                return time.monotonic() - began
        except requests.RequestException:
            pass
        time.sleep(poll)
    return None


def _warm_in_background(base_url: str) -> None:
    def warm() -> None:
        took = warm_execution_api(base_url)
        print(
            f"local_airflow: the execution API is ready ({took:.1f} s after start)"
            if took is not None
            else "local_airflow: the execution API did not answer; the first task will wait for it",
            flush=True,
        )

    threading.Thread(target=warm, name="warm-execution-api", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    airflow = Path(sys.executable).with_name("airflow")
    migrate = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, check=False)
    if migrate.returncode:
        sys.stderr.write(migrate.stdout[-3000:] + migrate.stderr[-3000:])
        return migrate.returncode
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    procs = {
        name: subprocess.Popen([str(airflow), name], stdin=subprocess.DEVNULL, start_new_session=True)
        for name in COMPONENTS
    }
    print(f"local_airflow: started {', '.join(f'{n} (pid {p.pid})' for n, p in procs.items())}", flush=True)
    _warm_in_background(os.environ.get("AIRFLOW__API__BASE_URL") or "http://127.0.0.1:8080")
    exited = None
    while not stopping and exited is None:
        exited = next((name for name, proc in procs.items() if proc.poll() is not None), None)
        time.sleep(0.2)
    why = f"{signal.Signals(stopping[0]).name} received" if stopping else f"{exited} exited"
    print(f"local_airflow: {why}; stopping Airflow ...", flush=True)
    began = time.monotonic()
    killed = stop(procs)
    print(
        f"local_airflow: stopped in {time.monotonic() - began:.1f} s"
        + (f" (SIGKILLed {len(killed)} that outlived SIGTERM)" if killed else ""),
        flush=True,
    )
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
