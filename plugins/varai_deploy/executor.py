"""Airflow's LocalExecutor without the stale-result race that fails resumed deferred tasks.

A task that defers ends its worker process, and the executor later reports that process's end as
``success``. When the trigger fires fast, the scheduler may hand the same try (same key) to the
executor again before that report is read; Airflow 3.3's scheduler then takes the old ``success``
for the resumed run's and, the task instance being ``queued`` or ``running``, fails it as "killed
externally" (apache/airflow#72716, #71580; the installed 3.3.2 guards only ``scheduled``). A retry
that resumes at once (an analysis already past its window, a drill's one-second poll) hits it
again, so retries do not cure it.

This executor counts the dispatches of each key and drops a final result that belongs to an earlier
dispatch still outstanding when the key was handed over again: only the last dispatch's result
reaches the scheduler. Select it with ``[core] executor = varai_deploy.executor.LocalExecutor``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from airflow.executors.local_executor import LocalExecutor as AirflowLocalExecutor


def _is_final(state: Any) -> bool:
    """A process's end (success, failed), not the ``running`` a worker reports on picking it up."""
    return str(getattr(state, "value", state)) != "running"


class LocalExecutor(AirflowLocalExecutor):
    """LocalExecutor reporting each key's result only for its latest dispatch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._outstanding: Counter = Counter()

    def _process_workloads(self, workload_list):
        for workload in workload_list:
            self._outstanding[workload.key] += 1
        super()._process_workloads(workload_list)

    def change_state(self, key, state, info=None, remove_running=True) -> None:
        if _is_final(state) and self._outstanding[key] > 0:
            self._outstanding[key] -= 1
            if self._outstanding[key]:
                self.log.info(
                    "Dropped %s for %s: it ended an earlier dispatch (a deferral's worker exit); "
                    "the key has been handed to a worker again since",
                    state,
                    key,
                )
                return
            del self._outstanding[key]
        super().change_state(key, state, info, remove_running)
