"""A release as the UI or CI makes it: through the REST API on `make airflow`'s Airflow.

    PYTHONPATH=plugins:. .venv/bin/python benchmarks/release_scheduler.py   (part of make bench)

It starts a scratch sandbox (every stand-in; ports 19280+, apart from the demo's and the tests')
and `airflow.sh local` on a scratch home and a free port (api-server, scheduler with its
LocalExecutor, triggerer, dag-processor), releases v1.0.0 of the five services and every widget
channel to set the stage, then times v1.0.1 the same way, and prints:
  * the run's wall time (start to end, as Airflow recorded it);
  * the waits a release cannot avoid under the same config: the health streak, the analysis
    window and the bake (everything else is work or overhead);
  * their ratio, and where the rest went: the longest gaps between one task's end and the next
    one's start along the run, and the tasks that took longest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

SCRATCH = Path(tempfile.mkdtemp(prefix="varai-bench-sched-"))
ENV = {
    "VARAI_AIRFLOW_HOME": str(SCRATCH / "airflow"),
    "VARAI_SANDBOX_HOME": str(SCRATCH / "sandbox"),
    "VARAI_SANDBOX_GATEWAY_PORT": "19280",
    "VARAI_SANDBOX_PORT_BASE": "19300",
    # Only the release is timed: no scheduled backup running beside it.
    "VARAI_SCHEDULED_ENVIRONMENT": "none",
}
os.environ.update(ENV)
DAG = "ai_discovery_release"


def start_airflow(port: int) -> tuple[subprocess.Popen, str]:
    from tests.support import local_airflow
    from tests.support.airflow_cluster import admin_password, free_port, login, wait_until_healthy

    env = {
        **os.environ,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    proc = local_airflow.start(env, SCRATCH / "airflow.log")
    base = f"http://127.0.0.1:{port}"
    wait_until_healthy(base, timeout=240, describe=lambda: (SCRATCH / "airflow.log").read_text()[-3000:])
    passwords = Path(ENV["VARAI_AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    return proc, login(base, admin_password(passwords))


def release(api, version: str) -> dict:
    run_id = f"release__{version}__sandbox__{time.strftime('%Y%m%dT%H%M%S')}"
    status, run = api.call(
        "POST",
        f"/api/v2/dags/{DAG}/dagRuns",
        {"dag_run_id": run_id, "logical_date": None, "conf": {"version": version}},
    )
    assert status == 200, run
    state = api.wait_for_run(DAG, run_id, timeout=600)
    assert state == "success", api.describe_run(DAG, run_id)
    return {"run": api.run(DAG, run_id), "tis": api.task_instances(DAG, run_id)}


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def main() -> None:
    from tests.support.airflow_cluster import AirflowApi, free_port
    from varai_deploy.config import load_environment
    from varai_deploy.sandbox import Sandbox

    sandbox = Sandbox()
    sandbox.up()
    port = free_port()
    proc = None
    try:
        proc, token = start_airflow(port)
        api = AirflowApi(f"http://127.0.0.1:{port}", token)
        api.wait_for_dag(DAG, timeout=180)
        release(api, "v1.0.0")
        measured = release(api, "v1.0.1")
    finally:
        if proc is not None:
            from tests.support import local_airflow

            local_airflow.stop(proc)
        sandbox.down(purge=True)

    run, tis = measured["run"], measured["tis"]
    wall = (when(run["end_date"]) - when(run["start_date"])).total_seconds()
    env = load_environment("sandbox")
    policy, analysis = env.release, env.analysis
    waits = policy.health_streak * policy.health_interval_seconds + analysis.duration_seconds + policy.bake_seconds
    done = sorted(
        (
            (when(ti["start_date"]), when(ti["end_date"]), f"{task}[{index}]" if index >= 0 else task)
            for (task, index), ti in tis.items()
            if ti.get("start_date") and ti.get("end_date")
        ),
    )
    gaps = []
    for start, _end, name in done:
        before = [e for s, e, _ in done if e <= start]
        if before:
            gaps.append(((start - max(before)).total_seconds(), name))
    print("sandbox release v1.0.1: 5 services and 4 widget channels, through the REST API on `make airflow`")
    print(f"  wall time (Airflow's start to end):        {wall:7.1f} s")
    print(
        f"  unavoidable waits (health streak {policy.health_streak} x {policy.health_interval_seconds:g} s, "
        f"analysis {analysis.duration_seconds:g} s, bake {policy.bake_seconds:g} s): {waits:5.1f} s"
    )
    print(f"  ratio wall / waits:                         {wall / waits:7.2f}")
    print(
        f"  tasks: {len(done)}; summed gap from the previous task's end to each start: {sum(g for g, _ in gaps):.1f} s"
    )
    print("  longest tasks:")
    for start, end, name in sorted(done, key=lambda d: d[0] - d[1])[:5]:
        print(f"    {(end - start).total_seconds():6.1f} s  {name}")
    print("  timeline (s from the run's start: queued, started, ended; the queue wait is the executor's):")
    t0 = when(run["start_date"])
    for (task, index), ti in sorted(tis.items(), key=lambda item: item[1].get("start_date") or "~"):
        if ti.get("start_date") and ti.get("end_date"):
            queued = (when(ti["queued_when"]) - t0).total_seconds() if ti.get("queued_when") else float("nan")
            started, ended = ((when(ti[k]) - t0).total_seconds() for k in ("start_date", "end_date"))
            label = f"{task}[{ti.get('rendered_map_index') or index}]" if index >= 0 else task
            print(f"    {queued:6.1f} {started:6.1f} {ended:6.1f}  {label}")
    print(f"  Airflow's log: {SCRATCH / 'airflow.log'}")


if __name__ == "__main__":
    main()
