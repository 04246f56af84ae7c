"""``python -m varai_deploy.sandbox up|down|status|fault``: the sandbox for humans and scripts.

``status --json`` prints exactly one JSON object (scripts and tests parse it); everything else
is for people. Refusals print ``error: ...`` and exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
from typing import Any

from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.services import SERVICES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m varai_deploy.sandbox",
        description="The local stand-in for production: five services in blue/green slots behind a gateway.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the gateway and bring back every recorded service process")
    down = sub.add_parser("down", help="stop every sandbox process")
    down.add_argument("--purge", action="store_true", help="also delete the sandbox home (deployments, logs)")
    status = sub.add_parser("status", help="what runs where, and what the gateway serves")
    status.add_argument("--json", action="store_true", help="print one JSON object only")
    fault = sub.add_parser("fault", help="register, clear or list misbehaviour for a version")
    action = fault.add_mutually_exclusive_group()
    action.add_argument("--clear", action="store_true", help="remove faults (of --version, or all)")
    action.add_argument("--list", action="store_true", help="print registered faults as JSON")
    fault.add_argument("--version", help="the release tag the fault belongs to, e.g. v1.4.2")
    fault.add_argument("--mode", choices=("crash", "unhealthy", "errors", "slow"))
    fault.add_argument(
        "--service",
        action="append",
        dest="services",
        metavar="SERVICE",
        help="limit to this service (repeatable; default: all services)",
    )
    fault.add_argument("--rate", type=float, help="for --mode errors: fraction of answers that are 500")
    fault.add_argument("--latency", type=float, help="for --mode slow: seconds added to every answer")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from varai_deploy.sandbox.control import Sandbox

        sandbox = Sandbox()
        if args.command == "up":
            sandbox.up()
            print_status(sandbox)
        elif args.command == "down":
            sandbox.down(purge=args.purge)
            print("sandbox stopped" + (" and its home removed" if args.purge else ""))
        elif args.command == "status":
            if args.json:
                print(json.dumps(sandbox.status(), indent=2))
            else:
                print_status(sandbox)
        elif args.command == "fault":
            return run_fault(sandbox, args)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def run_fault(sandbox: Any, args: argparse.Namespace) -> int:
    if args.list:
        print(json.dumps(sandbox.faults(), indent=2))
    elif args.clear:
        removed = sandbox.clear_faults(args.version)
        print(f"cleared {removed} fault(s)" + (f" of {args.version}" if args.version else ""))
    else:
        if not args.version or not args.mode:
            raise SandboxError("fault needs --version and --mode (or --clear / --list)")
        fault = sandbox.register_fault(
            args.version, args.mode, args.services, rate=args.rate, latency_seconds=args.latency
        )
        where = ", ".join(fault["services"]) if fault["services"] else "all services"
        print(
            f"registered fault {args.mode} for {args.version} ({where}); it applies when that version starts"
        )
    return 0


def print_status(sandbox: Any) -> None:
    status = sandbox.status()
    up = sandbox.is_up()
    gateway = status["endpoints"]["gateway"]
    print(f"gateway {gateway}: {'up' if up else 'DOWN'}   home: {sandbox.settings.home}")
    rows = [("SERVICE", "LIVE", "IDLE", "GATEWAY SERVES (health path)")]
    for name, entry in status["services"].items():
        rows.append(
            (
                name,
                _slot_text(entry["live"]),
                _slot_text(entry["idle"], idle=True),
                _served(sandbox, SERVICES[name].health_path) if up else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)))


def _slot_text(slot: dict[str, Any] | None, idle: bool = False) -> str:
    if not slot:
        return "-"
    text = f"{slot['colour']} {slot['version']}"
    if idle and slot.get("state") != "running":
        return f"{text} ({slot.get('state')})"
    return text if slot.get("running") else f"{text} (NOT RUNNING)"


def _served(sandbox: Any, path: str) -> str:
    """Ask the gateway itself: the X-Served-* headers name the process that really answered."""
    s = sandbox.settings
    conn = http.client.HTTPConnection(s.host, s.gateway_port, timeout=2)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        version, colour = resp.getheader("X-Served-Version", "?"), resp.getheader("X-Served-Colour", "?")
        return f"{resp.status} {version} {colour}"
    except (OSError, http.client.HTTPException) as exc:
        return f"unreachable ({exc})"
    finally:
        conn.close()
