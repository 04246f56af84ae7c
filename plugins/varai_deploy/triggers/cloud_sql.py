"""A wait on a Cloud SQL Admin API operation (an export, an import), in the triggerer.

The provider's own ``CloudSQLExportTrigger`` polls a hard-coded https://sqladmin.googleapis.com with
default credentials and reads an ``error.message`` Cloud SQL does not send; this one asks through the
same ``EndpointCloudSQLHook`` as the task (the address and credentials of its connection), in a thread
so the triggerer's loop is never blocked, every ``poll_interval`` seconds, and fires once the
operation is DONE, with Cloud SQL's ``error.errors[]`` when it failed. A few failed looks in a row
(the API unreachable) end the wait with that error rather than hide it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from airflow.triggers.base import TriggerEvent

from varai_deploy.triggers.base import ArgumentsTrigger

#: Looks that may fail in a row (a blip of the API) before the wait gives up.
FAILED_LOOKS = 5


class CloudSqlOperationTrigger(ArgumentsTrigger):
    def __init__(self, conn_id: str, operation: str, poll_interval: float = 20.0):
        super().__init__(conn_id=conn_id, operation=operation, poll_interval=poll_interval)

    def _look(self) -> dict:
        from varai_deploy.backups.cloud_sql import Instance

        return Instance(self.conn_id).operation(self.operation)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from varai_deploy.backups.cloud_sql import operation_errors

        failed = 0
        while True:
            try:
                operation = await asyncio.to_thread(self._look)
                failed = 0
            except Exception as exc:  # the API unreachable or refusing: a few times may be a blip
                failed += 1
                if failed >= FAILED_LOOKS:
                    yield TriggerEvent(
                        {"operation": self.operation, "done": False, "errors": [f"{type(exc).__name__}: {exc}"]}
                    )
                    return
                self.log.warning("Could not look at %s (%d/%d): %s", self.operation, failed, FAILED_LOOKS, exc)
            else:
                if operation.get("status") == "DONE":
                    yield TriggerEvent(
                        {
                            "operation": self.operation,
                            "done": True,
                            "errors": operation_errors(operation),
                            "start_time": operation.get("startTime"),
                            "end_time": operation.get("endTime"),
                        }
                    )
                    return
                self.log.info("%s is %s", self.operation, operation.get("status"))
            await asyncio.sleep(self.poll_interval)
