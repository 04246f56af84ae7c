"""What is in the backup bucket: one folder per backup, named by its snapshot time.

``<environment>/<database>/<stamp>/``: ``dump.pgc`` (pg_dump, custom format), then ``manifest.json``
(its sha256, size, the snapshot's time and every table's rows and checksum), then, once a restore
proved it, ``verified.json``, or ``failed.json`` when it did not. Objects are never rewritten: a
backup's state only moves forward, and a folder without a manifest is a backup that never finished.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DUMP, MANIFEST, VERIFIED, FAILED = "dump.pgc", "manifest.json", "verified.json", "failed.json"


def sha256_of(path: Path) -> tuple[str, int]:
    """(sha256, size) of a dump, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def stamp_of(moment: datetime) -> str:
    """Sortable, unique to the millisecond: 20261206T083000123Z."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z"


def moment_of(stamp: str) -> datetime:
    return datetime.strptime(stamp[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC, microsecond=int(stamp[15:18] or 0) * 1000)


def folder(environment: str, database: str, stamp: str = "") -> str:
    return f"{environment}/{database}/{stamp + '/' if stamp else ''}"


@dataclass(frozen=True)
class Backup:
    environment: str
    database: str
    stamp: str
    objects: frozenset[str]
    manifest: dict[str, Any] | None = None
    verified: dict[str, Any] | None = None
    failed: dict[str, Any] | None = None

    @property
    def taken_at(self) -> datetime:
        return moment_of(self.stamp)

    @property
    def status(self) -> str:
        """verified, failed, unverified (dumped, not proven yet) or incomplete (never finished)."""
        if self.failed is not None:
            return "failed"
        if self.verified is not None and DUMP in self.objects:
            return "verified"
        return "unverified" if self.manifest is not None and DUMP in self.objects else "incomplete"

    def name(self, leaf: str) -> str:
        return folder(self.environment, self.database, self.stamp) + leaf

    def describe(self) -> str:
        return f"{self.database} backup {self.stamp} ({self.status})"


def list_backups(store, environment: str, database: str) -> list[Backup]:
    """Every backup of ``database`` in ``environment``, oldest first."""
    prefix = folder(environment, database)
    leaves: dict[str, set[str]] = {}
    for name in store.names(prefix):
        stamp, _, leaf = name.removeprefix(prefix).partition("/")
        leaves.setdefault(stamp, set()).add(leaf)
    backups = []
    for stamp in sorted(leaves):
        found = leaves[stamp]
        base = folder(environment, database, stamp)
        backups.append(
            Backup(
                environment,
                database,
                stamp,
                frozenset(found),
                *(store.read_json(base + leaf) if leaf in found else None for leaf in (MANIFEST, VERIFIED, FAILED)),
            )
        )
    return backups


def newest_verified(backups: list[Backup]) -> Backup | None:
    return next((b for b in reversed(backups) if b.status == "verified"), None)
