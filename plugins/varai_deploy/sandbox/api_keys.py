"""Merchants' widget API keys as a gateway keeps them: hashed, revocable, each with its rate limit.

``<gateway dir>/api_keys.json`` (0600) maps a merchant to the sha256 of its key, whether it is revoked
and its own plan (``rate_limit``, or the environment's when absent). The plain key exists only where
it was issued: given once to the merchant (``varai-sandbox api-key issue``), or, for the sandbox's own
callers (its synthetic shoppers, a release's security check, the demo storefront), kept with the
sandbox's other generated secrets in ``credentials.json``. The gateway re-reads the file when it
changes, so a revoked key is refused from the next request on.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from varai_deploy.sandbox.state import write_text_atomic

KEYS_FILE = "api_keys.json"
POLICY_FILE = "policy.json"
MERCHANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: The sandbox's own callers and their plans: synthetic shoppers are many people behind one key; a
#: release's security check bursts past its small limit on purpose; the demo shop is one merchant.
SANDBOX_MERCHANTS: dict[str, dict[str, float] | None] = {
    "sandbox-shoppers": {"requests": 100_000, "per_seconds": 60},
    "release-check": {"requests": 10, "per_seconds": 10},
    "demo-storefront": None,
}


@dataclass(frozen=True)
class ApiKey:
    merchant: str
    revoked: bool
    #: (requests, per_seconds), or None: the environment's limit.
    rate_limit: tuple[int, float] | None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "vk_" + secrets.token_urlsafe(24)


def read(keys_file: Path) -> dict[str, ApiKey]:
    """By key digest; a missing or unreadable file holds no keys (everything is refused)."""
    try:
        raw = json.loads(keys_file.read_text(encoding="utf-8")).get("keys") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    keys = {}
    for merchant, record in raw.items():
        limit = record.get("rate_limit")
        keys[record["sha256"]] = ApiKey(
            merchant,
            bool(record.get("revoked")),
            (int(limit["requests"]), float(limit["per_seconds"])) if limit else None,
        )
    return keys


@contextmanager
def _editing(keys_file: Path) -> Iterator[dict[str, Any]]:
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    with open(keys_file.with_name(keys_file.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(keys_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            data = {"keys": {}}
        yield data["keys"]
        write_text_atomic(keys_file, json.dumps(data, indent=1, sort_keys=True))
        os.chmod(keys_file, 0o600)


def _check_merchant(merchant: str) -> str:
    if not isinstance(merchant, str) or not MERCHANT_RE.fullmatch(merchant):
        raise ValueError(f"merchant {merchant!r} must be lowercase letters, digits and '-' (at most 63)")
    return merchant


def _plan(requests: int | None, per_seconds: float | None) -> dict[str, float] | None:
    if requests is None and per_seconds is None:
        return None
    if not requests or requests < 1 or not per_seconds or per_seconds <= 0:
        raise ValueError("a key's rate limit needs requests >= 1 and per_seconds > 0")
    return {"requests": int(requests), "per_seconds": float(per_seconds)}


def issue(keys_file: Path, merchant: str, requests: int | None = None, per_seconds: float | None = None) -> str:
    """A new key for ``merchant`` (replacing any it had); returned once, stored only hashed."""
    key = new_key()
    install(keys_file, merchant, key, _plan(requests, per_seconds))
    return key


def install(keys_file: Path, merchant: str, key: str, rate_limit: dict[str, float] | None = None) -> None:
    """Make ``key`` the merchant's (idempotent: the same key and plan leave the file as it is)."""
    _check_merchant(merchant)
    wanted = {"sha256": digest(key), "revoked": False, "rate_limit": rate_limit}
    with _editing(keys_file) as keys:
        current = keys.get(merchant) or {}
        if {k: current.get(k) for k in wanted} != wanted:
            keys[merchant] = {**wanted, "issued_at": time.time()}


def revoke(keys_file: Path, merchant: str) -> None:
    _check_merchant(merchant)
    with _editing(keys_file) as keys:
        if merchant not in keys:
            raise KeyError(f"no API key issued to {merchant!r}; issued: {', '.join(sorted(keys)) or 'none'}")
        keys[merchant] = {**keys[merchant], "revoked": True, "revoked_at": time.time()}


def merchants(keys_file: Path) -> dict[str, dict[str, Any]]:
    """Who holds a key, revoked or not, and their plan: never the digests."""
    try:
        raw = json.loads(keys_file.read_text(encoding="utf-8")).get("keys") or {}
    except (OSError, ValueError):
        return {}
    return {name: {"revoked": bool(r.get("revoked")), "rate_limit": r.get("rate_limit")} for name, r in raw.items()}
