"""A drill's report as one self-contained HTML page: the outcome, the figures against the objectives,
a timeline of the drill, and the trend of the drills before it (inline SVG, no script, no network)."""

from __future__ import annotations

from html import escape
from typing import Any

#: The timeline's marks: (key in the report's "timeline", label).
MARKS = (
    ("broken_at", "broken"),
    ("detected_at", "detected"),
    ("restored_at", "restored"),
    ("recovered_at", "recovered"),
)


def _timeline(timeline: dict[str, float | None]) -> str:
    """Seconds after the break, as points on a line 600 px wide."""
    end = max([v for v in timeline.values() if v is not None] + [1.0])
    marks = []
    for key, label in MARKS:
        at = timeline.get(key)
        if at is None:
            continue
        x = 20 + 560 * at / end
        marks.append(
            f'<line x1="{x:.0f}" y1="20" x2="{x:.0f}" y2="50" stroke="#333"/>'
            f'<text x="{x:.0f}" y="66" font-size="11" text-anchor="middle">{escape(label)} +{at:g} s</text>'
        )
    return (
        '<svg width="620" height="80" role="img" aria-label="timeline">'
        '<line x1="20" y1="35" x2="580" y2="35" stroke="#c33" stroke-width="6"/>' + "".join(marks) + "</svg>"
    )


def _trend(past: list[dict[str, Any]]) -> str:
    """Each drill's recovery time as a bar, oldest first, the objective as a dashed line."""
    if not past:
        return "<p>No earlier drills.</p>"
    top = max(max(d["recovery_seconds"] for d in past), 1.0)
    width = 30
    bars = []
    for i, drill in enumerate(past):
        height = 100 * drill["recovery_seconds"] / top
        bars.append(
            f'<rect x="{10 + i * width}" y="{110 - height:.0f}" width="{width - 6}" height="{height:.0f}" '
            f'fill="{"#3a3" if drill.get("passed") else "#c33"}"><title>{escape(drill["run_id"])}: '
            f"{drill['recovery_seconds']:g} s</title></rect>"
        )
    return f'<svg width="{20 + len(past) * width}" height="120" role="img" aria-label="trend">{"".join(bars)}</svg>'


def _findings(result: dict[str, Any]) -> str:
    """What the scenario found beyond the objectives: the rows lost, the process killed, or the region failover."""
    if "lost_rows" in result:
        lost = "".join(f"<li>{escape(t)}: {n}</li>" for t, n in result["lost_rows"].items())
        redeployed = "".join(f"<li>{escape(s)}: {escape(v)}</li>" for s, v in result.get("redeployed", {}).items())
        return f"<h2>Rows lost (written after the restored backup's snapshot)</h2><ul>{lost}</ul>" + (
            f"<h2>Redeployed from the ledger</h2><ul>{redeployed}</ul>" if redeployed else ""
        )
    if "killed" in result:
        killed = result["killed"]
        return (
            f"<h2>Process killed</h2><p>{escape(killed['service'])} {escape(killed['version'])} "
            f"({escape(killed['colour'])}), instance {killed['instance']}, pid {killed['pid']}, with "
            f"{result['instances_before']} instance(s) serving; it ended with exit code {result.get('exit_code')} "
            "and was replaced by the platform.</p>"
        )
    if "failed_over" in result:
        moved = result["failed_over"]
        return (
            f"<h2>Region failover</h2><p>{escape(moved['from'])} lost ({moved['killed']} process(es) killed); the "
            f"front end failed over to {escape(moved['to'])}, which serves users now. {escape(moved['from'])} came "
            "back as the standby once the drill was over.</p>"
        )
    return ""


def render(result: dict[str, Any], past: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{name.upper()}</td><td>{o['measured_seconds']:g} s</td><td>{o['objective_seconds']:g} s</td>"
        f"<td>{'met' if o['met'] else 'MISSED'}</td></tr>"
        for name, o in result.get("objectives", {}).items()
    )
    title = f"DR drill {result['scenario']} in {result['environment']}"
    drills = [*past, result] if "recovery_seconds" in result else past
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title></head><body>"
        f"<h1>{escape(title)}</h1><p>{escape(result['run_id'])}: {escape(result['outcome'])}</p>"
        "<table border='1'><tr><th></th><th>measured</th><th>objective</th><th></th></tr>" + rows + "</table>"
        f"<h2>Timeline (seconds after the break)</h2>{_timeline(result.get('timeline', {}))}"
        f"{_findings(result)}"
        f"<h2>Recovery time of every drill so far</h2>{_trend(drills)}"
        "</body></html>"
    )
