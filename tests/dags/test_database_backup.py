"""database_backup is scheduled from the environment's RPO, one run at a time, and takes only a known environment."""

from __future__ import annotations

import copy

import pytest
from airflow.sdk.exceptions import ParamValidationError

from tests.support.dag_schedules import schedule_of
from varai_deploy.config import REPO_ROOT


def test_backups_run_every_30_minutes_so_the_1_hour_rpo_holds_one_run_at_a_time():
    assert schedule_of("database_backup", "sandbox") == "DeltaTriggerTimetable 0:30:00 1"


def test_an_airflow_that_schedules_nothing_offers_backups_on_demand():
    assert schedule_of("database_backup", "none") == "NullTimetable None 1"


def test_only_a_known_environment_is_accepted():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "database_backup.py")).dags["database_backup"]
    params = copy.deepcopy(dag.params)
    assert params.validate()["environment"] == "sandbox"
    with pytest.raises(ParamValidationError, match="is not one of"):
        params.update({"environment": "moon; rm -rf /"})
        params.validate()
