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


def _redact(text: str) -> str:
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # pragma: no cover - a Task SDK without its masker
        return text
    return str(redact(text))


def task_label(ti: Any) -> str:
    map_index = getattr(ti, "map_index", -1)
    return ti.task_id if map_index is None or map_index < 0 else f"{ti.task_id}[{map_index}]"


def record_task_failure(context: Any) -> None:
    """``on_failure_callback``: the failed task, its try and its error, in the ledger's audit."""
    try:
        from varai_deploy.config import load_environment
        from varai_deploy.ledger import Actor, ledger_for

        params = context.get("params") or {}
        env = load_environment(params.get("environment"))
        ti = context["ti"]
        error = context.get("exception")
        message = _redact(f"{type(error).__name__}: {error}" if error else "no error recorded")[:ERROR_MAX]
        ledger_for(env).record(
            Actor.from_context(context),
            TASK_FAILED,
            None,
            params.get("version"),
            {"task": task_label(ti), "try": getattr(ti, "try_number", None), "error": message},
        )
    except Exception as exc:  # the run's state is already decided; this is only its account
        log.warning("could not record the failure in the ledger: %s: %s", type(exc).__name__, exc)
