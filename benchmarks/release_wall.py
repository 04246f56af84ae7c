"""Sandbox release wall time: through Airflow vs. the same steps in one plain Python process.

    make bench            (or: PYTHONPATH=plugins:. .venv/bin/python benchmarks/release_wall.py)

It starts a scratch sandbox and a scratch Airflow metadata DB (ports 19280+, apart from the
demo's and the tests'), releases v1.0.0 to set the stage, then times:
  * airflow: `airflow dags test ai_discovery_release` of the next version (a colour flip);
  * plain:   the same steps (validate, terraform, candidates + health streak, switch, verify,
             metric analysis, bake + retire, post-deploy) called one after another in this process;
and prints both, their ratio, and the parse time of each DAG file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

SCRATCH = Path(tempfile.mkdtemp(prefix="varai-bench-"))
ENV = {
    "VARAI_AIRFLOW_HOME": str(SCRATCH / "airflow"),
    "VARAI_SANDBOX_HOME": str(SCRATCH / "sandbox"),
    "VARAI_SANDBOX_GATEWAY_PORT": "19280",
    "VARAI_SANDBOX_PORT_BASE": "19300",
    # Backend timings only: no widget stand-ins, no marketplaces (benchmarks/widget_publish.py times those).
    "VARAI_SANDBOX_COMPONENTS": "none",
}
os.environ.update(ENV)
# The plain path runs in this process, so it needs the connections airflow.sh would derive (the gateway's,
# with its check key, once `up` wrote it).
os.environ["AIRFLOW_CONN_VARAI_METRICS"] = '{"conn_type": "http", "host": "127.0.0.1", "port": 19290}'


def plain_release(version: str) -> float:
    """The DAG's steps, in order, with the same library calls its tasks make."""
    from varai_deploy.config import load_environment
    from varai_deploy.gateway_checks import check_search, check_security
    from varai_deploy.hooks.gateway import GatewayHook
    from varai_deploy.hooks.prometheus import PrometheusHook
    from varai_deploy.operators.terraform import release_variables, terraform_for
    from varai_deploy.platforms import get_platform
    from varai_deploy.post_deploy import check_gateway
    from varai_deploy.services import SERVICES
    from varai_deploy.triggers.analysis import ReleaseAnalysisTrigger
    from varai_deploy.triggers.health import HealthStreakTrigger
    from varai_deploy.validation import check_credentials, check_prerequisites, check_request, check_resources

    started = time.monotonic()
    services = check_request(version, "sandbox", list(SERVICES))["services"]
    env = load_environment("sandbox")
    check_prerequisites(env)
    check_credentials(env)
    check_resources(env, services)

    tf = terraform_for(env)
    tf.init()
    plan = tf.plan(release_variables(env, version), tf.work_dir / "plans" / "bench.tfplan")
    if plan.changes:
        tf.apply(plan.plan_file)
    images = tf.outputs()["images"]

    platform, policy = get_platform(env), env.release
    candidates = [platform.deploy_candidate(s, version, images[s]) for s in services]
    for candidate in candidates:
        trigger = HealthStreakTrigger(
            candidate["url"] + "/health",
            policy.health_streak,
            policy.health_interval_seconds,
            time.time() + policy.health_timeout_seconds,
        )
        event = asyncio.run(anext(trigger.run()))
        assert event.payload["status"] == "healthy", event.payload
    switched = [
        (c, platform.switch_traffic(c["service"], c, platform.current_revision(c["service"])), time.monotonic())
        for c in candidates
    ]
    switched_at = time.time()
    gateway = GatewayHook(env.gateway_conn_id)
    for candidate, _, _ in switched:
        for _ in range(policy.gateway_checks):
            assert gateway.probe(SERVICES[candidate["service"]].health_path).version == version
    analysis = ReleaseAnalysisTrigger(
        PrometheusHook(env.metrics_conn_id).url,
        version,
        {c["service"]: c["url"] + "/health" for c in candidates},
        switched_at,
        dataclasses.asdict(env.analysis),
    )
    verdict = asyncio.run(anext(analysis.run())).payload
    assert verdict["verdict"] == "pass", verdict
    for candidate, previous, at in switched:
        time.sleep(max(0.0, at + policy.bake_seconds - time.monotonic()))
        if previous:
            platform.retire(candidate["service"], previous)
    check_gateway(env, version, services)
    check_search(env, version, services)
    check_security(env)
    return time.monotonic() - started


def parse_times() -> dict[str, tuple[float, float]]:
    """Per DAG file: (cold process incl. airflow.sdk import, warm median re-parse) in seconds."""
    code = (
        "import sys, time, runpy, statistics; sys.path[:0] = ['plugins']\n"
        "t = time.perf_counter(); import airflow.sdk; sdk = time.perf_counter() - t\n"
        "path = sys.argv[1]\n"
        "t = time.perf_counter(); runpy.run_path(path); cold = time.perf_counter() - t\n"
        "warm = []\n"
        "for _ in range(10):\n"
        "    t = time.perf_counter(); runpy.run_path(path); warm.append(time.perf_counter() - t)\n"
        "print(sdk + cold, statistics.median(warm))\n"
    )
    result = {}
    for path in sorted((ROOT / "dags").glob("*.py")):
        out = subprocess.run(
            [sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True, check=True
        )
        cold, warm = (float(x) for x in out.stdout.split())
        result[path.name] = (cold, warm)
    return result


def main() -> None:
    from varai_deploy.release_cli import run_release
    from varai_deploy.sandbox import Sandbox

    subprocess.run([str(ROOT / "airflow.sh"), "db", "migrate"], capture_output=True, check=True)
    from varai_deploy.sandbox.components import read_connections_env

    sandbox = Sandbox()
    sandbox.up()
    os.environ["AIRFLOW_CONN_VARAI_GATEWAY"] = read_connections_env(sandbox.settings)["AIRFLOW_CONN_VARAI_GATEWAY"]
    try:
        stage = run_release({"version": "v1.0.0", "marketplaces": []})
        assert stage.succeeded, stage.errors
        airflow_run = run_release({"version": "v1.0.1", "marketplaces": []})
        assert airflow_run.succeeded, airflow_run.errors
        plain = plain_release("v1.0.2")
    finally:
        sandbox.down(purge=True)

    print("sandbox release, 5 services, colour flip (health streaks, analysis window and bake in both)")
    print(f"  through Airflow (dags test): {airflow_run.seconds:7.2f} s")
    print(f"  plain Python, same steps:    {plain:7.2f} s")
    print(f"  ratio airflow / plain:       {airflow_run.seconds / plain:7.2f} x")
    print("DAG parse time per file (cold = new process incl. airflow.sdk import; warm = median re-parse)")
    for name, (cold, warm) in parse_times().items():
        print(f"  {name:32} cold {cold * 1000:7.1f} ms   warm {warm * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
