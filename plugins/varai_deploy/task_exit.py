"""A task's worker notices its task process end when it ends, not up to 5 s later.

Airflow's task supervisor (3.3.2, and its main branch as of this writing) waits in ``select`` on the
task process's sockets, for at most ``[workers] min_heartbeat_interval`` (5 s), then checks whether the
process has exited. A task process closes those sockets while it exits: when the last one closes
before the process can be reaped, the next wait is a ``select`` on no socket at all, and it sleeps the
whole interval. Measured on a release through the scheduler: 37 of 130 task processes held their
executor slot 5 s after their task had ended, and a task that ends skipped or failed (its state is sent
after the exit) kept its successors waiting as long: 5 s each for the two rollback tasks every release
passes through.

The fix: with no socket left to read, wait on the process itself for that time. Applied in the
scheduler by the project's executor, before it forks its workers.
"""

from __future__ import annotations

import contextlib
import logging

log = logging.getLogger(__name__)


def notice_task_exit_promptly() -> bool:
    """Patch the task supervisor's wait; returns whether it is patched (False: Airflow changed shape)."""
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    original = ActivitySubprocess._service_subprocess
    if getattr(original, "waits_on_the_process", False):
        return True
    if not all(hasattr(ActivitySubprocess, name) for name in ("_check_subprocess_exit", "_monitor_subprocess")):
        log.warning("Airflow's task supervisor changed: its wait for a task's exit is left as it is")
        return False

    def _service_subprocess(self, max_wait_time: float, raise_on_timeout: bool = False, expect_signal=None):
        process = getattr(self, "_process", None)
        if process is not None and self._exit_code is None and not self._open_sockets:
            with contextlib.suppress(process.TimeoutExpired):
                process.wait(timeout=max(0.01, max_wait_time))
            max_wait_time = 0  # exited or not, the interval has been waited: don't select on nothing again
        return original(self, max_wait_time, raise_on_timeout=raise_on_timeout, expect_signal=expect_signal)

    _service_subprocess.waits_on_the_process = True
    _service_subprocess.__wrapped__ = original  # Airflow's own, as functools.wraps would name it
    _service_subprocess.__doc__ = original.__doc__
    ActivitySubprocess._service_subprocess = _service_subprocess
    return True
