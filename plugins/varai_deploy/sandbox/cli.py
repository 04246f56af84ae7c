"""``python -m varai_deploy.sandbox up|down|status|fault|traffic|notifications|statuspage``: the sandbox for
humans and scripts.

``status --json`` and ``traffic report --json`` print exactly one JSON object, ``notifications
--json`` and ``statuspage --json`` one JSON array (scripts and tests parse them); everything else is for
people. Refusals print ``error: ...`` and exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import re
import sys
import time
from typing import Any

from varai_deploy.sandbox.errors import SandboxError
from varai_deploy.sandbox.faults import MODES
from varai_deploy.sandbox.notifications import CHANNELS
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
    fault.add_argument("--mode", choices=tuple(MODES))
    fault.add_argument(
        "--service",
        action="append",
        dest="services",
        metavar="SERVICE",
        help="limit to this service (repeatable; default: all services)",
    )
    fault.add_argument("--rate", type=float, help="for --mode errors: fraction of answers that are 500")
    fault.add_argument(
        "--latency",
        type=seconds,
        help="for --mode slow: time added to every answer; slow_switch: how late a switch answers (e.g. 6s)",
    )
    fault.add_argument(
        "--after",
        type=seconds,
        help="for --mode unhealthy or flap: healthy for this long after start, then 503 or flapping (e.g. 5s)",
    )
    fault.add_argument(
        "--period",
        type=seconds,
        help="for --mode flap: health is 200 for this long after start, then 503 as long, and so on (e.g. 1s)",
    )
    fault.add_argument(
        "--now",
        action="store_true",
        help="also apply it to that version's running processes now (its --after / --period count from now)",
    )
    traffic = sub.add_parser("traffic", help="the synthetic load generator and what it saw")
    traffic_sub = traffic.add_subparsers(dest="traffic_command", required=True)
    start = traffic_sub.add_parser("start", help="start (or re-rate) the load generator")
    start.add_argument("--rps", type=float, help="requests per second (default: the settings' rate)")
    traffic_sub.add_parser("stop", help="stop it; `up` leaves it stopped until `traffic start` or down/up")
    report = traffic_sub.add_parser("report", help="count requests and failures (status 0 or >= 500)")
    report.add_argument("--since", type=timestamp, help="epoch seconds, or how long ago (90s, 5m, 2h); default: all")
    report.add_argument("--until", type=timestamp, help="epoch seconds, or how long ago; default: now")
    report.add_argument("--json", action="store_true", help="print one JSON object only")
    notes = sub.add_parser("notifications", help="what the Slack and email stand-ins received; their faults")
    notes.add_argument("--channel", choices=CHANNELS, help="only this channel (default: both)")
    notes.add_argument("--since", type=timestamp, help="epoch seconds, or how long ago (90s, 10m, 2h); default: all")
    notes.add_argument("--json", action="store_true", help="print one JSON array of the records only")
    notes_sub = notes.add_subparsers(dest="notifications_command")
    fail = notes_sub.add_parser("fail", help="make the next valid notifications of a channel fail")
    fail.add_argument("--channel", choices=CHANNELS, required=True, dest="fault_channel")
    fail.add_argument("--status", type=int, default=500, help="the HTTP status they get (400-599, default 500)")
    fail.add_argument("--count", type=int, help="how many (default: every one until clear-faults)")
    clear = notes_sub.add_parser("clear-faults", help="deliver notifications normally again")
    clear.add_argument("--channel", choices=CHANNELS, dest="fault_channel", help="only this channel (default: both)")
    page = sub.add_parser("statuspage", help="the incidents and maintenances on the status page stand-in; its fault")
    page.add_argument(
        "--json", action="store_true", help="print one JSON array of the incidents only (newest first, as the API)"
    )
    page_sub = page.add_subparsers(dest="statuspage_command")
    page_fail = page_sub.add_parser("fail", help="make the next valid API requests fail")
    page_fail.add_argument("--status", type=int, default=500, help="the HTTP status they get (400-599, default 500)")
    page_fail.add_argument("--count", type=int, help="how many (default: every one until clear-faults)")
    page_sub.add_parser("clear-faults", help="answer API requests normally again")
    region = sub.add_parser("region", help="the regions the services run in: which one serves; lose or restore one")
    region_sub = region.add_subparsers(dest="region_command")
    for name, text in (
        ("down", "kill every service process of the region and keep them down (a region failure)"),
        ("up", "start the region's processes again; it stands by until a fail-over"),
        ("fail-over", "point the gateway at the region (refused while it is down)"),
    ):
        region_sub.add_parser(name, help=text).add_argument("region")
    keys = sub.add_parser("api-key", help="merchants' widget API keys on the gateway (the sandbox's or staging's)")
    keys.add_argument("--environment", choices=("sandbox", "staging"), default="sandbox")
    keys_sub = keys.add_subparsers(dest="key_command", required=True)
    issue = keys_sub.add_parser("issue", help="a new key for a merchant (replacing its old one), printed once")
    issue.add_argument("merchant")
    issue.add_argument("--requests", type=int, help="its own rate limit: requests per --per-seconds")
    issue.add_argument("--per-seconds", type=float)
    keys_sub.add_parser("revoke", help="refuse a merchant's key from the next request on").add_argument("merchant")
    keys_sub.add_parser("list", help="who holds a key, revoked or not, and their plan (never the keys)")
    return parser


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def seconds(text: str) -> float:
    """A duration: ``6``, ``6s``, ``1.5s``, ``500ms``, ``2m``."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 5, 5s, 500ms or 2m)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def timestamp(text: str) -> float:
    """Epoch seconds as is; a duration with a unit (``90s``, ``5m``) means that long ago."""
    try:
        return float(text)
    except ValueError:
        pass
    if not re.search(r"[a-z]\s*$", text):
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (epoch seconds, or e.g. 90s / 5m ago)")
    return time.time() - seconds(text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from varai_deploy.sandbox.control import Sandbox
        from varai_deploy.sandbox.settings import SandboxSettings

        # `up` and `down` by the config and environment now; the rest act on the sandbox as it was started.
        sandbox = Sandbox(SandboxSettings.load() if args.command in ("up", "down") else SandboxSettings.current())
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
        elif args.command == "traffic":
            return run_traffic(sandbox, args)
        elif args.command == "notifications":
            return run_notifications(sandbox, args)
        elif args.command == "statuspage":
            return run_statuspage(sandbox, args)
        elif args.command == "region":
            return run_region(sandbox, args)
        elif args.command == "api-key":
            return run_api_key(sandbox, args)
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
            args.version,
            args.mode,
            args.services,
            rate=args.rate,
            latency_seconds=args.latency,
            after_seconds=args.after,
            period_seconds=args.period,
        )
        where = ", ".join(fault["services"]) if fault["services"] else "all services"
        print(f"registered fault {args.mode} for {args.version} ({where}); it applies when that version starts")
        if args.now:
            told = sandbox.apply_faults(args.version)
            print(f"applied now to: {', '.join(told)}" if told else f"no process of {args.version} is running")
    return 0


