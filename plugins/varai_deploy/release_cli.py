"""Run ``ai_discovery_release`` through the project's real Airflow (``airflow dags test``) and report.

Used by ``make demo``, the integration tests and the benchmark, so all three exercise the same
path an operator does: ``python -m varai_deploy.release_cli --version v1.0.1``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from varai_deploy.config import REPO_ROOT

# "pkg.module.SomeError: message" lines of the tracebacks Airflow logs for failed tasks.
_FAILURE_RE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Timeout)): (.+)$", re.MULTILINE)


@dataclass
class ReleaseRun:
    conf: dict
    returncode: int
    seconds: float
    log: str
    errors: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0


_WIDGET_RE = re.compile(r"VARAI-WIDGET (\S+) (\S+) (\S+)(?: (\S.*?))?\s*$", re.MULTILINE)


def widget_lines(log: str) -> list[str]:
    """The widget summary's rows (channel, destination, outcome, where), once each, as a table."""
    rows = list(dict.fromkeys(m.groups(default="") for m in _WIDGET_RE.finditer(log)))
    return [f"{c:12} {d:12} {o:10} {w}".rstrip() for c, d, o, w in rows]


def failure_lines(log: str) -> list[str]:
    """The operator-facing reasons a run failed, de-duplicated, in order."""
    seen: list[str] = []
    for match in _FAILURE_RE.finditer(log):
        message = match.group(2).strip().rstrip("'\"")
        if message and message not in seen:
            seen.append(message)
    return seen


def dags_test_command(dag_id: str, conf: dict, env: dict[str, str]) -> list[str]:
    """``airflow dags test`` of ``dag_id``, given its own file where the DAG folder has one named after it:
    Airflow then parses that file instead of every DAG before the run (it still syncs the folder once)."""
    cmd = [str(REPO_ROOT / "airflow.sh"), "dags", "test", dag_id, "-c", json.dumps(conf)]
    dag_file = Path(env.get("AIRFLOW__CORE__DAGS_FOLDER") or REPO_ROOT / "dags") / f"{dag_id}.py"
    return [*cmd, "-f", str(dag_file)] if dag_file.is_file() else cmd


def run_release(
    conf: dict,
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    timeout: float = 900,
    dag_id: str = "ai_discovery_release",
) -> ReleaseRun:
    env = {**os.environ, **(env or {})}
    started = time.monotonic()
    proc = subprocess.run(
        dags_test_command(dag_id, conf, env), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(output)
    return ReleaseRun(conf, proc.returncode, time.monotonic() - started, output, failure_lines(output))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True)
    parser.add_argument("--environment", default="sandbox")
    parser.add_argument("--services", nargs="*", help="default: all")
    parser.add_argument(
        "--marketplaces", nargs="*", help="widget channels (default: the environment's; none given: no widget)"
    )
    parser.add_argument("--log", type=Path, help="write the full Airflow output here")
    args = parser.parse_args(argv)
    conf = {"version": args.version, "environment": args.environment}
    if args.services:
        conf["services"] = args.services
    if args.marketplaces is None:  # every channel this environment publishes to (staging: the CDN only)
        from varai_deploy.config import ConfigError, load_environment

        try:
            args.marketplaces = list(load_environment(args.environment).marketplaces)
        except ConfigError as exc:
            print(f"Release {args.version} to {args.environment} refused: {exc}", file=sys.stderr)
            return 2
    conf["marketplaces"] = args.marketplaces
    run = run_release(conf, log_path=args.log)
    widgets = widget_lines(run.log)
    if widgets:
        print(f"Widgets of {args.version}:")
        print("\n".join(f"  {line}" for line in widgets))
    if run.succeeded:
        print(f"Release {args.version} to {args.environment} succeeded in {run.seconds:.1f}s")
        return 0
    print(f"Release {args.version} to {args.environment} FAILED after {run.seconds:.1f}s", file=sys.stderr)
    for line in run.errors or run.log.strip().splitlines()[-15:]:
        print(f"  {line}", file=sys.stderr)
    if args.log:
        print(f"Full Airflow output: {args.log}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
