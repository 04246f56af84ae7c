"""database_backup is scheduled from the environment's RPO, one run at a time, and takes only a known environment."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from airflow.sdk.exceptions import ParamValidationError

from varai_deploy.config import REPO_ROOT


def load(scheduled: str) -> str:
    """The DAG as an Airflow scheduling ``scheduled`` parses it: its timetable, schedule and concurrency."""
    code = (
        "import sys; sys.path[:0] = ['plugins']\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "bag = DagBag('dags/database_backup.py')\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "dag = bag.dags['database_backup']\n"
        "print(type(dag.timetable).__name__, getattr(dag.timetable, 'delta', None), dag.max_active_runs)"
    )
    env = {"VARAI_SCHEDULED_ENVIRONMENT": scheduled, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_backups_run_every_30_minutes_so_the_1_hour_rpo_holds_one_run_at_a_time():
    assert load("sandbox") == "DeltaTriggerTimetable 0:30:00 1"


def test_an_airflow_that_schedules_nothing_offers_backups_on_demand():
    assert load("none") == "NullTimetable None 1"


def test_only_a_known_environment_is_accepted():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "database_backup.py")).dags["database_backup"]
    params = copy.deepcopy(dag.params)
    assert params.validate()["environment"] == "sandbox"
    with pytest.raises(ParamValidationError, match="is not one of"):
        params.update({"environment": "moon; rm -rf /"})
        params.validate()
