"""What telling people costs an operation: notification delivery against the sandbox's stand-ins.

    make bench            (or: PYTHONPATH=plugins:. .venv/bin/python benchmarks/notification_delivery.py)

Starts the Slack-webhook and email-endpoint stand-ins on scratch ports (19360-19379, as the tests'
notification stack) and times ``varai_deploy.notifiers.notify`` with the sandbox's routing and
retry policy: an info event (Slack only), a critical one (Slack and email), and the worst case a
release pays when both channels answer 500 (every attempt, and the pauses between them). Prints
the median and the maximum of each over the runs.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
RUNS = 10


def timed(call, runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    from tests.support.notification_stack import notification_stack
    from varai_deploy.config import load_environment
    from varai_deploy.notifiers import Event, notify
    from varai_deploy.sandbox import notifications

    env = load_environment("sandbox")
    with notification_stack(Path(tempfile.mkdtemp(prefix="varai-bench-notify-")) / "home") as stack:
        os.environ["AIRFLOW_CONN_VARAI_SLACK"] = json.dumps(stack.slack_connection)
        os.environ["AIRFLOW_CONN_VARAI_EMAIL_ENDPOINT"] = json.dumps(stack.email_connection)

        def event(kind: str) -> Event:
            return Event(kind=kind, environment="sandbox", message="benchmark", version="v1.0.0", run_id="bench")

        notify(env, event("release_started"))  # imports and first connections out of the figures
        rows = [
            ("info (slack)", timed(lambda: notify(env, event("release_succeeded")), RUNS)),
            ("critical (slack + email)", timed(lambda: notify(env, event("release_rolled_back")), RUNS)),
        ]
        for channel in ("slack", "email"):
            notifications.fail(stack.settings, channel, 500)
        policy = env.notifications
        rows.append(
            (
                f"critical, both answer 500 ({policy.attempts} attempts each)",
                timed(lambda: notify(env, event("release_rolled_back")), 3),
            )
        )
    print(
        f"notification delivery, sandbox policy (timeout {policy.timeout_seconds:g}s, "
        f"pause {policy.retry_delay_seconds:g}s x attempt):"
    )
    for label, seconds in rows:
        print(f"  {label:<48} median {statistics.median(seconds) * 1000:8.1f} ms   max {max(seconds) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
