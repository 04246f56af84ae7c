"""Secrets the sandbox invents for its stand-ins (SVN password, npm password, API tokens).

Random, generated once per sandbox home and kept in ``<home>/credentials.json`` (0600), so a
restarted sandbox keeps accepting what Airflow's connections hold. Never printed.
"""

from __future__ import annotations

import fcntl
import json
import secrets
from typing import TYPE_CHECKING

from varai_deploy.sandbox.state import write_text_atomic

if TYPE_CHECKING:
    from varai_deploy.sandbox.settings import SandboxSettings


def secret(settings: SandboxSettings, name: str) -> str:
    """The sandbox's secret called ``name``, created on first use."""
    path = settings.credentials_file
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            values = {}
        if name not in values:
            values[name] = secrets.token_urlsafe(24)
            write_text_atomic(path, json.dumps(values))
        return values[name]


def api_key(settings: SandboxSettings, merchant: str, environment: str = "sandbox") -> str:
    """The plain widget API key of one of the sandbox's own callers (api_keys.SANDBOX_MERCHANTS) on
    ``environment``'s gateway (the sandbox's, or staging's load balancer)."""
    prefix = "" if environment == "sandbox" else f"{environment}_"
    return secret(settings, f"{prefix}api_key_{merchant}")
