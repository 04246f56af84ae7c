"""The one message that says how an operation ended, built from the ledger and the platform.

Whatever tasks happened to succeed, the ledger has the run's truth: a rollback with its rule, value
and threshold; each failed task's error (written by ``callbacks.record_task_failure``); the
approval's answer. The platform says where traffic is now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from varai_deploy.callbacks import NO_ERROR, TASK_FAILED
from varai_deploy.notifiers.runs import run_event, traffic_now

if TYPE_CHECKING:
    from varai_deploy.config import EnvironmentConfig
    from varai_deploy.ledger import Ledger
    from varai_deploy.notifiers.events import Event
    from varai_deploy.platforms import Platform

ROLLED_BACK_ACTION = "release_rolled_back"
APPROVAL_ACTION = "approval_answered"
#: The release DAG's approval task: a rejection is told by the approval itself, once.
APPROVAL_TASK = "approval"


def rule_figures(verdict: dict[str, Any] | None) -> tuple[str, str, str]:
    """(rule, measured value, threshold) of an analysis verdict, formatted as people read them."""
    if not verdict or not verdict.get("rule") or verdict.get("verdict") == "pass":
        return "", "", ""
    rule, value, threshold = verdict["rule"], verdict.get("value"), verdict.get("threshold")
    service = verdict.get("service") or ""
    window = verdict.get("window_seconds")
    over = f" for {window:g}s" if isinstance(window, int | float) else ""
    if rule == "error_rate" and isinstance(value, int | float):
        return f"error rate of {service}", f"{value:.1%}{over}", f"{threshold:.1%}"
    if rule == "latency_p95" and isinstance(value, int | float):
        return f"p95 latency of {service}", f"{value:.2f}s{over}", f"{threshold:g}s"
    if rule == "health":
        return f"health checks of {service}", f"{value} failed in a row", f"{threshold}"
    if rule == "search":
        return (
            f"the widget's search on {service}",
            str(verdict.get("reason") or "failed"),
            "suggestions from the new version",
        )
    if rule == "inconclusive":
        within = f" within {window:g}s" if isinstance(window, int | float) else ""
        return "analysis inconclusive", str(verdict.get("reason") or "no verdict"), f"a verdict{within}"
    return str(rule), str(value if value is not None else verdict.get("reason", "")), str(threshold or "")


def first_failures(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failed tasks in the order they failed, one entry each, the one carrying its error preferred (a
    task can be reported twice: by its own callback, and by the dag-processor's without the error)."""
    order: list[str] = []
    best: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry["action"] != TASK_FAILED:
            continue
        detail = entry["detail"]
        task = detail.get("task", "?")
        if task not in best:
            order.append(task)
            best[task] = detail
        elif best[task].get("error") == NO_ERROR:
            best[task] = detail
    return [best[task] for task in order]


def approval_of(entries: list[dict[str, Any]]) -> dict[str, str]:
    answers = [e["detail"] for e in entries if e["action"] == APPROVAL_ACTION]
    if not answers:
        return {}
    last = answers[-1]
    return {k: str(last.get(k) or "") for k in ("answer", "by", "at")}


def release_outcome(
    context: Any,
    env: EnvironmentConfig,
    ledger: Ledger,
    platform: Platform,
    outcome: dict[str, Any],
    services: list[str],
    failed_states: dict[str, str],
) -> Event | None:
    """The release's outcome event; None when the approval already told a rejection."""
    version, run_id = outcome.get("version", ""), outcome["run_id"]
    entries = ledger.run_audit(run_id, (ROLLED_BACK_ACTION, TASK_FAILED, APPROVAL_ACTION))
    approval = approval_of(entries)
    traffic = traffic_now(platform, services)
    common = {"version": version, "services": services, "approval": approval, "traffic": traffic}
    rolled = [e["detail"] for e in entries if e["action"] == ROLLED_BACK_ACTION]
    # A rollback that only discarded candidates which never took traffic is a failed release, not a rollback.
    if rolled and any(str(text).startswith(f"{s} -> ") for s, text in (rolled[-1].get("services") or {}).items()):
        rule, value, threshold = rule_figures(rolled[-1].get("verdict"))
        where = "; ".join(f"{s}: {text}" for s, text in sorted((rolled[-1].get("services") or {}).items()))
        return run_event(
            context,
            "release_rolled_back",
            env.name,
            f"{rolled[-1].get('reason', 'the release failed')}. Rolled back: {where}.",
            rule=rule,
            value=value,
            threshold=threshold,
            **common,
        )
    if outcome["outcome"] != "failed":
        return run_event(
            context,
            "release_succeeded",
            env.name,
            f"{version} serves {', '.join(services)}, judged healthy on real metrics.",
            **common,
        )
    hard = sorted(task for task, state in failed_states.items() if state == "failed")
    if approval.get("answer") in ("rejected", "timed out") and set(hard) <= {APPROVAL_TASK}:
        return None
    errors = first_failures(entries)
    failed_task = errors[0]["task"] if errors else (hard or outcome.get("failed_tasks") or ["?"])[0]
    error = errors[0].get("error", "") if errors else "no error was recorded (did its worker die?)"
    verdicts = outcome.get("verdicts") or {}
    # Traffic on this version without a passed verdict is not known to be good: that is critical.
    unjudged = [s for s in services if traffic.get(s, "").startswith(f"{version} ") and verdicts.get(s) != "passed"]
    message = (
        f"{failed_task} failed; nothing of {version} serves traffic."
        if not any(traffic.get(s, "").startswith(f"{version} ") for s in services)
        else f"{failed_task} failed."
    )
    if unjudged:
        message += f" {', '.join(unjudged)} serve(s) {version}, which is not judged good: look now."
    return run_event(
        context,
        "release_failed",
        env.name,
        message,
        failed_task=failed_task,
        error=error,
        escalate=bool(unjudged),
        **common,
    )


def rollback_outcome(
    context: Any,
    env: EnvironmentConfig,
    ledger: Ledger,
    platform: Platform,
    outcome: dict[str, Any],
    services: list[str],
) -> Event:
    entries = ledger.run_audit(outcome["run_id"], ("rollback", TASK_FAILED))
    done = [e["detail"] for e in entries if e["action"] == "rollback"]
    errors = first_failures(entries)
    traffic = traffic_now(platform, services)
    if outcome["outcome"] == "failed" or not done:
        failed_task = errors[0]["task"] if errors else (outcome.get("failed_tasks") or ["?"])[0]
        return run_event(
            context,
            "rollback_failed",
            env.name,
            f"The rollback stopped at {failed_task}; check where traffic is.",
            services=services,
            failed_task=failed_task,
            error=errors[0].get("error", "") if errors else "",
            traffic=traffic,
        )
    record = done[-1]
    restored = "; ".join(record.get("restored") or []) or "nothing needed to move"
    who, why = record.get("who") or "someone", record.get("why") or "no reason given"
    return run_event(
        context,
        "rollback_done",
        env.name,
        f"Rolled back by {who} because {why}: {restored}.",
        services=services,
        traffic=traffic,
    )
