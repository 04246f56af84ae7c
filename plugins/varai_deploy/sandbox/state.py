"""The sandbox's record on disk: which version runs in which colour, and which colour is live.

The API is called from separate Airflow task processes, possibly at the same time for
different services, so nothing is kept in memory: every change is a read-modify-write of
``state.json`` under an exclusive ``flock`` on ``state.lock``, and every write is atomic
(temporary file + ``os.replace``) so lock-free readers never see half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from varai_deploy.sandbox.validation import COLOURS
from varai_deploy.services import SERVICE_NAMES

SCHEMA = 1


def empty_state() -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "gateway": None,
        # Processes beside the gateway, by name ("prometheus", "traffic"): pid, wrapper_pid,
        # starttime and what they were started with, so `up` can tell whether they still run.
        "components": {},
        # The region the gateway sends requests to (None: the settings' first) and the regions
        # that are down (a region failure drill): nothing of theirs is started or restarted.
        "regions": {"active": None, "down": []},
        "services": {name: {"live": None, "slots": {}} for name in SERVICE_NAMES},
    }


def normalise(state: dict[str, Any]) -> dict[str, Any]:
    """Fill in what an older or hand-edited file lacks, so callers can index without checks."""
    base = empty_state()
    base["gateway"] = state.get("gateway")
    components = state.get("components")
    base["components"] = {
        k: v for k, v in (components if isinstance(components, dict) else {}).items() if isinstance(v, dict)
    }
    regions = state.get("regions") if isinstance(state.get("regions"), dict) else {}
    active, down = regions.get("active"), regions.get("down")
    base["regions"] = {
        "active": active if isinstance(active, str) else None,
        "down": [r for r in down if isinstance(r, str)] if isinstance(down, list) else [],
    }
    for name, record in (state.get("services") or {}).items():
        if name not in base["services"] or not isinstance(record, dict):
            continue
        live = record.get("live")
        slots = {c: s for c, s in (record.get("slots") or {}).items() if c in COLOURS and isinstance(s, dict)}
        base["services"][name] = {"live": live if live in slots else None, "slots": slots}
    return base


def instance_records(slot: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """A slot's processes as (instance, record): instance 0 is the slot itself (its ``port``,
    ``pid``, ... fields, as before there were replicas), then ``slot["replicas"]`` by instance."""
    replicas = [r for r in slot.get("replicas") or () if isinstance(r, dict) and isinstance(r.get("instance"), int)]
    return [(0, slot), *sorted(((r["instance"], r) for r in replicas), key=lambda pair: pair[0])]


def instance_record(slot: dict[str, Any], instance: int) -> dict[str, Any] | None:
    return next((record for i, record in instance_records(slot) if i == instance), None)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except (OSError, ValueError):
        return default


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a sibling temporary file, then rename over the target (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Like write_json_atomic for text, created with ``mode`` (private by default: the stand-ins'
    passwords, tokens and the connections handed to Airflow) so it is never readable by others."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)  # whatever the umask
    os.replace(tmp, path)


class StateStore:
    """``state.json`` plus its lock file; one instance per sandbox home."""

    def __init__(self, state_file: Path, lock_file: Path) -> None:
        self.state_file = state_file
        self.lock_file = lock_file

    def read(self) -> dict[str, Any]:
        """A consistent snapshot without taking the lock (writes are atomic renames)."""
        return normalise(read_json(self.state_file, {}) or {})

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock across processes (and threads: each call opens its own descriptor)."""
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_file.open("a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write under the lock; the state is saved when the block exits.

        It is saved even when the block raises: by then it may have started or stopped
        processes and the record must say so. Blocks therefore only mutate the dict to reflect
        what really happened.
        """
        with self.locked():
            state = self.read()
            try:
                yield state
            finally:
                write_json_atomic(self.state_file, state)
