"""Every DAG file imports cleanly, fast, without network, and follows the project's conventions."""

import socket
import subprocess
import sys

import pytest

from varai_deploy.config import REPO_ROOT

DAGS_DIR = REPO_ROOT / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    def no_network(*args, **kwargs):
        raise AssertionError("a DAG file opened a network connection at parse time")

    original = socket.socket.connect
    socket.socket.connect = no_network
    try:
        return DagBag(dag_folder=str(DAGS_DIR))
    finally:
        socket.socket.connect = original


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_the_release_dag_is_there(dagbag):
    assert "ai_discovery_release" in dagbag.dag_ids


def test_every_dag_has_tags_owner_and_retries(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), f"{dag_id}.{task.task_id} has no owner"
            assert task.retries is not None, f"{dag_id}.{task.task_id}"


def test_dag_files_do_not_import_heavy_clients_at_top_level():
    code = (
        "HEAVY = {'googleapiclient', 'slack_sdk', 'requests', 'aiohttp', 'pandas'}\n"
        "import sys, runpy; sys.path[:0] = ['plugins']\n"
        f"for f in {sorted(str(p) for p in DAGS_DIR.glob('*.py'))!r}: runpy.run_path(f)\n"
        "heavy = sorted({m.split('.')[0] if not m.startswith('google') else m for m in sys.modules\n"
        "                if m.split('.')[0] in HEAVY or m.startswith('google.cloud.')})\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"DAG parsing imported {out.stdout.strip()[:500]}"
