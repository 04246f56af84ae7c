"""Which backups may go: the guide's 30 days of dailies, the recent ones the RPO relies on, nothing more.

Kept, each for a reason: the newest verified backup (always: it is what a restore uses now); every
verified backup of the last ``keep_recent_hours``; the newest verified backup of each of the last
``keep_daily_days`` UTC days; anything newer than the newest verified one (it may be in progress);
and a backup that never verified, for ``unverified_grace_hours``, so someone can look at it.
Everything else is deleted, with the reason why it was not kept.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from varai_deploy.backups.catalog import Backup, newest_verified
from varai_deploy.config import BackupPolicy


def plan(backups: list[Backup], now: datetime, policy: BackupPolicy) -> tuple[dict[str, str], dict[str, str]]:
    """(stamp -> why kept, stamp -> why deleted) over ``backups``."""
    keep: dict[str, str] = {}
    newest = newest_verified(backups)
    if newest is not None:
        keep[newest.stamp] = "the newest verified backup"
    recent_since = now - timedelta(hours=policy.keep_recent_hours)
    first_day = (now - timedelta(days=policy.keep_daily_days - 1)).date()
    dailies: dict[object, Backup] = {}
    for backup in backups:
        if backup.status == "verified" and backup.taken_at.date() >= first_day:
            dailies[backup.taken_at.date()] = backup  # oldest first: the last one seen is the day's newest
    for day, backup in dailies.items():
        keep.setdefault(backup.stamp, f"the newest verified backup of {day}")
    grace_since = now - timedelta(hours=policy.unverified_grace_hours)
    delete: dict[str, str] = {}
    for backup in backups:
        if backup.stamp in keep:
            continue
        if backup.status == "verified":
            if backup.taken_at >= recent_since:
                keep[backup.stamp] = f"verified within the last {policy.keep_recent_hours:g} h"
            else:
                delete[backup.stamp] = (
                    f"verified, older than {policy.keep_recent_hours:g} h and not its day's newest "
                    f"within {policy.keep_daily_days} days"
                )
        elif newest is None or backup.taken_at > newest.taken_at:
            keep[backup.stamp] = f"{backup.status}, newer than any verified backup (it may still be in progress)"
        elif backup.taken_at >= grace_since:
            keep[backup.stamp] = f"{backup.status}, kept {policy.unverified_grace_hours:g} h for inspection"
        else:
            delete[backup.stamp] = f"{backup.status}, older than {policy.unverified_grace_hours:g} h"
    return keep, delete
