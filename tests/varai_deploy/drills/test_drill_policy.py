"""What a drill may break and how its recovery is judged: the config's checks and the report's arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from varai_deploy.config import DRILL_SCENARIOS, ConfigError, DrillPolicy, load_environment
from varai_deploy.drills.data_loss import DataLoss, lost_rows
from varai_deploy.drills.region_failure import RegionFailure
from varai_deploy.drills.report import _outcome, measure
from varai_deploy.drills.report_page import render
from varai_deploy.drills.scenarios import scenario
from varai_deploy.drills.service_failure import ServiceFailure

TABLES = ("analytics_events", "face_analyses")


def test_the_sandbox_may_lose_its_services_data_and_must_restore_it_from_a_backup():
    env = load_environment("sandbox")
    assert env.dr_drills.scenarios == ("data_loss", "service_failure", "region_failure", "complete_outage")
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


def test_a_drill_of_production_is_approved_by_named_people(tmp_path):
    import yaml

    from varai_deploy.config import ENVIRONMENTS_DIR

    config = yaml.safe_load((ENVIRONMENTS_DIR / "sandbox.yaml").read_text())
    config["name"] = "production"
    config["terraform"] |= {"backend": "gcs", "state_bucket": "varai-terraform-state"}
    config |= {"requires_approval": True, "approval": {"approvers": ["alice"]}}
    (tmp_path / "production.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="set dr_drills.requires_approval: true"):
        load_environment("production", tmp_path)
    values = {"scenarios": ("data_loss",), "database": "app_db", "tables": TABLES, "requires_approval": True}
    with pytest.raises(ConfigError, match="approvers must name the Airflow users"):
        DrillPolicy(**values)
    with pytest.raises(ConfigError, match="approvers must name the Airflow users"):
        DrillPolicy(**values, approvers=("sre; rm -rf /",))
    assert DrillPolicy(**values, approvers=("sre",)).approvers == ("sre",)
    assert load_environment("sandbox").dr_drills.requires_approval is False


def test_a_data_loss_drill_needs_its_database_backed_up(tmp_path):
    import yaml

    from varai_deploy.config import ENVIRONMENTS_DIR

    config = yaml.safe_load((ENVIRONMENTS_DIR / "sandbox.yaml").read_text())
    config["backups"]["databases"] = ["ledger"]
    (tmp_path / "sandbox.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="restores a backup: add 'app_db' to backups.databases"):
        load_environment("sandbox", tmp_path)


STEPS = {
    "inject_failure": {
        "broken_at": "2026-12-06T10:00:00+00:00",
        "rows": {"analytics_events": 120, "face_analyses": 40},
    },
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
    assert DataLoss().findings(STEPS) == {
        "lost_rows": {"analytics_events": 20, "face_analyses": 0},
        "restored_backup": "20261206T094500000Z",
    }
    # Nothing written before the break survived: no recovery point at all.
    assert measure(env, STEPS, None, [])["objectives"]["rpo"]["met"] is False
    assert lost_rows({"rows": {"t": 5}}, {"rows": {}}) == {"t": 5}


def test_the_report_page_shows_the_figures_the_timeline_and_the_trend_and_escapes_what_it_shows():
    env = load_environment("sandbox")
    result = {"environment": "sandbox", "scenario": "data_loss", "run_id": "manual__<b>", "outcome": "recovered"}
    result |= measure(env, STEPS, datetime(2026, 12, 6, 9, 45, tzinfo=UTC), [30.0]) | DataLoss().findings(STEPS)
    page = render(result, [{"run_id": "scheduled__1", "recovery_seconds": 30.0, "passed": True}])
    assert "manual__&lt;b&gt;" in page and "<b>" not in page
    assert page.count("<svg") == 2 and "recovered +42.5 s" in page and "detected +0.8 s" in page
    assert "<td>RPO</td><td>900 s</td><td>3600 s</td><td>met</td>" in page
    assert page.count("<rect") == 2  # the earlier drill and this one
    assert "<li>analytics_events: 20</li>" in page


def test_a_service_failure_report_names_the_process_killed_and_its_replacement():
    steps = {
        "inject_failure": {
            "broken_at": "2026-12-06T10:00:00+00:00",
            "service": "recommendation",
            "colour": "blue",
            "version": "v1.4.2",
            "instance": 0,
            "pid": 4242,
            "instances_before": 2,
        },
        "detect": {"at": "2026-12-06T10:00:00.4+00:00"},
        "recover": {"restored_at": "2026-12-06T10:00:01.5+00:00", "exit_code": -9},
        "steady_state_after": {"at": "2026-12-06T10:00:00.6+00:00"},
    }
    result = {"environment": "sandbox", "scenario": "service_failure", "run_id": "manual__1", "outcome": "recovered"}
    result |= measure(load_environment("sandbox"), steps, datetime(2026, 12, 6, 10, tzinfo=UTC), [])
    result |= ServiceFailure().findings(steps)
    # Users had the steady state back (failover) before the dead instance was replaced.
    assert result["recovery_seconds"] == 0.6 and result["timeline"]["restored_at"] == 1.5
    assert result["killed"]["pid"] == 4242 and result["instances_before"] == 2 and result["exit_code"] == -9
    page = render(result, [])
    assert "recommendation v1.4.2 (blue), instance 0, pid 4242, with 2 instance(s) serving" in page
    assert "exit code -9" in page and "Rows lost" not in page


def test_a_region_failure_report_names_the_regions_failed_over_from_and_to():
    steps = {
        "inject_failure": {
            "broken_at": "2026-12-06T10:00:00+00:00",
            "region": "us-central1",
            "standby": "us-east1",
            "killed": 10,
        },
        "detect": {"at": "2026-12-06T10:00:00.3+00:00"},
        "recover": {
            "restored_at": "2026-12-06T10:00:00.9+00:00",
            "failed_over_to": "us-east1",
            "failed_over_from": "us-central1",
        },
        "steady_state_after": {"at": "2026-12-06T10:00:01.2+00:00"},
    }
    result = {"environment": "sandbox", "scenario": "region_failure", "run_id": "manual__1", "outcome": "recovered"}
    result |= measure(load_environment("sandbox"), steps, datetime(2026, 12, 6, 10, tzinfo=UTC), [])
    result |= RegionFailure().findings(steps)
    assert result["failed_over"] == {"from": "us-central1", "to": "us-east1", "killed": 10}
    assert result["recovery_seconds"] == 1.2 and result["timeline"]["restored_at"] == 0.9
    page = render(result, [])
    assert "us-central1 lost (10 process(es) killed); the front end failed over to us-east1" in page


def test_every_scenario_the_config_allows_has_its_steps_and_an_unknown_one_is_refused():
    assert [scenario(name).name for name in DRILL_SCENARIOS] == list(DRILL_SCENARIOS)
    assert scenario("data_loss").needs_backup and scenario("complete_outage").needs_backup
    assert not scenario("service_failure").needs_backup and not scenario("region_failure").needs_backup
    with pytest.raises(ValueError, match="unknown drill scenario 'meteor'"):
        scenario("meteor")


def test_a_service_failure_drill_must_name_a_known_service():
    values = {"scenarios": ("service_failure",), "database": "app_db", "tables": TABLES}
    with pytest.raises(ConfigError, match="dr_drills.service .* must be one of"):
        DrillPolicy(**values)
    with pytest.raises(ConfigError, match="must be one of"):
        DrillPolicy(**values, service="recommendations; kill -9 1")
    assert DrillPolicy(**values, service="recommendation").service == "recommendation"


def test_a_drill_that_broke_nothing_or_did_not_recover_says_so():
    ti = SimpleNamespace(xcom_pull=lambda task_ids: {"outcome": "restored 20261206T094500000Z again"})
    kind, what = _outcome(ti, {"plan": "success", "lock": "success", "steady_state_before": "failed"})
    assert kind == "dr_drill_not_started" and "steady_state_before" in what
    kind, what = _outcome(ti, {"inject_failure": "success", "recover": "success", "steady_state_after": "failed"})
    assert kind == "dr_drill_aborted" and "restored 20261206T094500000Z again" in what
    assert _outcome(ti, {"inject_failure": "success", "steady_state_after": "success"}) == ("", "recovered")
