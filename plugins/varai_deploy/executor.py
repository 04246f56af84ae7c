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
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from airflow.executors.local_executor import LocalExecutor as AirflowLocalExecutor


def _name(state: Any) -> str:
    return str(getattr(state, "value", state))


class LocalExecutor(AirflowLocalExecutor):
    """LocalExecutor that keeps an earlier dispatch's ``success`` from the key's latest dispatch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._outstanding: Counter = Counter()

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
