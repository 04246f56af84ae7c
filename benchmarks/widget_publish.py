"""Widget publication per marketplace against the sandbox's real servers, without Airflow.

    make bench            (or: PYTHONPATH=plugins:. .venv/bin/python benchmarks/widget_publish.py)

Starts a scratch sandbox (ports 19260-19330, apart from the demo's and the tests') with every
widget stand-in, builds one release and, per channel, times: the first publication, the same
publication again (the idempotent no-op a retried or re-run release pays), and the consumer-side
verification (npm pack, svn export, composer require, API reads). Prints one row per channel.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

SCRATCH = Path(tempfile.mkdtemp(prefix="varai-bench-widgets-"))
os.environ.update(
    {
        "VARAI_SANDBOX_HOME": str(SCRATCH / "sandbox"),
        "VARAI_SANDBOX_GATEWAY_PORT": "19280",
        "VARAI_SANDBOX_PORT_BASE": "19300",
        "VARAI_SANDBOX_TRAFFIC_RPS": "0",
        # The hooks log every command they run; only the figures matter here.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
)
VERSION = "v1.0.0"


def timed(step) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def main() -> None:
    from varai_deploy.config import load_environment
    from varai_deploy.sandbox import Sandbox
    from varai_deploy.sandbox.components import read_connections_env
    from varai_deploy.widgets import build_release
    from varai_deploy.widgets.channels import CHANNELS, ROLES, module
    from varai_deploy.widgets.publishing import ChannelContext

    sandbox = Sandbox()
    up = timed(sandbox.up)
    try:
        os.environ.update(read_connections_env(sandbox.settings))
        env = load_environment("sandbox")
        build_dir = SCRATCH / "build"
        build = timed(lambda: build_release(VERSION, build_dir))
        manifest = build_release(VERSION, build_dir)
        rows = []
        for channel in CHANNELS:
            scratch = SCRATCH / f"scratch-{channel}"
            scratch.mkdir()
            connections = {role: env.connections[role] for role in ROLES[channel]}
            ctx = ChannelContext(VERSION, manifest, build_dir, connections, scratch)
            channel_module = module(channel)
            first = timed(lambda m=channel_module, c=ctx: m.publish(c))
            again = timed(lambda m=channel_module, c=ctx: m.publish(c))
            verify = timed(lambda m=channel_module, c=ctx: m.verify(c))
            rows.append((channel, first, again, verify))
    finally:
        sandbox.down(purge=True)

    print(f"widget stand-ins up: {up:.2f} s   build of {VERSION} (4 channels + manifest): {build * 1000:.0f} ms")
    print(f"  {'channel':12} {'publish':>9} {'again':>9} {'verify':>9}")
    for channel, first, again, verify in rows:
        print(f"  {channel:12} {first:8.2f}s {again:8.2f}s {verify:8.2f}s")


if __name__ == "__main__":
    main()
