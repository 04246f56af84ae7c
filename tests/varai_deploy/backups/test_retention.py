"""Retention keeps what the guide and the RPO need, and says why for every backup it deletes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from varai_deploy.backups.catalog import DUMP, FAILED, MANIFEST, VERIFIED, Backup, stamp_of
from varai_deploy.backups.retention import plan
from varai_deploy.config import BackupPolicy

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
POLICY = BackupPolicy(databases=("app_db",), every_minutes=30, rpo_minutes=60, keep_recent_hours=48, keep_daily_days=30)


def backup(taken_at: datetime, status: str = "verified") -> Backup:
    found = {
        "verified": {DUMP, MANIFEST, VERIFIED},
        "unverified": {DUMP, MANIFEST},
        "failed": {DUMP, MANIFEST, FAILED},
        "incomplete": {DUMP},
    }[status]
    return Backup("sandbox", "app_db", stamp_of(taken_at), frozenset(found))


def every_half_hour(days: int) -> list[Backup]:
    first = NOW - timedelta(days=days)
    return [backup(first + timedelta(minutes=30 * i)) for i in range(days * 48)]


def test_forty_days_of_half_hourly_backups_keep_the_last_48_hours_and_one_a_day_for_30_days():
    backups = every_half_hour(40)
    keep, delete = plan(backups, NOW, POLICY)
    kept = [b for b in backups if b.stamp in keep]
    recent = [b for b in kept if b.taken_at >= NOW - timedelta(hours=48)]
    assert len(recent) == 96
    older_days = {b.taken_at.date() for b in kept if b.taken_at < NOW - timedelta(hours=48)}
    assert len([b for b in kept if b.taken_at < NOW - timedelta(hours=48)]) == len(older_days)  # one a day
    assert min(older_days) == (NOW - timedelta(days=29)).date()
    assert len(keep) + len(delete) == len(backups)
    assert all("not its day's newest" in why for why in delete.values())
    # Each older day keeps its newest backup (23:30), not an arbitrary one.
    before = (NOW - timedelta(days=2)).date()
    assert {b.taken_at.strftime("%H:%M") for b in kept if b.taken_at.date() < before} == {"23:30"}


def test_the_newest_verified_backup_is_kept_however_old_it_is():
    old = backup(NOW - timedelta(days=90))
    failed_since = [backup(NOW - timedelta(days=80 - i), "failed") for i in range(3)]
    keep, delete = plan([old, *failed_since], NOW, POLICY)
    assert keep[old.stamp] == "the newest verified backup"
    # Failed ones newer than the newest verified are kept too: they are all anyone has to look at.
    assert all(b.stamp in keep for b in failed_since)
    assert delete == {}


def test_a_backup_never_verified_is_kept_for_the_grace_period_then_deleted():
    good = backup(NOW - timedelta(minutes=20))
    failed_recent = backup(NOW - timedelta(hours=3), "failed")
    failed_old = backup(NOW - timedelta(hours=30), "failed")
    unfinished_old = backup(NOW - timedelta(hours=26), "incomplete")
    keep, delete = plan([failed_old, unfinished_old, failed_recent, good], NOW, POLICY)
    assert "inspection" in keep[failed_recent.stamp]
    assert set(delete) == {failed_old.stamp, unfinished_old.stamp}
    assert "older than 24 h" in delete[failed_old.stamp]


def test_a_backup_newer_than_the_newest_verified_one_may_be_in_progress_and_is_kept():
    verified = backup(NOW - timedelta(days=3))
    in_progress = backup(NOW - timedelta(minutes=1), "unverified")
    keep, _ = plan([verified, in_progress], NOW, POLICY)
    assert "in progress" in keep[in_progress.stamp]


def test_nothing_in_the_bucket_plans_nothing():
    assert plan([], NOW, POLICY) == ({}, {})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"every_minutes": 60, "rpo_minutes": 60}, "less than backups.rpo_minutes"),
        ({"keep_recent_hours": 0.5}, "cover at least the RPO"),
        ({"databases": ()}, "at least one database"),
        ({"keep_daily_days": 0}, "whole number of days"),
        ({"method": "tape"}, "backups.method must be one of pg_dump, cloud_sql, not 'tape'"),
    ],
)
def test_a_policy_that_cannot_meet_its_objectives_is_refused(fields, message):
    from varai_deploy.config import ConfigError

    values = {"databases": ("app_db",), "every_minutes": 30, "rpo_minutes": 60, **fields}
    with pytest.raises(ConfigError, match=message):
        BackupPolicy(**values)


def test_a_cloud_sql_backup_needs_the_instance_connection(tmp_path):
    from tests.support.environments import write_environments
    from varai_deploy.config import ConfigError, load_environment

    environments = write_environments(tmp_path, backups={"method": "cloud_sql"})
    with pytest.raises(ConfigError, match="a Cloud SQL backup .the instance. needs connections.cloud_sql"):
        load_environment("sandbox", environments)
    environments = write_environments(tmp_path, backups={"method": "cloud_sql"}, connections={"cloud_sql": "x"})
    assert load_environment("sandbox", environments).backups.method == "cloud_sql"
