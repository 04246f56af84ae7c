"""A task's supervisor notices the task process's end when it happens, with Airflow's own wait loop
(``ActivitySubprocess._monitor_subprocess``) and a real child process that closes its sockets before
it exits, as a task process does on its way out."""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import time
import weakref

import psutil
import pytest
from airflow.sdk.execution_time import supervisor
from airflow.sdk.execution_time.supervisor import ActivitySubprocess, PsutilTracker

from varai_deploy.task_exit import notice_task_exit_promptly

#: Longer than any test here may take: a supervisor that sleeps it is plainly the bug.
HEARTBEAT_INTERVAL = 120


@pytest.fixture
def unpatched(monkeypatch):
    """Airflow's supervisor as installed (even if something patched it before this test), restored after it."""
    installed = ActivitySubprocess._service_subprocess
    monkeypatch.setattr(ActivitySubprocess, "_service_subprocess", getattr(installed, "__wrapped__", installed))
    monkeypatch.setattr(supervisor, "MIN_HEARTBEAT_INTERVAL", HEARTBEAT_INTERVAL)


def supervising(exit_after: float) -> tuple[ActivitySubprocess, subprocess.Popen]:
    """A supervisor, as the worker has it once the task has reported its end and closed its socket,
    of a child that exits ``exit_after`` seconds later."""
    ours, theirs = socket.socketpair()
    child = subprocess.Popen(
        [sys.executable, "-c", f"import os, time; os.close({theirs.fileno()}); time.sleep({exit_after})"],
        pass_fds=[theirs.fileno()],
    )
    theirs.close()
    proc = ActivitySubprocess.__new__(ActivitySubprocess)  # only the fields the wait loop reads
    now = time.monotonic()
    for name, value in {
        "_process": PsutilTracker(psutil.Process(child.pid)),
        "_exit_code": None,
        "_process_exit_monotonic": None,
        "_open_sockets": weakref.WeakKeyDictionary({ours: "requests"}),
        "selector": selectors.DefaultSelector(),
        "_last_successful_heartbeat": now,
        "_last_heartbeat_attempt": now,
        "_terminal_state": None,
        "_task_end_time_monotonic": None,
    }.items():
        object.__setattr__(proc, name, value)

    def on_eof(sock):
        return bool(sock.recv(4096))

    proc.selector.register(ours, selectors.EVENT_READ, (on_eof, proc._open_sockets.pop))
    return proc, child


def test_the_end_of_a_task_process_that_closed_its_sockets_first_is_noticed_when_it_exits(unpatched):
    assert notice_task_exit_promptly()
    proc, child = supervising(exit_after=1.0)
    started = time.monotonic()
    proc._monitor_subprocess()
    waited = time.monotonic() - started
    assert proc._exit_code == 0 and child.poll() == 0
    assert waited < HEARTBEAT_INTERVAL / 4, f"the supervisor slept {waited:.0f} s past the task's exit"


def test_airflows_own_wait_sleeps_the_heartbeat_interval_there(unpatched, monkeypatch):
    """Why the patch exists; when an Airflow upgrade fixes it, this fails and the patch can go."""
    monkeypatch.setattr(supervisor, "MIN_HEARTBEAT_INTERVAL", 3)
    proc, _ = supervising(exit_after=0.2)
    started = time.monotonic()
    proc._monitor_subprocess()
    assert time.monotonic() - started >= 2.5


def test_a_task_still_running_after_closing_its_sockets_is_waited_for_as_before(unpatched, monkeypatch):
    """No socket and no exit yet: one wait of the heartbeat interval, then the loop goes on as Airflow's."""
    notice_task_exit_promptly()
    monkeypatch.setattr(supervisor, "MIN_HEARTBEAT_INTERVAL", 1)
    proc, child = supervising(exit_after=30)
    try:
        proc._service_subprocess(max_wait_time=10)  # returns on the EOF: no socket left
        assert not proc._open_sockets
        started = time.monotonic()
        assert proc._service_subprocess(max_wait_time=0.5) is None
        assert 0.4 <= time.monotonic() - started < 5
    finally:
        os.kill(child.pid, 9)
        child.wait()


def test_patching_twice_wraps_once(unpatched):
    assert notice_task_exit_promptly() and notice_task_exit_promptly()
    assert ActivitySubprocess._service_subprocess.waits_on_the_process
    assert not getattr(ActivitySubprocess._service_subprocess.__wrapped__, "waits_on_the_process", False)
