"""The maintenance calendar: the next 24 windows and notices, against dates computed another way."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from airflow.timetables.base import DataInterval, TimeRestriction

from varai_deploy.config import ConfigError, load_environment
from varai_deploy.maintenance.window import WindowRule
from varai_deploy.timetables import MaintenanceTimetable

FROM = datetime(2027, 1, 1, tzinfo=UTC)


def first_sundays(months: int, year: int = 2027) -> list[datetime]:
    """The first Sunday of each month, by walking days: the first date of the month whose weekday is 6."""
    out = []
    for i in range(months):
        y, m = year + i // 12, i % 12 + 1
        day = next(d for d in range(1, 8) if date(y, m, d).weekday() == 6)
        out.append(datetime(y, m, day, 2, 0, tzinfo=UTC))
    return out


def scheduled(timetable: MaintenanceTimetable, count: int, earliest: datetime = FROM) -> list:
    restriction = TimeRestriction(earliest=earliest, latest=None, catchup=True)
    runs, last = [], None
    for _ in range(count):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        runs.append(info)
        last = info.data_interval
    return runs


def sandbox_timetable(announce: bool) -> MaintenanceTimetable:
    return MaintenanceTimetable.from_policy(load_environment("sandbox").maintenance, announce=announce)


def test_the_next_24_windows_start_on_each_first_sunday_at_two_and_last_two_hours():
    runs = scheduled(sandbox_timetable(announce=False), 24)
    expected = first_sundays(24)
    assert [r.run_after for r in runs] == expected
    assert [(r.data_interval.start, r.data_interval.end) for r in runs] == [
        (s, s + timedelta(hours=2)) for s in expected
    ]


def test_the_next_24_notices_go_out_48_hours_before_their_window_even_in_the_previous_month():
    runs = scheduled(sandbox_timetable(announce=True), 24)
    expected = first_sundays(24)
    assert [r.run_after for r in runs] == [s - timedelta(hours=48) for s in expected]
    # Each notice's interval ends where the window it announces starts.
    assert [r.data_interval.end for r in runs] == expected
    # First Sundays on the 1st or 2nd: their notice is in the month before (2027: Aug 1, 2028: Oct 1).
    previous_month = [r.run_after for r in runs if r.run_after.month != r.data_interval.end.month]
    assert previous_month == [s - timedelta(hours=48) for s in expected if s.day <= 2]
    assert datetime(2027, 7, 30, 2, 0, tzinfo=UTC) in previous_month


def test_other_rules_and_starts():
    rule = WindowRule.parse("last friday", "22:30", 90, 24)
    assert rule.next_start(datetime(2027, 2, 1, tzinfo=UTC)) == datetime(2027, 2, 26, 22, 30, tzinfo=UTC)
    # At or after: a window that starts at that very moment is that window.
    assert rule.next_start(datetime(2027, 2, 26, 22, 30, tzinfo=UTC)) == datetime(2027, 2, 26, 22, 30, tzinfo=UTC)
    assert rule.next_start(datetime(2027, 12, 31, 23, 0, tzinfo=UTC)) == datetime(2028, 1, 28, 22, 30, tzinfo=UTC)
    assert WindowRule.parse("second tuesday", "00:00", 60, 0).describe() == (
        "second Tuesday of the month, 00:00-01:00 UTC"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (("every sunday", "02:00", 120, 48), "maintenance.rule 'every sunday'"),
        (("first sunday", "2am", 120, 48), "maintenance.start '2am'"),
        (("first sunday", "24:00", 120, 48), "maintenance.start '24:00'"),
        (("first sunday", "02:00", 0, 48), "length_minutes must be in (0, 1440]"),
    ],
)
def test_a_bad_rule_is_refused_saying_what_to_write(args, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        WindowRule.parse(*args)


def test_it_survives_serialisation_and_describes_itself():
    timetable = sandbox_timetable(announce=True)
    again = MaintenanceTimetable.deserialize(timetable.serialize())
    assert again.serialize() == timetable.serialize()
    assert scheduled(again, 3) == scheduled(timetable, 3)
    assert timetable.description == "48 h before the window: first Sunday of the month, 02:00-04:00 UTC"
    assert sandbox_timetable(announce=False).summary == "window: first Sunday of the month, 02:00-04:00 UTC"


def test_without_catchup_a_missed_window_still_open_runs_late_and_a_past_one_does_not():
    timetable = sandbox_timetable(announce=False)
    now = datetime.now(UTC)
    restriction = TimeRestriction(earliest=datetime(2025, 1, 1, tzinfo=UTC), latest=None, catchup=False)
    info = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    # Never a window that has already closed, and never one after the next.
    assert info.data_interval.end > now
    assert info.run_after <= timetable.window.next_start(now)
    notice = sandbox_timetable(announce=True).next_dagrun_info(
        last_automated_data_interval=None, restriction=restriction
    )
    assert notice.data_interval.end > now  # its window is still ahead


def test_manual_runs_open_a_window_now_and_announce_the_next_one():
    now = datetime(2027, 3, 3, 12, 0, tzinfo=UTC)
    window = sandbox_timetable(announce=False).infer_manual_data_interval(run_after=now)
    assert window == DataInterval(now, now + timedelta(hours=2))
    notice = sandbox_timetable(announce=True).infer_manual_data_interval(run_after=now)
    assert notice == DataInterval(now, datetime(2027, 3, 7, 2, 0, tzinfo=UTC))


def test_the_config_refuses_budgets_that_cannot_fit(tmp_path):
    import yaml

    from varai_deploy.config import ENVIRONMENTS_DIR

    raw = yaml.safe_load((ENVIRONMENTS_DIR / "sandbox.yaml").read_text())
    raw["maintenance"]["budgets_minutes"]["security_updates"] = 0.5
    (tmp_path / "sandbox.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="security_updates .0.5 min. is shorter than one update can take"):
        load_environment("sandbox", tmp_path)
    raw["maintenance"]["budgets_minutes"]["security_updates"] = 200
    (tmp_path / "sandbox.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="more than the 120 min window"):
        load_environment("sandbox", tmp_path)
