"""What a manual rollback may do: checked before anything moves, saying why when it may not."""

from __future__ import annotations

import re
from typing import Any

from varai_deploy.config import VERSION_PATTERN, ConfigError
from varai_deploy.platforms import Platform

#: ``previous`` or a release tag (JSON-schema pattern of the rollback DAG's ``target`` param).
TARGET_PATTERN = r"^(previous|" + VERSION_PATTERN.removeprefix("^").removesuffix("$") + r")$"
#: Any reason with at least one visible character.
REASON_PATTERN = r"\S"


class RollbackRefusedError(ConfigError):
    pass


def check_reason(reason: Any) -> str:
    if not isinstance(reason, str) or not re.search(REASON_PATTERN, reason):
        raise RollbackRefusedError("a rollback needs a reason: say why (it is recorded with who and when)")
    return reason.strip()


def resolve_targets(platform: Platform, services: list[str], target: str) -> list[dict[str, Any]]:
    """For each service, the revision to put traffic back on; refuses if any is unknown."""
    if not re.fullmatch(TARGET_PATTERN, target):
        raise RollbackRefusedError(f"target {target!r} must be 'previous' or a release tag such as v1.4.2")
    chosen, refused = [], []
    for service in services:
        known = platform.known_revisions(service)
        live = platform.current_revision(service)
        others = [r for r in known if not live or r["version"] != live["version"]]
        if target == "previous":
            match = others[0] if others else None
        elif live and live["version"] == target:
            chosen.append({**live, "noop": True})
            continue
        else:
            match = next((r for r in others if r["version"] == target), None)
        if match is None:
            listed = ", ".join(r["version"] for r in others) or "none"
            wanted = "no previous revision" if target == "previous" else f"{target} is not known to the platform"
            refused.append(f"{service}: {wanted} (other revisions known: {listed})")
            continue
        chosen.append(dict(match))
    if refused:
        raise RollbackRefusedError("cannot roll back: " + "; ".join(refused))
    return chosen
