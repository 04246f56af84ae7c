"""The release ledger: the one durable record every release, rollback and maintenance task reads and writes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from varai_deploy.ledger.store import (
    FAILED,
    PASSED,
    PENDING,
    ROLLED_BACK,
    STOREFRONT_SEARCH,
    WIDGETS_BUILT,
    Actor,
    Holder,
    Ledger,
    LedgerError,
    LockHeldError,
    RevisionRecord,
    ServiceState,
)

if TYPE_CHECKING:
    from varai_deploy.config import EnvironmentConfig

__all__ = [
    "FAILED",
    "PASSED",
    "PENDING",
    "ROLLED_BACK",
    "STOREFRONT_SEARCH",
    "WIDGETS_BUILT",
    "Actor",
    "Holder",
    "Ledger",
    "LedgerError",
    "LockHeldError",
    "RevisionRecord",
    "ServiceState",
    "ledger_for",
]


def ledger_for(env: EnvironmentConfig) -> Ledger:
    """The environment's ledger, through its ``connections.ledger`` Airflow connection."""
    return Ledger(env.name, env.ledger_conn_id)
