"""How a DAG is scheduled as an Airflow scheduling one environment parses it (in a fresh process,
since DAG files read ``VARAI_SCHEDULED_ENVIRONMENT`` when they are parsed)."""

from __future__ import annotations

import subprocess
import sys

from varai_deploy.config import REPO_ROOT


def schedule_of(dag_id: str, scheduled: str) -> str:
    """``"<timetable class> <delta or cron expression> <max_active_runs>"`` of ``dags/<dag_id>.py``."""
    code = (
        "import sys; sys.path[:0] = ['plugins']\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag('dags/{dag_id}.py')\n"
        "assert not bag.import_errors, bag.import_errors\n"
        f"dag = bag.dags['{dag_id}']\n"
        "timetable = dag.timetable\n"
        "every = getattr(timetable, 'delta', None) or getattr(timetable, 'expression', None)\n"
        "print(type(timetable).__name__, every, dag.max_active_runs)"
    )
    env = {"VARAI_SCHEDULED_ENVIRONMENT": scheduled, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]
