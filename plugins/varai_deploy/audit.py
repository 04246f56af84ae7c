"""The operations audit trail: one JSON line per rollback (who, when, why, what now serves)."""

from __future__ import annotations

import json
from pathlib import Path

from varai_deploy.config import EnvironmentConfig


def audit_path(env: EnvironmentConfig) -> Path:
    from varai_deploy.sandbox import SandboxSettings

    return SandboxSettings.load().home / "audit" / f"{env.name}.jsonl"


def append_audit(env: EnvironmentConfig, record: dict) -> Path:
    path = audit_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
    return path


def read_audit(env: EnvironmentConfig) -> list[dict]:
    path = audit_path(env)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
