"""What a drill may break and how its recovery is judged: the config's checks and the report's arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from varai_deploy.config import ConfigError, DrillPolicy, load_environment
from varai_deploy.drills.data_loss import lost_rows
from varai_deploy.drills.report import _outcome, measure
from varai_deploy.drills.report_page import render

TABLES = ("analytics_events", "face_analyses")


def test_the_sandbox_may_lose_its_services_data_and_must_restore_it_from_a_backup():
    env = load_environment("sandbox")
    assert env.dr_drills.scenarios == ("data_loss",)
    assert env.dr_drills.database in env.backups.databases


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scenarios": ("meteor",)}, "scenarios must be some of"),
        ({"tables": ("events; DROP DATABASE x",)}, "plain table names"),
        ({"database": ""}, "needs database"),
        ({"max_error_ratio": 1.5}, "max_error_ratio"),
        ({"limit_minutes": 0}, "must be positive"),
        ({"settle_seconds": 300, "limit_minutes": 5}, "settle_seconds must be at least 0 and shorter"),
    ],
)
def test_a_drill_that_could_break_more_than_it_says_is_refused(fields, message):
    values = {"scenarios": ("data_loss",), "database": "app_db", "tables": TABLES, **fields}
    with pytest.raises(ConfigError, match=message):
        DrillPolicy(**values)


def test_a_data_loss_drill_needs_its_database_backed_up(tmp_path):
    import yaml

    from varai_deploy.config import ENVIRONMENTS_DIR

    config = yaml.safe_load((ENVIRONMENTS_DIR / "sandbox.yaml").read_text())
    config["backups"]["databases"] = ["ledger"]
    (tmp_path / "sandbox.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="restores a backup: add 'app_db' to backups.databases"):
        load_environment("sandbox", tmp_path)


STEPS = {
    "break_data": {"broken_at": "2026-12-06T10:00:00+00:00", "rows": {"analytics_events": 120, "face_analyses": 40}},
    "detect": {"at": "2026-12-06T10:00:00.8+00:00"},
    "recover": {
        "stamp": "20261206T094500000Z",
        "restored_at": "2026-12-06T10:00:05+00:00",
        "rows": {"public.analytics_events": 100, "public.face_analyses": 40},
    },
    "steady_state_after": {"at": "2026-12-06T10:00:42.5+00:00"},
}


def test_the_recovery_is_measured_against_rto_rpo_and_mttr_and_the_lost_rows_counted():
    env = load_environment("sandbox")
    kept = datetime(2026, 12, 6, 9, 44, 59, 500000, tzinfo=UTC)  # the newest write the restore brought back
    result = measure(env, STEPS, kept, earlier=[20.5, 60.0])
    objectives = result["objectives"]
    assert objectives["rto"] == {"measured_seconds": 42.5, "objective_seconds": 14400, "met": True}
    assert objectives["rpo"] == {"measured_seconds": 900.5, "objective_seconds": 3600, "met": True}
    assert objectives["mttr"] == {"measured_seconds": 41.0, "objective_seconds": 1800, "met": True}
    assert result["time_to_detect_seconds"] == 0.8 and result["drills_in_mttr"] == 3
    assert result["timeline"] == {"broken_at": 0.0, "detected_at": 0.8, "restored_at": 5.0, "recovered_at": 42.5}
    assert result["lost_rows"] == {"analytics_events": 20, "face_analyses": 0}
    # Nothing written before the break survived: no recovery point at all.
    assert measure(env, STEPS, None, [])["objectives"]["rpo"]["met"] is False
    assert lost_rows({"rows": {"t": 5}}, {"rows": {}}) == {"t": 5}


def test_the_report_page_shows_the_figures_the_timeline_and_the_trend_and_escapes_what_it_shows():
    env = load_environment("sandbox")
    result = {"environment": "sandbox", "scenario": "data_loss", "run_id": "manual__<b>", "outcome": "recovered"}
    result |= measure(env, STEPS, datetime(2026, 12, 6, 9, 45, tzinfo=UTC), [30.0])
    page = render(result, [{"run_id": "scheduled__1", "recovery_seconds": 30.0, "passed": True}])
    assert "manual__&lt;b&gt;" in page and "<b>" not in page
    assert page.count("<svg") == 2 and "recovered +42.5 s" in page and "detected +0.8 s" in page
    assert "<td>RPO</td><td>900 s</td><td>3600 s</td><td>met</td>" in page
    assert page.count("<rect") == 2  # the earlier drill and this one


def test_a_drill_that_broke_nothing_or_did_not_recover_says_so():
    ti = SimpleNamespace(xcom_pull=lambda task_ids: {"outcome": "restored 20261206T094500000Z again"})
    kind, what = _outcome(ti, {"plan": "success", "lock": "success", "steady_state_before": "failed"})
    assert kind == "dr_drill_not_started" and "steady_state_before" in what
    kind, what = _outcome(ti, {"break_data": "success", "recover": "success", "steady_state_after": "failed"})
    assert kind == "dr_drill_aborted" and "restored 20261206T094500000Z again" in what
    assert _outcome(ti, {"break_data": "success", "steady_state_after": "success"}) == ("", "recovered")
