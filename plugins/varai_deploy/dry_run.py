"""A release's dry run: what it would change, per service and per marketplace, read from the platform and
the ledger (and the widget build, made in a scratch dir), with nothing written anywhere."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from varai_deploy.config import EnvironmentConfig


def describe_release(
    env: EnvironmentConfig, version: str, services: list[str], channels: list[str], plan: dict[str, Any]
) -> dict[str, Any]:
    """What releasing ``version`` to ``env`` would do: per service the action and what serves now, per
    channel what would be published, and Terraform's plan."""
    from varai_deploy.ledger import PASSED, ledger_for
    from varai_deploy.platforms import get_platform
    from varai_deploy.widgets import build_release

    platform, ledger = get_platform(env), ledger_for(env)
    per_service: dict[str, dict[str, Any]] = {}
    for service in services:
        live = platform.current_revision(service)
        serving = live["version"] if live else None
        record = ledger.revision(service, version)
        if serving == version and record and record.verdict == PASSED:
            action = f"nothing: already serves {version}, passed"
        elif serving == version:
            action = f"judge again: serves {version}, which never passed ({record.verdict if record else 'unrecorded'})"
        else:
            action = (
                f"deploy {version} beside {serving or 'nothing'}, switch once healthy, judge it on metrics "
                "(roll back on a broken rule)"
            )
        per_service[service] = {"serving": serving, "action": action}
    widgets: dict[str, Any] = {}
    if channels:
        with tempfile.TemporaryDirectory(prefix="varai-dry-run-") as tmp:
            manifest = build_release(version, Path(tmp) / "build")
        for channel in channels:
            files = [a for a in manifest.artifacts if a.channel == channel and not a.archive]
            widgets[channel] = {
                "action": f"publish {version} once the backend passed: {len(files)} file(s), "
                f"widget sha256 {manifest.widget_sha256[:12]}",
                "manifest": manifest.digest(),
            }
    return {
        "environment": env.name,
        "version": version,
        "terraform": {"changes": plan.get("changes"), "summary": plan.get("summary")},
        "services": per_service,
        "widgets": widgets,
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as the run log shows it: a line per service and per marketplace."""
    lines = [
        f"Dry run of {report['version']} to {report['environment']}: nothing was changed. The release would:",
        f"  terraform: {report['terraform']['summary']}",
    ]
    lines += [f"  {service}: {row['action']}" for service, row in report["services"].items()]
    lines += [f"  widgets {channel}: {row['action']}" for channel, row in report["widgets"].items()]
    if not report["widgets"]:
        lines.append("  widgets: none (no marketplace selected)")
    return "\n".join(lines)
