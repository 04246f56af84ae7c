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
