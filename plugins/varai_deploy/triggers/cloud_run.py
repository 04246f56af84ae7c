"""Wait in the triggerer, not in a worker slot, until Cloud Run has applied a change to a service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from varai_deploy.triggers.base import ArgumentsTrigger


class CloudRunServiceTrigger(ArgumentsTrigger):
    """Fires ``{"service", "error", "carry"}`` once the service is no longer reconciling (``error``: the message
    of its terminal condition when that failed, else None; ``carry`` as given: what the resumed task needs, since
    ``airflow dags test`` resumes with the event alone, without defer kwargs).

    It watches the service rather than one operation, so a retried deploy that finds its change still
    being applied waits for the same thing. The Google connection's credentials are read in the
    triggerer (in a thread: the client blocks), never carried in the trigger's arguments. A read that
    fails (a blip of the API) is made again at the next poll; the task's defer timeout bounds the wait.
    """

    def __init__(self, gcp_conn_id: str, service: str, poll_seconds: float = 2, carry: Any = None):
        super().__init__(gcp_conn_id=gcp_conn_id, service=service, poll_seconds=poll_seconds, carry=carry)

    def _read(self) -> dict:
        from varai_deploy.hooks.cloud_run import EndpointCloudRunHook

        return EndpointCloudRunHook(gcp_conn_id=self.gcp_conn_id).rest_get(self.service)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                found = await asyncio.to_thread(self._read)
            except Exception as exc:  # logged and read again; the defer timeout ends the wait
                self.log.warning("Reading %s failed (%s); reading it again", self.service, exc)
                found = {"reconciling": True}
            if not found.get("reconciling"):
                condition = found.get("terminalCondition") or {}
                failed = condition.get("state") == "CONDITION_FAILED"
                error = condition.get("message") if failed else None
                yield TriggerEvent({"service": self.service, "error": error, "carry": self.carry})
                return
            await asyncio.sleep(self.poll_seconds)