def run_api_key(sandbox: Any, args: argparse.Namespace) -> int:
    from varai_deploy.sandbox import api_keys, gateway, staging

    home = sandbox.settings.home
    keys_file = (gateway.gateway_dir(home) if args.environment == "sandbox" else staging.gateway_dir(home)) / (
        api_keys.KEYS_FILE
    )
    try:
        if args.key_command == "issue":
            key = api_keys.issue(keys_file, args.merchant, args.requests, args.per_seconds)
            print(f"{args.merchant}: {key}")
            print("Give it to the merchant now: the gateway keeps only its hash.", file=sys.stderr)
        elif args.key_command == "revoke":
            api_keys.revoke(keys_file, args.merchant)
            print(f"{args.merchant}: revoked; the gateway refuses it from the next request on")
        else:
            print(json.dumps(api_keys.merchants(keys_file), indent=2))
    except (ValueError, KeyError) as exc:
        raise SandboxError(str(exc).strip("'\"")) from exc
    return 0


def run_region(sandbox: Any, args: argparse.Namespace) -> int:
    if args.region_command == "down":
        lost = sandbox.region_down(args.region)
        print(f"region {args.region}: down, {len(lost['killed'])} process(es) killed")
    elif args.region_command == "up":
        back = sandbox.region_up(args.region)
        print(f"region {args.region}: up, {len(back['started'])} process(es) started; it stands by")
    elif args.region_command == "fail-over":
        moved = sandbox.fail_over(args.region)
        print(f"the gateway now serves from {moved['active']} (was {moved['previous']})")
    regions = sandbox.regions()
    down = f", down: {', '.join(regions['down'])}" if regions["down"] else ""
    print(f"regions: {', '.join(regions['names'])}; serving from {regions['active']}{down}")
    return 0


