"""What the sandbox's Slack and email stand-ins were told about one Airflow run."""

from __future__ import annotations


def told(sandbox, run_id: str) -> dict[str, list[tuple[str, str, int]]]:
    """What each stand-in received about ``run_id``: ``{channel: [(kind, severity, status), ...]}``."""
    found: dict[str, list[tuple[str, str, int]]] = {"slack": [], "email": []}
    for record in sandbox.notifications():
        body = record["body"]
        if not isinstance(body, dict):
            continue
        if record["channel"] == "email":
            event = body.get("event") or {}
            if event.get("run_id") == run_id:
                found["email"].append((event["kind"], body["severity"], record["status"]))
        elif slack_run(body) == run_id:
            _, kind, severity = body["blocks"][0]["block_id"].split(":")
            found["slack"].append((kind, severity, record["status"]))
    return found


def slack_run(body: dict) -> str | None:
    """The run a Slack message is about: its context line, ``<dag_id> run <run_id>`` (another run's id
    may appear in the text, e.g. the holder a refused release names)."""
    for block in body.get("blocks") or []:
        if block.get("type") == "context":
            return block["elements"][0]["text"].split(" run ", 1)[-1]
    return None
