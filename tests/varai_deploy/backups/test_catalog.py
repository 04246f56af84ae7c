"""Backups are named by their snapshot time, to the millisecond, and their state is read from what exists."""

from __future__ import annotations

from datetime import UTC, datetime

from varai_deploy.backups.catalog import DUMP, MANIFEST, VERIFIED, Backup, folder, moment_of, newest_verified, stamp_of


def test_a_stamp_sorts_like_time_and_reads_back_to_the_millisecond():
    moments = [datetime(2026, 12, 6, 8, 30, 0, 123456, tzinfo=UTC), datetime(2026, 12, 6, 8, 30, 0, 124999, tzinfo=UTC)]
    stamps = [stamp_of(m) for m in moments]
    assert stamps == ["20261206T083000123Z", "20261206T083000124Z"] == sorted(stamps)
    assert moment_of(stamps[0]) == datetime(2026, 12, 6, 8, 30, 0, 123000, tzinfo=UTC)
    assert folder("sandbox", "app_db", stamps[0]) == "sandbox/app_db/20261206T083000123Z/"


def test_the_state_of_a_backup_is_what_its_objects_say():
    def make(*leaves, verified=None, failed=None, manifest=True):
        stamp = "20261206T083000123Z"
        return Backup("sandbox", "ledger", stamp, frozenset(leaves), {} if manifest else None, verified, failed)

    assert make(DUMP, MANIFEST).status == "unverified"
    assert make(DUMP, MANIFEST, VERIFIED, verified={"verified_at": "x"}).status == "verified"
    assert make(DUMP, MANIFEST, failed={"reason": "x"}).status == "failed"
    assert make(DUMP, manifest=False).status == "incomplete"  # the dump went up, the manifest never did
    # A verified marker whose dump is gone (retention cut short) is not a backup any more.
    assert make(MANIFEST, VERIFIED, verified={"verified_at": "x"}).status == "incomplete"
    assert newest_verified([make(DUMP, MANIFEST)]) is None