def run_traffic(sandbox: Any, args: argparse.Namespace) -> int:
    if args.traffic_command == "start":
        state = sandbox.start_traffic(args.rps)
        print(f"traffic: {state['rps']:g} req/s through {sandbox.settings.gateway_url}")
    elif args.traffic_command == "stop":
        sandbox.stop_traffic()
        print("traffic: stopped")
    else:
        report = sandbox.traffic_report(since=args.since, until=args.until)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print_report(report)
    return 0


def run_notifications(sandbox: Any, args: argparse.Namespace) -> int:
    if args.notifications_command == "fail":
        fault = sandbox.fail_notifications(args.fault_channel, args.status, args.count)["fault"]
        which = "every valid notification" if fault["remaining"] is None else f"the next {fault['remaining']}"
        until = " until `notifications clear-faults`" if fault["remaining"] is None else ""
        print(f"{args.fault_channel}: {which} gets {fault['status']}{until}")
    elif args.notifications_command == "clear-faults":
        cleared = sandbox.clear_notification_faults(args.fault_channel)
        print("cleared the fault of " + ", ".join(cleared) if cleared else "no notification fault was set")
    else:
        since = dt.datetime.fromtimestamp(args.since, dt.UTC) if args.since is not None else None
        records = sandbox.notifications(args.channel, since)
        if args.json:
            print(json.dumps(records, indent=2))
        else:
            for record in records:
                print(_notification_line(record))
    return 0


def run_statuspage(sandbox: Any, args: argparse.Namespace) -> int:
    from varai_deploy.sandbox import statuspage

    if args.statuspage_command == "fail":
        fault = statuspage.fail(sandbox.settings, args.status, args.count)["fault"]
        which = "every valid API request" if fault["remaining"] is None else f"the next {fault['remaining']}"
        until = " until `statuspage clear-faults`" if fault["remaining"] is None else ""
        print(f"statuspage: {which} gets {fault['status']}{until}")
    elif args.statuspage_command == "clear-faults":
        had = statuspage.clear_fault(sandbox.settings)
        print("statuspage: fault cleared" if had else "statuspage: no fault was set")
    elif args.json:
        print(json.dumps(statuspage.incidents(sandbox.settings), indent=2))
    else:
        found = statuspage.incidents(sandbox.settings)
        if not found:
            print("no incidents or maintenances on the status page")
        for incident in found:
            for line in _incident_lines(incident, statuspage.history(incident)):
                print(line)
    return 0


def _incident_lines(incident: dict[str, Any], history: list[tuple[str, str, str]]) -> list[str]:
    """A header (id, kind, status, impact, name; the window of a maintenance), then each update, oldest first."""
    kind = "maintenance" if incident.get("scheduled_for") else "incident"
    lines = [f"{incident['id']}  {kind:<11}  {incident['status']:<13}  {incident.get('impact')}  {incident['name']}"]
    if incident.get("scheduled_for"):
        lines.append(f"    window {incident['scheduled_for']} .. {incident['scheduled_until']}")
    for created_at, status, body in history:
        first = (body.strip().splitlines() or [""])[0]
        if len(first) > 100:
            first = first[:99] + "…"
        lines.append(f"    {created_at}  {status:<13}  {first}")
    return lines


