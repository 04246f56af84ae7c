"""Backups are named by their snapshot time, to the millisecond, and their state is read from what exists."""

from __future__ import annotations

from datetime import UTC, datetime

from varai_deploy.backups.catalog import (
    DUMP,
    FAILED,
    MANIFEST,
    VERIFIED,
    Backup,
    folder,
    list_backups,
    moment_of,
    newest_verified,
    stamp_of,
)


def test_a_stamp_sorts_like_time_and_reads_back_to_the_millisecond():
    moments = [datetime(2026, 12, 6, 8, 30, 0, 123456, tzinfo=UTC), datetime(2026, 12, 6, 8, 30, 0, 124999, tzinfo=UTC)]
    stamps = [stamp_of(m) for m in moments]
    assert stamps == ["20261206T083000123Z", "20261206T083000124Z"] == sorted(stamps)
    assert moment_of(stamps[0]) == datetime(2026, 12, 6, 8, 30, 0, 123000, tzinfo=UTC)
    assert folder("sandbox", "app_db", stamps[0]) == "sandbox/app_db/20261206T083000123Z/"


def test_the_state_of_a_backup_is_what_its_objects_say():
    def make(*leaves):
        return Backup("sandbox", "ledger", "20261206T083000123Z", frozenset(leaves))

    assert make(DUMP, MANIFEST).status == "unverified"
    assert make(DUMP, MANIFEST, VERIFIED).status == "verified"
    assert make(DUMP, MANIFEST, FAILED).status == "failed"
    assert make(DUMP, MANIFEST, VERIFIED, FAILED).status == "failed"  # failed is final
    assert make(DUMP).status == "incomplete"  # the dump went up, the manifest never did
    # A verified marker whose dump is gone (retention cut short) is not a backup any more.
    assert make(MANIFEST, VERIFIED).status == "incomplete"
    assert newest_verified([make(DUMP, MANIFEST)]) is None


class CountingStore:
    """The names and JSON of a bucket, counting the objects read."""

    def __init__(self, objects: dict[str, dict]) -> None:
        self.objects, self.reads = objects, []

    def names(self, prefix: str) -> list[str]:
        return sorted(name for name in self.objects if name.startswith(prefix))

    def read_json(self, name: str) -> dict:
        self.reads.append(name)
        return self.objects[name]


def test_listing_reads_names_only_and_a_backups_json_when_asked():
    base = folder("sandbox", "app_db")
    store = CountingStore(
        {
            f"{base}20261206T080000000Z/{DUMP}": {},
            f"{base}20261206T080000000Z/{MANIFEST}": {"sha256": "a"},
            f"{base}20261206T080000000Z/{VERIFIED}": {"restore_seconds": 1.5},
            f"{base}20261206T083000000Z/{DUMP}": {},
            f"{base}20261206T083000000Z/{MANIFEST}": {"sha256": "b"},
            f"{base}20261206T083000000Z/{FAILED}": {"reason": "differs"},
            "sandbox/app_dbx/20261206T090000000Z/dump.pgc": {},  # another database sharing the prefix's start
        }
    )
    backups = list_backups(store, "sandbox", "app_db")
    assert [(b.stamp, b.status) for b in backups] == [
        ("20261206T080000000Z", "verified"),
        ("20261206T083000000Z", "failed"),
    ]
    newest = newest_verified(backups)
    assert store.reads == []
    assert newest.verified == {"restore_seconds": 1.5} and newest.manifest == {"sha256": "a"}
    assert newest.failed is None
    assert store.reads == [f"{base}20261206T080000000Z/{VERIFIED}", f"{base}20261206T080000000Z/{MANIFEST}"]
    (one,) = list_backups(store, "sandbox", "app_db", "20261206T083000000Z")
    assert one.failed == {"reason": "differs"}
