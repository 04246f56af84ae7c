"""What a manual rollback may do: checked before anything moves, saying why when it may not."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from varai_deploy.config import REVISION_VERSION_PATTERN, ConfigError
from varai_deploy.platforms import Platform

if TYPE_CHECKING:
    from varai_deploy.ledger import Ledger

#: ``previous``, a release tag, or a rebuild of one (a maintenance window's ``v1.4.2+sec.20261206``):
#: the JSON-schema pattern of the rollback DAG's ``target`` param.
TARGET_PATTERN = r"^(previous|" + REVISION_VERSION_PATTERN.removeprefix("^").removesuffix("$") + r")$"
#: Any reason with at least one visible character.
REASON_PATTERN = r"\S"


class RollbackRefusedError(ConfigError):
    pass


def check_reason(reason: Any) -> str:
    if not isinstance(reason, str) or not re.search(REASON_PATTERN, reason):
        raise RollbackRefusedError("a rollback needs a reason: say why (it is recorded with who and when)")
    return reason.strip()


def resolve_targets(platform: Platform, ledger: Ledger, services: list[str], target: str) -> list[dict[str, Any]]:
    """For each service, the revision to put traffic back on; refuses if any is unknown.

    Only revisions that served traffic and passed their analysis (per the ledger) and that the
    platform can still run are targets: a candidate that never served is never "previous".
    """
    if not re.fullmatch(TARGET_PATTERN, target):
        raise RollbackRefusedError(
            f"target {target!r} must be 'previous' or a release tag such as v1.4.2 (or a rebuild: v1.4.2+sec.20261206)"
        )
    chosen, refused = [], []
    for service in services:
        live = platform.current_revision(service)
        if target != "previous" and live and live["version"] == target:
            chosen.append({**live, "noop": True})
            continue
        known = {(r["version"], r["name"]): r for r in platform.known_revisions(service)}
        good = [
            dict(known[(r.version, r.name)])
            for r in ledger.good_revisions(service)
            if (r.version, r.name) in known and not (live and r.version == live["version"])
        ]
        if target == "previous":
            match = good[0] if good else None
        else:
            match = next((r for r in good if r["version"] == target), None)
        if match is None:
            listed = ", ".join(r["version"] for r in good) or "none"
            wanted = "no previous revision" if target == "previous" else f"{target} is not known to the platform"
            refused.append(f"{service}: {wanted} (known good revisions: {listed})")
            continue
        chosen.append(match)
    if refused:
        raise RollbackRefusedError("cannot roll back: " + "; ".join(refused))
    return chosen
