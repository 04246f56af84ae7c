"""The project's LocalExecutor's bookkeeping, result by result as its workers report them (the race itself,
through a real scheduler and triggerer, is tests/integration/test_executor.py)."""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
import subprocess
import sys
from queue import SimpleQueue
from types import SimpleNamespace

import pytest

from varai_deploy import executor as executor_module
from varai_deploy.executor import LocalExecutor, preload_task_imports

KEY = ("dag", "task", "run", 1, -1)


@pytest.fixture
def executor(monkeypatch) -> LocalExecutor:
    """Not started: workloads go to a queue nobody reads; results are fed to ``change_state`` by the test."""
    executor = LocalExecutor(parallelism=2)
    executor.activity_queue = SimpleQueue()
    executor._unread_messages = multiprocessing.Value(ctypes.c_uint)
    monkeypatch.setattr(executor, "_check_workers", lambda: None)
    return executor


def dispatch(executor: LocalExecutor) -> None:
    workload = SimpleNamespace(key=KEY)
    executor.queued_tasks[KEY] = workload
    executor._process_workloads([workload])


def reported(executor: LocalExecutor) -> str | None:
    state = executor.event_buffer.pop(KEY, (None, None))[0]
    return str(getattr(state, "value", state)) if state is not None else None


def test_a_deferral_reported_after_its_resume_was_dispatched_is_dropped_and_the_resume_reported(executor):
    dispatch(executor)
    executor.change_state(KEY, "running")
    assert reported(executor) == "running"
    dispatch(executor)  # the trigger fired: the same try handed over again before the first end was read
    executor.change_state(KEY, "success")  # the deferral's worker exit, read late
    assert reported(executor) is None
    executor.change_state(KEY, "running")
    executor.change_state(KEY, "success")
    assert reported(executor) == "success"
    assert not executor._outstanding


def test_a_failure_always_goes_through_even_with_a_dispatch_that_never_reported(executor):
    dispatch(executor)
    executor.change_state(KEY, "running")  # then its worker is killed: no result, ever
    dispatch(executor)
    executor.change_state(KEY, "running")
    executor.change_state(KEY, "failed")
    assert reported(executor) == "failed"


def test_one_dispatch_reports_as_airflows_executor_does(executor):
    dispatch(executor)
    executor.change_state(KEY, "running")
    executor.change_state(KEY, "success")
    assert reported(executor) == "success" and not executor._outstanding
    executor.change_state(KEY, "failed")  # a result nobody dispatched here (a scheduler's own fail()) passes
    assert reported(executor) == "failed"


def test_the_scheduler_imports_what_the_tasks_use_before_forking_its_workers():
    """In a fresh interpreter, as the scheduler starts: the modules a release's tasks import lazily
    (the local platform, the ledger, the hooks, the task decorators) are there once it has run."""
    wanted = [
        "varai_deploy.platforms.local",
        "varai_deploy.ledger",
        "varai_deploy.hooks.gateway",
        "airflow.providers.postgres.hooks.postgres",
        "airflow.sdk.definitions.decorators",
    ]
    probe = (
        "import json, sys\n"
        "from varai_deploy.executor import preload_task_imports\n"
        f"wanted = {wanted!r}\n"
        "before = [name for name in wanted if name in sys.modules]\n"
        "failed = preload_task_imports()\n"
        "print(json.dumps([before, failed, [name for name in wanted if name in sys.modules]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    before, failed, after = json.loads(done.stdout.splitlines()[-1])
    assert before == [] and failed == [] and after == wanted


def test_a_module_that_cannot_be_preloaded_is_logged_and_the_scheduler_goes_on(monkeypatch, caplog):
    monkeypatch.setattr(executor_module, "TASK_IMPORTS", ("varai_deploy_no_such_module",))
    with caplog.at_level(logging.WARNING, logger="varai_deploy.executor"):
        assert preload_task_imports() == ["varai_deploy_no_such_module"]
    assert "Could not preload varai_deploy_no_such_module" in caplog.text
