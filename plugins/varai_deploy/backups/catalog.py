"""What is in the backup bucket: one folder per backup, named by its snapshot time.

``<environment>/<database>/<stamp>/``: ``dump.pgc`` (pg_dump, custom format) or ``export.sql.gz`` (a
Cloud SQL export, plain SQL, after ``source_before.json``), then ``manifest.json`` (its sha256, size,
the snapshot's time and, for a dump, every table's rows and checksum), then, once a restore proved
it, ``verified.json`` (with the restored figures), or ``failed.json`` when it did not. Objects are never rewritten: a
backup's state only moves forward, and a folder without a manifest is a backup that never finished.
A backup's state is read from the names alone; its JSON is fetched only when asked for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

DUMP, MANIFEST, VERIFIED, FAILED = "dump.pgc", "manifest.json", "verified.json", "failed.json"
#: A Cloud SQL export (see backups.cloud_sql), and the source's figures read just before it was asked for.
EXPORT, SOURCE_BEFORE = "export.sql.gz", "source_before.json"


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


class DumpMismatch(RuntimeError):
    """The stored dump is not the one its manifest describes."""


@dataclass(frozen=True)
class Backup:
    environment: str
    database: str
    stamp: str
    objects: frozenset[str]
    store: Any = field(default=None, compare=False, repr=False)

    @property
    def taken_at(self) -> datetime:
        return moment_of(self.stamp)

    @property
    def status(self) -> str:
        """verified, failed, unverified (dumped, not proven yet) or incomplete (never finished)."""
        if FAILED in self.objects:
            return "failed"
        if self.dump_leaf is None or MANIFEST not in self.objects:
            return "incomplete"
        return "verified" if VERIFIED in self.objects else "unverified"

    @property
    def dump_leaf(self) -> str | None:
        """The dump's object: a pg_dump (``dump.pgc``) or a Cloud SQL export (``export.sql.gz``)."""
        return next((leaf for leaf in (DUMP, EXPORT) if leaf in self.objects), None)

    @property
    def figures(self) -> dict[str, dict[str, Any]]:
        """Every table's rows and checksum: the snapshot's for a dump, what the proof restored for an export."""
        return self.manifest.get("tables") or (self.verified or {}).get("figures") or {}

    @cached_property
    def manifest(self) -> dict[str, Any] | None:
        return self._read(MANIFEST)

    @cached_property
    def verified(self) -> dict[str, Any] | None:
        return self._read(VERIFIED)

    @cached_property
    def failed(self) -> dict[str, Any] | None:
        return self._read(FAILED)

    def _read(self, leaf: str) -> dict[str, Any] | None:
        return self.store.read_json(self.name(leaf)) if leaf in self.objects else None

    def name(self, leaf: str) -> str:
        return folder(self.environment, self.database, self.stamp) + leaf

    def describe(self) -> str:
        return f"{self.database} backup {self.stamp} ({self.status})"


def list_backups(store, environment: str, database: str, stamp: str = "") -> list[Backup]:
    """Every backup of ``database`` in ``environment`` (or the one of ``stamp``), oldest first, from
    one listing of names."""
    prefix = folder(environment, database)
    leaves: dict[str, set[str]] = {}
    for name in store.names(prefix + (stamp + "/" if stamp else "")):
        found, _, leaf = name.removeprefix(prefix).partition("/")
        leaves.setdefault(found, set()).add(leaf)
    return [Backup(environment, database, s, frozenset(leaves[s]), store) for s in sorted(leaves)]


def find(store, environment: str, database: str, stamp: str) -> Backup | None:
    """The backup of ``stamp``, listing that folder only."""
    return next(iter(list_backups(store, environment, database, stamp)), None)


def newest_verified(backups: list[Backup]) -> Backup | None:
    return next((b for b in reversed(backups) if b.status == "verified"), None)


def download_checked(backup: Backup, path: Path) -> None:
    """Downloads the backup's dump to ``path`` and checks it is, byte for byte, what was written."""
    backup.store.download_to(backup.name(backup.dump_leaf), path)
    sha256, size = sha256_of(path)
    want = backup.manifest
    if (sha256, size) != (want["sha256"], want["size"]):
        raise DumpMismatch(
            f"the stored dump ({size} bytes, sha256 {sha256}) is not what was written "
            f"({want['size']} bytes, sha256 {want['sha256']})"
        )
