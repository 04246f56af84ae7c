"""Airflow's LocalExecutor without the stale-result race that fails resumed deferred tasks.

A task that defers ends its worker process, and the executor later reports that process's end as
``success``. When the trigger fires fast, the scheduler may hand the same try (same key) to the
executor again before that report is read; Airflow 3.3's scheduler then takes the old ``success``
for the resumed run's and, the task instance being ``queued`` or ``running``, fails it as "killed
externally" (apache/airflow#72716, #71580; the installed 3.3.2 guards only ``scheduled``). A retry
that resumes at once (an analysis already past its window, a drill's one-second poll) hits it
again, so retries do not cure it.

This executor counts the dispatches of each key and drops a ``success`` that arrives while a later
dispatch of the key is still outstanding: it can only be an earlier dispatch's end, and the task
itself has told the API server how it went. A ``failed`` always goes through (it is how a killed
task is noticed), and a worker that died without a word cannot make a later dispatch's failure
be dropped. Select it with ``[core] executor = varai_deploy.executor.LocalExecutor``.

It also imports the project's package (and with it the hooks and libraries its tasks use) in the
scheduler once, before forking its workers. A task process is forked from a worker and parses its
DAG file anew: the DAG files import little at the top (they must parse fast), so every task used to
import what it needed again, about 40 % of a task process's CPU. Forked, they find it imported.
And its workers notice a task process's end when it ends (``varai_deploy.task_exit``), not up to
5 s later.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections import Counter
from typing import Any

from airflow.executors.local_executor import LocalExecutor as AirflowLocalExecutor

log = logging.getLogger(__name__)

#: What the tasks import besides the project's package (which imports these only where it uses them): the
#: decorators a DAG file's tasks are made with, the ledger's PostgresHook, the gs:// asset handler.
TASK_IMPORTS = (
    "airflow.sdk.definitions.decorators",
    "airflow.providers.postgres.hooks.postgres",
    "airflow.providers.google.assets.gcs",
)


def preload_task_imports() -> list[str]:
    """Import every module of the project's package and ``TASK_IMPORTS``; returns the names that failed
    (logged, never raised: a module that cannot be imported here fails its task as it would have)."""
    import varai_deploy

    names = [*TASK_IMPORTS]
    names += [
        module.name
        for module in pkgutil.walk_packages(varai_deploy.__path__, "varai_deploy.")
        if not module.name.endswith("__main__")
    ]
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            log.warning("Could not preload %s for the tasks", name, exc_info=True)
            failed.append(name)
    return failed


def _name(state: Any) -> str:
    return str(getattr(state, "value", state))


class LocalExecutor(AirflowLocalExecutor):
    """LocalExecutor that keeps an earlier dispatch's ``success`` from the key's latest dispatch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._outstanding: Counter = Counter()

    def start(self) -> None:
        from varai_deploy.task_exit import notice_task_exit_promptly

        preload_task_imports()  # both before super() forks the workers
        notice_task_exit_promptly()
        super().start()

    def _process_workloads(self, workload_list):
        for workload in workload_list:
            self._outstanding[workload.key] += 1
        super()._process_workloads(workload_list)

    def change_state(self, key, state, info=None, remove_running=True) -> None:
        # Each dispatch ends with one result (success or failed) after its "running".
        if _name(state) != "running" and self._outstanding[key] > 0:
            self._outstanding[key] -= 1
            if self._outstanding[key] and _name(state) == "success":
                self.log.info(
                    "Dropped %s for %s: it ended an earlier dispatch (a deferral's worker exit); "
                    "the key has been handed to a worker again since",
                    state,
                    key,
                )
                return
            if not self._outstanding[key]:
                del self._outstanding[key]
        super().change_state(key, state, info, remove_running)
