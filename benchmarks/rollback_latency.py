"""Seconds from fault onset to traffic back on the last good version, per rollback rule.

    PYTHONPATH=plugins:. .venv/bin/python benchmarks/rollback_latency.py

A scratch sandbox (ports 19280+) with real Prometheus and steady synthetic traffic; each rule is
broken by one bad release through Airflow (`dags test`). Everything is read from the load
generator's own log: onset = the first bad answer the bad version gave (an error, a >= 5 s
answer, a failed health check), back = the last request the bad version answered. Printed next
to the rule's configured window; the goal is window + 10 s. Also the failed request counts of a
good release and of each bad one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

SCRATCH = Path(tempfile.mkdtemp(prefix="varai-bench-rollback-"))
os.environ.update(
    {
        "VARAI_AIRFLOW_HOME": str(SCRATCH / "airflow"),
        "VARAI_SANDBOX_HOME": str(SCRATCH / "sandbox"),
        "VARAI_SANDBOX_GATEWAY_PORT": "19280",
        "VARAI_SANDBOX_PORT_BASE": "19300",
        # Backend timings only: no widget stand-ins, no marketplaces.
        "VARAI_SANDBOX_COMPONENTS": "none",
    }
)
for derived in ("AIRFLOW_CONN_VARAI_GATEWAY", "AIRFLOW_CONN_VARAI_METRICS"):
    os.environ.pop(derived, None)

CASES = [
    # rule, version, fault, how a bad answer looks in the traffic log
    ("error_rate", "v1.1.0", {"mode": "errors", "rate": 0.3}, lambda r: r["status"] >= 500),
    ("latency_p95", "v1.2.0", {"mode": "slow", "latency_seconds": 6}, lambda r: r["latency"] >= 5),
    ("health", "v1.3.0", {"mode": "unhealthy", "after_seconds": 4}, lambda r: r["status"] >= 500),
]
SERVICE = "recommendation"


def read_log(path: Path, since: float) -> list[dict]:
    """The load generator's own log: one JSON object per request."""
    records = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [r for r in records if r["ts"] >= since]


def window(env, rule: str) -> float:
    a = env.analysis
    if rule == "error_rate":
        return a.error_rate_for_seconds + a.rate_window_seconds
    if rule == "latency_p95":
        return a.latency_p95_for_seconds + a.rate_window_seconds
    return a.health_failures * a.interval_seconds


def main() -> None:
    from varai_deploy.config import load_environment
    from varai_deploy.release_cli import run_release
    from varai_deploy.sandbox import Sandbox

    env = load_environment("sandbox")
    subprocess.run([str(ROOT / "airflow.sh"), "db", "migrate"], capture_output=True, check=True)
    sandbox = Sandbox()
    sandbox.up()
    rows, failed = [], {}
    try:
        assert run_release({"version": "v1.0.0", "marketplaces": []}).succeeded
        started = time.time()
        good = run_release({"version": "v1.0.1", "marketplaces": []})
        assert good.succeeded, good.errors
        failed["good release v1.0.1"] = sandbox.traffic_report(since=started, until=time.time())["failed"]
        for rule, version, fault, is_bad in CASES:
            fault = dict(fault)
            sandbox.register_fault(version, fault.pop("mode"), services=[SERVICE], **fault)
            started = time.time()
            run = run_release({"version": version, "services": [SERVICE], "marketplaces": []})
            assert not run.succeeded, f"{rule}: the bad release was not rolled back"
            time.sleep(2)  # let the last in-flight answers land in the log
            report = sandbox.traffic_report(since=started, until=time.time())
            served = [r for r in read_log(Path(report["log"]), started) if r["version"] == version]
            bad = [r for r in served if is_bad(r)]
            onset, back = min(r["ts"] for r in bad), max(r["ts"] for r in served)
            rows.append((rule, back - onset, window(env, rule)))
            failed[f"bad release {version} ({rule})"] = report["failed"]
    finally:
        sandbox.down(purge=True)

    print(f"rollback latency, sandbox, {SERVICE}, steady traffic (goal: window + 10 s)")
    for rule, seconds, configured in rows:
        verdict = "ok" if seconds <= configured + 10 else "SLOWER THAN GOAL"
        print(f"  {rule:12} onset -> back on last good: {seconds:6.1f} s   window {configured:5.1f} s   {verdict}")
    print("failed requests (load generator log)")
    for name, count in failed.items():
        print(f"  {name:34} {count}")


if __name__ == "__main__":
    main()
