"""The project's executor (plugins/varai_deploy/executor.py) against the race it exists for, through
a real scheduler, LocalExecutor workers and triggerer on a scratch metadata DB, with one small DAG.

The same run on Airflow's own LocalExecutor is failed as "killed externally" while it runs: the day
Airflow fixes apache/airflow#72716 that half fails, and the project's executor can go.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.airflow_cluster import PROJECT_EXECUTOR, AirflowCluster, free_port
from varai_deploy.config import REPO_ROOT

pytestmark = pytest.mark.integration

DAG = "resumed_deferral"
DAGS = Path(__file__).parent / "dags"


@pytest.fixture(scope="module")
def scratch_airflow(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("executor-airflow")
    env = {**os.environ, "VARAI_AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS)}
    migrate = subprocess.run([str(REPO_ROOT / "airflow.sh"), "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    return env


def run_once(env: dict[str, str], executor: str, log_dir: Path) -> tuple[str, list[dict], str]:
    """The DAG once on a cluster running ``executor``: the run's state, its task's tries, the scheduler's log."""
    cluster = AirflowCluster(env, api_port=free_port(exclude={19880}), log_dir=log_dir, executor=executor)
    cluster.start()
    try:
        cluster.wait_for_dag(DAG)
        status, run = cluster.trigger(DAG, {})
        assert status == 200, run
        state = cluster.wait_for_run(DAG, run["dag_run_id"], timeout=120)
        return state, cluster.task_tries(DAG, run["dag_run_id"], "defer"), cluster.log_file("scheduler").read_text()
    finally:
        cluster.stop()


def test_airflows_local_executor_fails_a_task_resumed_before_its_deferral_was_reported(scratch_airflow, tmp_path):
    state, tries, scheduler = run_once(scratch_airflow, "LocalExecutor", tmp_path)
    assert state == "failed", tries
    assert "finished with state success, but the task instance's state attribute is" in scheduler


def test_the_project_executor_lets_it_finish_and_says_what_it_dropped(scratch_airflow, tmp_path):
    state, tries, scheduler = run_once(scratch_airflow, PROJECT_EXECUTOR, tmp_path)
    assert state == "success", tries
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "success")]
    assert "it ended an earlier dispatch" in scheduler
    assert "task instance's state attribute is" not in scheduler
