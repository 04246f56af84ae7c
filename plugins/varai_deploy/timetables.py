"""The maintenance window's calendar, as Airflow timetables the plugin registers.

One rule (``maintenance:`` in the environment config: "first sunday", 02:00 UTC, 120 min, notice
48 h before) schedules both DAGs:

- ``maintenance_window`` runs at each window's start; its data interval is the window itself, so
  every task knows when it must be done (``data_interval_end``);
- ``maintenance_notice`` runs ``notice_hours`` before; its data interval ends where the window it
  announces starts (a notice for Sunday the 1st or 2nd falls in the previous month).

Without catch-up, a window the scheduler missed is run only while it is still open (late, and
shorter), and a notice only while its window is still ahead: nothing is announced for the past.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.timetables.base import DagRunInfo, DataInterval, Timetable

from varai_deploy.maintenance.window import WindowRule


class MaintenanceTimetable(Timetable):
    """Runs at each maintenance window's start (``announce=False``) or ``notice_hours`` before it."""

    def __init__(
        self, rule: str, start: str, length_minutes: float, notice_hours: float, announce: bool = False
    ) -> None:
        self.rule, self.start, self.length_minutes, self.notice_hours = rule, start, length_minutes, notice_hours
        self.announce = announce
        self.window = WindowRule.parse(rule, start, length_minutes, notice_hours)
        when = f"{notice_hours:g} h before the window" if announce else "at the window's start"
        self.description = f"{when}: {self.window.describe()}"

    @classmethod
    def from_policy(cls, policy: Any, announce: bool = False) -> MaintenanceTimetable:
        return cls(policy.rule, policy.start, policy.length_minutes, policy.notice_hours, announce)

    @property
    def summary(self) -> str:
        return ("notice: " if self.announce else "window: ") + self.window.describe()

    def serialize(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "start": self.start,
            "length_minutes": self.length_minutes,
            "notice_hours": self.notice_hours,
            "announce": self.announce,
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> MaintenanceTimetable:
        return cls(**data)

    def _info(self, window_start: datetime) -> DagRunInfo:
        from airflow._shared.timezones.timezone import coerce_datetime

        start = coerce_datetime(window_start)
        if self.announce:
            notice_at = start - self.window.notice
            return DagRunInfo(run_after=notice_at, data_interval=DataInterval(notice_at, start))
        return DagRunInfo(run_after=start, data_interval=DataInterval(start, start + self.window.length))

    def window_of(self, interval: DataInterval) -> tuple[datetime, datetime]:
        """The window a run is about: (start, end)."""
        start = interval.end if self.announce else interval.start
        return start, start + self.window.length

    def infer_manual_data_interval(self, *, run_after) -> DataInterval:
        """A manual window is open from when it is triggered for the configured length; a manual
        notice announces the next scheduled window."""
        if self.announce:
            return DataInterval(run_after, self._info(self.window.next_start(run_after)).data_interval.end)
        return DataInterval(run_after, run_after + self.window.length)

    def next_dagrun_info(self, *, last_automated_data_interval, restriction) -> DagRunInfo | None:
        if last_automated_data_interval is not None:
            last_start, _ = self.window_of(last_automated_data_interval)
            after = last_start + timedelta(minutes=1)
        elif restriction.earliest is not None:
            # The first notice is not sent before the DAG's start date.
            after = restriction.earliest + (self.window.notice if self.announce else timedelta(0))
        else:
            after = datetime.now(UTC)
        if not restriction.catchup:
            now = datetime.now(UTC)
            # A window still open is run late; a notice only while its window is ahead.
            after = max(after, now if self.announce else now - self.window.length)
        start = self.window.next_start(after)
        info = self._info(start)
        if restriction.latest is not None and info.run_after > restriction.latest:
            return None
        return info
