"""Automatic rollback on real metrics (real Prometheus, steady synthetic traffic), the rollback DAG,
and zero downtime counted from the load generator's own log.

Each bad release is judged by one rule; the test then checks the gateway serves the last good
version again and that every failed request came from the bad version, i.e. fell inside the
detection window.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.stack import gateway_versions, release, rollback
from varai_deploy.ledger import Ledger
from varai_deploy.services import SERVICE_NAMES

pytestmark = pytest.mark.integration


def live_versions() -> dict[str, str | None]:
    return {name: answer[1] for name, answer in gateway_versions().items()}


_good = iter(range(1, 100))


def good_state(stack) -> dict[str, str | None]:
    """What every service serves, once each serves a version the ledger judged passed and holds as
    its last good one, with no fault registered for it (released here first if not: a test must not
    rely on an earlier one's, nor count the failures of another module's flapping release)."""
    from varai_deploy.sandbox import Sandbox

    ledger = Ledger("sandbox")
    live = live_versions()
    faulty = Sandbox().faults()  # e.g. another module's flapping release, passed but failing health checks
    if all(
        version and version not in faulty and ledger.service_state(service).last_good_version == version
        for service, version in live.items()
    ):
        return live
    run = release(stack, f"v3.90.{next(_good)}")
    assert run.succeeded, run.errors or run.log[-3000:]
    return live_versions()


def when_serving(service: str, version: str, then, timeout: float = 120) -> threading.Thread:
    """Call ``then`` (in a thread) once the gateway serves ``version`` of ``service``."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while gateway_versions()[service][1] != version and time.monotonic() < deadline:
            time.sleep(0.1)
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def traffic(stack, sandbox):
    """The load generator's log for the duration of one test, from a good state (so the failures of
    what served before, e.g. another module's flapping release, are not counted)."""
    good_state(stack)
    started = time.time()
    assert sandbox.status()["traffic"]["running"], "the sandbox drives steady traffic"

    def report():
        return sandbox.traffic_report(since=started, until=time.time())

    return report


def test_a_good_release_under_steady_traffic_fails_no_request(stack, sandbox, traffic):
    run = release(stack, "v3.0.0")
    assert run.succeeded, run.errors or run.log[-3000:]
    assert live_versions() == dict.fromkeys(SERVICE_NAMES, "v3.0.0")
    report = traffic()
    assert report["total"] > 100
    assert report["failed"] == 0, report["failures"][:5]
    assert "Verdict pass" in run.log


@pytest.mark.parametrize(
    ("version", "service", "fault", "message"),
    [
        ("v3.1.0", "recommendation", {"mode": "errors", "rate": 0.3}, "error rate of recommendation v3.1.0 was"),
        ("v3.2.0", "analytics", {"mode": "slow", "latency_seconds": 6}, "p95 latency of analytics v3.2.0 was"),
        # Healthy through its health gate, the switch and the gateway check, unhealthy 4 s after it
        # serves (applied then), 8 s before the analysis could pass.
        (
            "v3.3.0",
            "face-analysis",
            {"mode": "unhealthy", "after_seconds": 4},
            "face-analysis v3.3.0 failed 3 consecutive health checks",
        ),
        # Healthy, fast and error-free, but its search finds nothing: only the widget's search shows it.
        (
            "v3.6.0",
            "ai-discovery",
            {"mode": "no_results"},
            "the widget's search through the gateway failed on ai-discovery v3.6.0: GET http://127.0.0.1:",
        ),
    ],
    ids=["error-rate", "latency-p95", "health-checks", "search"],
)
def test_each_rule_rolls_a_bad_release_back(stack, sandbox, traffic, version, service, fault, message):
    good = good_state(stack)
    mode = fault.pop("mode")
    if mode == "unhealthy":
        when_serving(
            service,
            version,
            lambda: (sandbox.register_fault(version, mode, services=[service], **fault), sandbox.apply_faults(version)),
        )
    else:
        sandbox.register_fault(version, mode, services=[service], **fault)
    run = release(stack, version, services=[service, "api-gateway"])
    assert not run.succeeded
    reason = " ".join(run.errors)
    assert message in reason, run.errors
    assert "rolled back" in reason and f"{service} -> {good[service]}" in reason
    assert live_versions() == good
    report = traffic()
    assert not report["failures_truncated"]
    bad = [r for r in report["failures"] if r["version"] != version]
    assert not bad, f"requests failed outside the detection window: {bad[:5]}"


def test_a_crashing_candidate_under_traffic_fails_no_request(stack, sandbox, traffic):
    good = good_state(stack)
    sandbox.register_fault("v3.4.0", "crash", services=["ai-discovery"])
    run = release(stack, "v3.4.0")
    assert not run.succeeded
    assert live_versions() == good
    assert traffic()["failed"] == 0


def test_rollback_refuses_a_version_the_platform_does_not_know(stack, sandbox):
    before = live_versions()
    run = rollback(stack, reason="testing", target="v0.0.1", services=["analytics"])
    assert not run.succeeded
    assert any("analytics: v0.0.1 is not known to the platform" in e for e in run.errors), run.errors
    assert live_versions() == before


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_rollback_refuses_a_missing_or_blank_reason(stack, sandbox, reason):
    conf = {"target": "previous"} if reason is None else {"reason": reason}
    run = rollback(stack, **conf)
    assert not run.succeeded
    assert any("param reason" in e for e in run.errors), run.errors


def test_manual_rollback_puts_traffic_back_and_records_who_when_why(stack, sandbox, traffic):
    previous = good_state(stack)["analytics"]
    run = release(stack, "v3.5.0", services=["analytics"])
    assert run.succeeded, run.errors
    run = rollback(stack, reason="checkout conversions dropped", services=["analytics"])
    assert run.succeeded, run.errors or run.log[-3000:]
    assert live_versions()["analytics"] == previous
    record = Ledger("sandbox").audit(action="rollback")[-1]["detail"]
    assert record["why"] == "checkout conversions dropped"
    assert len(record["restored"]) == 1 and record["restored"][0].startswith(f"analytics -> {previous} (")
    assert record["who"] and record["when"]
    assert traffic()["failed"] == 0
    # What we rolled away from is no rollback target any more.
    again = rollback(stack, reason="again", services=["analytics"])
    assert not again.succeeded
    assert any("analytics: no previous revision" in e for e in again.errors), again.errors
