"""A rollback's rule, measured value and threshold, as the on-call engineer reads them."""

import pytest

from varai_deploy.notifiers.outcome import approval_of, rule_figures


@pytest.mark.parametrize(
    ("verdict", "figures"),
    [
        (
            {
                "verdict": "rollback",
                "rule": "error_rate",
                "service": "analytics",
                "value": 0.123,
                "threshold": 0.05,
                "window_seconds": 300,
            },
            ("error rate of analytics", "12.3% for 300s", "5.0%"),
        ),
        (
            {
                "verdict": "rollback",
                "rule": "latency_p95",
                "service": "recommendation",
                "value": 6.456,
                "threshold": 5,
                "window_seconds": 600,
            },
            ("p95 latency of recommendation", "6.46s for 600s", "5s"),
        ),
        (
            {
                "verdict": "rollback",
                "rule": "health",
                "service": "face-analysis",
                "value": 3,
                "threshold": 3,
                "window_seconds": None,
            },
            ("health checks of face-analysis", "3 failed in a row", "3"),
        ),
        (
            {
                "verdict": "rollback",
                "rule": "inconclusive",
                "service": None,
                "value": None,
                "threshold": None,
                "window_seconds": 45,
                "reason": "too little traffic to judge",
            },
            ("analysis inconclusive", "too little traffic to judge", "a verdict within 45s"),
        ),
        ({"verdict": "pass", "seconds_after_switch": 15}, ("", "", "")),
        (None, ("", "", "")),
    ],
)
def test_each_rule_reads_as_what_was_measured_against_what(verdict, figures):
    assert rule_figures(verdict) == figures


def test_the_last_answer_is_the_approval():
    entries = [
        {"action": "approval_answered", "detail": {"answer": "rejected", "by": "bob", "at": "t1", "why": "x"}},
        {"action": "task_failed", "detail": {"task": "approval"}},
        {"action": "approval_answered", "detail": {"answer": "approved", "by": "carol", "at": "t2", "why": ""}},
    ]
    assert approval_of(entries) == {"answer": "approved", "by": "carol", "at": "t2"}
    assert approval_of([]) == {}


class Ledger:
    """The two reads the outcome makes of the ledger, over entries this test chose."""

    def __init__(self, entries):
        self.entries = entries

    def run_audit(self, run_id, actions=()):
        return [e for e in self.entries if not actions or e["action"] in actions]


class Platform:
    def __init__(self, live):
        self.live = live

    def current_revision(self, service):
        version = self.live.get(service)
        return {"service": service, "version": version, "name": "blue"} if version else None


class DagRun:
    dag_id, run_id, triggering_user_name, run_type = "ai_discovery_release", "r1", "carol", "manual"


def outcome_of(entries, live, outcome="failed", failed_states=None, verdicts=None):
    from varai_deploy.config import load_environment
    from varai_deploy.notifiers.outcome import release_outcome

    summary = {"run_id": "r1", "version": "v2.0.0", "outcome": outcome, "failed_tasks": [], "verdicts": verdicts or {}}
    return release_outcome(
        {"dag_run": DagRun()},
        load_environment("sandbox"),
        Ledger(entries),
        Platform(live),
        summary,
        ["analytics"],
        failed_states or {},
    )


def entry(action, **detail):
    return {"action": action, "detail": detail}


def test_a_rollback_that_moved_traffic_back_is_critical_with_its_rule():
    event = outcome_of(
        [
            entry(
                "release_rolled_back",
                reason="error rate too high",
                verdict={
                    "verdict": "rollback",
                    "rule": "error_rate",
                    "service": "analytics",
                    "value": 0.2,
                    "threshold": 0.05,
                    "window_seconds": 6,
                },
                services={"analytics": "analytics -> v1.0.0 (blue)"},
            )
        ],
        {"analytics": "v1.0.0"},
    )
    assert (event.kind, event.severity, event.rule) == ("release_rolled_back", "critical", "error rate of analytics")
    assert event.traffic == {"analytics": "v1.0.0 (blue)"}


def test_discarding_candidates_that_never_served_is_a_failed_release_naming_the_first_failure():
    event = outcome_of(
        [
            entry("task_failed", task="backend.candidates.wait_healthy[analytics]", error="crashed at start"),
            entry(
                "release_rolled_back", reason="stopped", services={"analytics": "candidate discarded, v1 keeps serving"}
            ),
            entry("task_failed", task="backend.rollback_on_failure", error="rolled back"),
        ],
        {"analytics": "v1.0.0"},
        failed_states={"backend.candidates.wait_healthy_0": "failed"},
    )
    assert (event.kind, event.severity) == ("release_failed", "warning")
    assert (event.failed_task, event.error) == ("backend.candidates.wait_healthy[analytics]", "crashed at start")
    assert "nothing of v2.0.0 serves traffic" in event.message


def test_a_failed_release_leaving_the_new_version_unjudged_in_traffic_is_critical():
    event = outcome_of(
        [entry("task_failed", task="backend.rollback_on_failure", error="could not restart v1.0.0")],
        {"analytics": "v2.0.0"},
        failed_states={"backend.rollback_on_failure": "failed"},
        verdicts={"analytics": "failed"},
    )
    assert (event.kind, event.severity) == ("release_failed", "critical")
    assert "analytics serve(s) v2.0.0, which is not judged good" in event.message


def test_a_rejection_was_told_by_the_approval_and_a_success_carries_the_approval():
    rejected = [entry("approval_answered", answer="rejected", by="carol", at="t")]
    assert outcome_of(rejected, {"analytics": "v1.0.0"}, failed_states={"approval": "failed"}) is None
    approved = [entry("approval_answered", answer="approved", by="carol", at="t")]
    event = outcome_of(approved, {"analytics": "v2.0.0"}, outcome="succeeded")
    assert (event.kind, event.approval["by"]) == ("release_succeeded", "carol")


def test_a_task_reported_twice_keeps_its_error_and_its_place():
    from varai_deploy.callbacks import NO_ERROR
    from varai_deploy.notifiers.outcome import first_failures

    entries = [
        entry("task_failed", task="approval", error=NO_ERROR),
        entry("task_failed", task="backend.rollback_on_failure", error="rolled back"),
        entry("task_failed", task="approval", error="AirflowFailException: rejected by carol"),
    ]
    assert [(f["task"], f["error"]) for f in first_failures(entries)] == [
        ("approval", "AirflowFailException: rejected by carol"),
        ("backend.rollback_on_failure", "rolled back"),
    ]
