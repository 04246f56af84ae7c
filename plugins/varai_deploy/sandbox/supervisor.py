"""The sandbox's supervisor: brings back the instances of a live revision that die.

``python -m varai_deploy.sandbox.supervisor --home H [--interval 0.5]``

Production replaces a crashed instance by itself; so does the sandbox, or a disaster-recovery
drill that kills a live process would measure nothing real. ``up`` starts this process (and again
when it is gone), ``down`` stops it before any service so it cannot restart what ``down`` stops.
Every interval it calls :meth:`Sandbox.heal`, which looks without the state lock and takes it only
when something died; each restart is one line of its log. It rebuilds its settings from the
``settings.json`` that ``up`` wrote, so it sees the same ports and instance count, env vars
included. Candidates are never restarted (see ``heal``). It stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.serving import SignalFlag
from varai_deploy.sandbox.settings import SandboxSettings

DEFAULT_INTERVAL = 0.5


def describe(restart: dict) -> str:
    """One log line per restart: what died (and how), what replaced it."""
    code = restart.get("exit_code")
    return (
        f"supervisor: restarted {restart['service']} {restart['colour']} ({restart.get('version')}) "
        f"instance {restart['instance']}: pid {restart.get('old_pid')} exited with "
        f"{'unknown code' if code is None else f'code {code}'}, new pid {restart['pid']}"
    )


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def run(settings: SandboxSettings, interval: float, stop: SignalFlag) -> None:
    from varai_deploy.sandbox.control import Sandbox

    sandbox = Sandbox(settings)
    seen = _identity(settings.settings_file)
    last_error = None
    while not stop.raised:
        if not settings.home.is_dir():
            print(f"supervisor: {settings.home} is gone; stopping", flush=True)
            return
        if (now := _identity(settings.settings_file)) != seen:
            # A later `up` with other settings (instances, ports): heal by those, not by the old ones.
            seen = now
            try:
                settings = SandboxSettings.from_home(settings.home)
                sandbox = Sandbox(settings)
            except SandboxError as exc:
                print(f"supervisor: keeping the settings it had: {exc}", file=sys.stderr, flush=True)
        try:
            for restart in sandbox.heal():
                print(describe(restart), flush=True)
            last_error = None
        except Exception as exc:  # one bad round (a port taken, a launcher that failed) must not end supervision
            error = f"{type(exc).__name__}: {exc}"
            if error != last_error:  # not the same line twice a second
                print(f"supervisor: could not heal: {error}", file=sys.stderr, flush=True)
            last_error = error
        stop.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m varai_deploy.sandbox.supervisor")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL, help="seconds between two looks")
    args = parser.parse_args(argv)
    if not 0 < args.interval <= 60:
        print(f"supervisor: --interval must be in (0, 60], got {args.interval:g}", file=sys.stderr, flush=True)
        return 2
    try:
        settings = SandboxSettings.from_home(args.home)
    except SandboxError as exc:
        print(f"supervisor: {exc}", file=sys.stderr, flush=True)
        return 2
    stop = SignalFlag()  # the handler only sets a flag: a round in progress (lock held, spawning) finishes
    print(
        f"supervisor: pid {os.getpid()}, restarting dead instances of live revisions under {settings.home} "
        f"every {args.interval:g}s ({settings.instances} per live revision)",
        flush=True,
    )
    run(settings, args.interval, stop)
    print("supervisor: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
