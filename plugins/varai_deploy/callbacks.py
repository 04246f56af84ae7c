"""Task callbacks every operations DAG shares.

A task's error message lives only in its log; the outcome notification needs it ("failed in
backend.analysis: ..."), so a failing task writes it to its environment's ledger, redacted of the
secrets Airflow masks, before it ends. A callback never raises: it reports, it does not decide.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
ERROR_MAX = 1000
TASK_FAILED = "task_failed"
NO_ERROR = "no error was handed to the callback (see the task's log)"


def _redact(text: str) -> str:
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # pragma: no cover - a Task SDK without its masker
        return text
    return str(redact(text))


def task_label(ti: Any) -> str:
    """``task_id``, or ``task_id[<label>]`` for a mapped task (its map_index_template's label, e.g. the service)."""
    map_index = getattr(ti, "map_index", -1)
    if map_index is None or map_index < 0:
        return ti.task_id
    return f"{ti.task_id}[{getattr(ti, 'rendered_map_index', None) or map_index}]"


def record_task_failure(context: Any) -> None:
    """``on_failure_callback``: the failed task, its try and its error, in the ledger's audit."""
    try:
        from varai_deploy.config import load_environment
        from varai_deploy.ledger import Actor, ledger_for

        params = context.get("params") or {}
        env = load_environment(params.get("environment"))
        ti = context["ti"]
        error = context.get("exception")
        # Without an exception the callback runs outside the task (the dag-processor runs it for a task
        # the scheduler failed: its worker died, or it failed while parked): the error is in its log.
        message = _redact(f"{type(error).__name__}: {error}" if error else NO_ERROR)[:ERROR_MAX]
        ledger_for(env).record(
            Actor.from_context(context),
            TASK_FAILED,
            None,
            params.get("version"),
            {"task": task_label(ti), "try": getattr(ti, "try_number", None), "error": message},
        )
    except Exception as exc:  # the run's state is already decided; this is only its account
        log.warning("could not record the failure in the ledger: %s: %s", type(exc).__name__, exc)
