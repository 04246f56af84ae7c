"""The maintenance DAGs' schedules and params contracts."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from airflow.sdk.exceptions import ParamValidationError

from varai_deploy.config import REPO_ROOT

DAGS = ("maintenance_notice", "maintenance_window", "emergency_maintenance")


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bags = {dag_id: DagBag(dag_folder=str(REPO_ROOT / "dags" / f"{dag_id}.py")) for dag_id in DAGS}
    assert all(not bag.import_errors for bag in bags.values()), {d: b.import_errors for d, b in bags.items()}
    return {dag_id: bag.dags[dag_id] for dag_id, bag in bags.items()}


def resolve(dag, **conf):
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


def test_the_notice_and_the_window_are_scheduled_from_the_one_rule_in_the_config(dags):
    from varai_deploy.timetables import MaintenanceTimetable

    notice, window = dags["maintenance_notice"].timetable, dags["maintenance_window"].timetable
    assert isinstance(notice, MaintenanceTimetable) and notice.announce
    assert isinstance(window, MaintenanceTimetable) and not window.announce
    assert notice.serialize() == {**window.serialize(), "announce": True}
    assert window.summary == "window: first Sunday of the month, 02:00-04:00 UTC"
    assert not dags["emergency_maintenance"].timetable.can_be_scheduled  # on demand only
    for dag_id in ("maintenance_notice", "maintenance_window"):
        assert dags[dag_id].max_active_runs == 1


def test_a_manual_window_is_at_most_the_configured_length(dags):
    dag = dags["maintenance_window"]
    assert resolve(dag)["length_minutes"] is None
    assert resolve(dag, length_minutes=30)["length_minutes"] == 30
    for bad in (0, 1441, "2h"):
        with pytest.raises(ParamValidationError):
            resolve(dag, length_minutes=bad)


def test_an_emergency_needs_a_reason_and_takes_only_a_real_cve(dags):
    dag = dags["emergency_maintenance"]
    params = resolve(dag, reason="openssl in the base image: RCE", cve="CVE-2026-12345")
    assert (params["severity"], params["environment"], len(params["services"])) == ("critical", "sandbox", 5)
    for conf in (
        {},
        {"reason": "too short"},
        {"reason": "openssl in the base image", "cve": "CVE-2026-1; rm -rf /"},
        {"reason": "openssl in the base image", "severity": "low"},
        {"reason": "openssl in the base image", "services": ["billing"]},
    ):
        with pytest.raises(ParamValidationError):
            resolve(dag, **conf)


def test_an_unknown_scheduled_environment_is_an_import_error_saying_so():
    code = "import sys; sys.path[:0] = ['plugins']; import runpy; runpy.run_path('dags/maintenance_window.py')"
    env = {"VARAI_SCHEDULED_ENVIRONMENT": "moon", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "unknown environment 'moon'" in out.stderr


def test_an_airflow_that_schedules_nothing_still_offers_the_maintenance_dags_on_demand():
    code = (
        "import sys; sys.path[:0] = ['plugins']\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "bag = DagBag('dags/maintenance_window.py')\n"
        "dag = bag.dags['maintenance_window']\n"
        "print(type(dag.timetable).__name__, dag.params['environment'])"
    )
    env = {"VARAI_SCHEDULED_ENVIRONMENT": "none", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["NullTimetable", "sandbox"]