def _notification_line(record: dict[str, Any]) -> str:
    """time, channel, status, severity ('-' when the message does not say), first line of the text."""
    when = dt.datetime.fromisoformat(record["received_at"]).strftime("%Y-%m-%d %H:%M:%S")
    body = record.get("body")
    text, severity = body, None
    if isinstance(body, dict):
        severity = body.get("severity")
        metadata = body.get("metadata")
        if severity is None and isinstance(metadata, dict) and isinstance(metadata.get("event_payload"), dict):
            severity = metadata["event_payload"].get("severity")
        text = body.get("text") or _first_block_text(body.get("blocks"))
    first = (str(text).strip().splitlines() or [""])[0] if text is not None else ""
    if len(first) > 100:
        first = first[:99] + "…"
    severity = severity if isinstance(severity, str) and severity else "-"
    return f"{when}Z  {record['channel']:<5}  {record['status']}  {severity:<8}  {first}"


def _first_block_text(blocks: Any) -> str:
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, dict) and isinstance(block.get("text"), dict):
            return str(block["text"].get("text") or "")
    return ""


def print_report(report: dict[str, Any]) -> None:
    def when(ts: float | None) -> str:
        return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f" ({ts:.3f})"

    print(f"log: {report['log']}")
    print(f"requests: {report['total']}  failed: {report['failed']}  error rate: {report['error_rate']:.2%}")
    print(f"from {when(report['first_ts'])} to {when(report['last_ts'])}")
    print("by status: " + (", ".join(f"{code}: {n}" for code, n in report["by_status"].items()) or "-"))
    for title, key in (("version", "by_version"), ("service", "by_service")):
        for name, counts in report[key].items():
            print(f"  {title} {name}: {counts['total']} requests, {counts['failed']} failed")
    if report["failed"]:
        print(f"first failure {when(report['first_failure_ts'])}, last {when(report['last_failure_ts'])}")
        for record in report["failures"][:10]:
            print(
                f"  {record['ts']:.3f} {record.get('method', '')} {record['path']} -> {record['status']} "
                f"{record.get('version') or '-'}: {record.get('error') or ''}"
            )
        more = len(report["failures"]) - 10
        if more > 0 or report["failures_truncated"]:
            print("  ... (all of them: `traffic report --json`)")


def print_status(sandbox: Any) -> None:
    status = sandbox.status()
    up = sandbox.is_up()
    gateway = status["endpoints"]["gateway"]
    print(f"gateway {gateway}: {'up' if up else 'DOWN'}   home: {sandbox.settings.home}")
    traffic = status["traffic"]
    load = f"{traffic['rps']:g} req/s" if traffic["running"] else "not running"
    supervisor = "running" if status["supervisor"]["running"] else "NOT RUNNING"
    print(f"prometheus {status['endpoints']['prometheus']}   traffic: {load}   supervisor: {supervisor}")
    regions = status["regions"]
    if len(regions["names"]) > 1 or regions["down"]:
        down = f"   DOWN: {', '.join(regions['down'])}" if regions["down"] else ""
        print(f"regions: {', '.join(regions['names'])}   serving from {regions['active']}{down}")
    stand_ins = {k: v for k, v in status["endpoints"].items() if k not in ("gateway", "prometheus")}
    if stand_ins:
        print("stand-ins: " + "  ".join(f"{name} {url}" for name, url in stand_ins.items()))
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
    if not slot.get("running"):
        return f"{text} (NOT RUNNING)"
    instances = slot.get("instances") or []
    running = sum(1 for i in instances if i.get("running"))
    # Only when one is missing: a dead instance the supervisor has not brought back (yet).
    return text if running == len(instances) else f"{text} ({running}/{len(instances)} instances)"


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
