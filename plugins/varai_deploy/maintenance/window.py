"""The maintenance window's rule: which day of each month, when, for how long, announced how early.

Plain dates with no Airflow in sight, so the config can check a rule when it is loaded.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
WEEKDAYS = {name.lower(): number for number, name in enumerate(calendar.day_name)}


@dataclass(frozen=True)
class WindowRule:
    """A monthly window: the ``ordinal`` ``weekday`` of each month at ``hour``:``minute`` UTC."""

    ordinal: int
    weekday: int
    hour: int
    minute: int
    length: timedelta
    notice: timedelta

    @classmethod
    def parse(cls, rule: str, start: str, length_minutes: float, notice_hours: float) -> WindowRule:
        from varai_deploy.config import ConfigError

        words = str(rule).lower().split()
        if len(words) != 2 or words[0] not in ORDINALS or words[1] not in WEEKDAYS:
            raise ConfigError(f"maintenance.rule {rule!r}: use '<{'|'.join(ORDINALS)}> <weekday>', e.g. 'first sunday'")
        try:
            hour, minute = (int(part) for part in str(start).split(":"))
        except ValueError:
            hour = minute = -1
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ConfigError(f"maintenance.start {start!r}: use HH:MM (UTC), e.g. '02:00'")
        if not 0 < float(length_minutes) <= 24 * 60 or not 0 <= float(notice_hours) <= 24 * 27:
            raise ConfigError("maintenance.length_minutes must be in (0, 1440] and notice_hours in [0, 648]")
        return cls(
            ORDINALS[words[0]],
            WEEKDAYS[words[1]],
            hour,
            minute,
            timedelta(minutes=float(length_minutes)),
            timedelta(hours=float(notice_hours)),
        )

    def start_in(self, year: int, month: int) -> datetime:
        days = [
            d
            for d in range(1, calendar.monthrange(year, month)[1] + 1)
            if calendar.weekday(year, month, d) == self.weekday
        ]
        day = days[-1] if self.ordinal == -1 else days[self.ordinal - 1]
        return datetime(year, month, day, self.hour, self.minute, tzinfo=UTC)

    def next_start(self, at_or_after: datetime) -> datetime:
        """The first window starting at or after ``at_or_after``."""
        year, month = at_or_after.year, at_or_after.month
        while True:
            start = self.start_in(year, month)
            if start >= at_or_after:
                return start
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def describe(self) -> str:
        ordinal = next(name for name, n in ORDINALS.items() if n == self.ordinal)
        end = datetime(2000, 1, 1, self.hour, self.minute) + self.length
        return (
            f"{ordinal} {calendar.day_name[self.weekday]} of the month, "
            f"{self.hour:02d}:{self.minute:02d}-{end:%H:%M} UTC"
        )
