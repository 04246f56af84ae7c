"""The release's automatic rollback on a real sandbox and a real ledger: what it undoes comes from
the ledger and the platform, each service on its own, and it always says where each one ended."""

from __future__ import annotations

import asyncio
import os
import signal
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred

from tests.support.sandbox import request, wait_for, wait_listening
from varai_deploy.ledger import FAILED, PASSED, PENDING, ROLLED_BACK, STOREFRONT_SEARCH, Actor, Ledger
from varai_deploy.operators.rollback import RollbackOnFailureOperator
from varai_deploy.operators.widgets import StorefrontRollbackOperator
from varai_deploy.platforms.local import LocalPlatform

SERVICES = ["analytics", "recommendation"]


class TaskInstance:
    """What the operator asks of its task instance: the analysis verdict in, the rollback payload out."""

    def __init__(self, verdict=None):
        self.verdict, self.pushed = verdict, {}

    def xcom_pull(self, task_ids):
        return self.verdict

    def xcom_push(self, key, value):
        self.pushed[key] = value


@pytest.fixture
def ctx(sandbox_env, release_context):
    return {**release_context, "ti": TaskInstance()}


def go_live(ctx, service, version, verdict=None):
    platform, ledger, actor = LocalPlatform(), Ledger("sandbox"), Actor.from_context(ctx)
    candidate = platform.deploy_candidate(service, version, "img")
    ledger.record_candidate(actor, candidate)
    wait_listening(candidate["url"])
    replaced = platform.switch_traffic(service, candidate, platform.current_revision(service))
    ledger.record_switch(actor, service, candidate, replaced)
    if verdict:
        ledger.record_verdict(actor, service, version, verdict)
    return candidate


def rollback(ctx, version="v2.0.0", services=SERVICES, operator=RollbackOnFailureOperator):
    """Runs the operator as Airflow would: execute, then (when it deferred) the trigger and resume."""
    op = operator(
        task_id="rollback_on_failure",
        environment="sandbox",
        services=services,
        analysis_task_id="backend.analysis",
        version=version,
    )
    try:
        op.execute(ctx)
    except TaskDeferred as deferred:
        event = asyncio.run(anext(deferred.trigger.run())).payload
        assert not deferred.kwargs, "airflow dags test would drop them"
        getattr(op, deferred.method_name)(ctx, event)
    raise AssertionError("the rollback neither failed nor skipped")


def served(sandbox, service):
    path = {"analytics": "/analytics/health", "recommendation": "/recommendations/health"}[service]
    return request(sandbox.settings.gateway_url, path)[1].get("x-served-version")


@pytest.fixture
def bad_release(ctx):
    """v1.0.0 released and passed, then v2.0.0 switched and not (yet) judged, on both services."""
    for service in SERVICES:
        go_live(ctx, service, "v1.0.0", PASSED)
    for service in SERVICES:
        go_live(ctx, service, "v2.0.0")
    return ctx


def test_every_switched_service_goes_back_to_its_last_good_revision(sandbox_env, bad_release):
    with pytest.raises(AirflowFailException) as failed:
        rollback(bad_release)
    message = str(failed.value)
    assert "release v2.0.0 rolled back" in message
    assert "analytics -> v1.0.0 (blue)" in message and "recommendation -> v1.0.0 (blue)" in message
    ledger = Ledger("sandbox")
    for service in SERVICES:
        assert served(sandbox_env, service) == "v1.0.0"
        assert ledger.revision(service, "v2.0.0").verdict == ROLLED_BACK
        assert ledger.service_state(service).live_version == "v1.0.0"
    assert bad_release["ti"].pushed["rollback"]["services"]["analytics"].startswith("analytics -> v1.0.0")


def test_a_previous_revision_that_died_is_restarted_before_traffic_goes_back(sandbox_env, bad_release):
    idle = sandbox_env.status()["services"]["analytics"]["idle"]
    os.kill(idle["pid"], signal.SIGKILL)
    wait_for(lambda: not sandbox_env.status()["services"]["analytics"]["idle"]["running"], what="the kill")
    with pytest.raises(AirflowFailException, match=r"analytics -> v1\.0\.0"):
        rollback(bad_release)
    assert served(sandbox_env, "analytics") == "v1.0.0"
    assert served(sandbox_env, "recommendation") == "v1.0.0"


def test_one_service_that_cannot_go_back_does_not_stop_the_others(sandbox_env, bad_release):
    # analytics' previous revision dies, and its version now crashes at start: it cannot come back.
    sandbox_env.register_fault("v1.0.0", "crash", services=["analytics"])
    idle = sandbox_env.status()["services"]["analytics"]["idle"]
    os.kill(idle["pid"], signal.SIGKILL)
    wait_for(lambda: not sandbox_env.status()["services"]["analytics"]["idle"]["running"], what="the kill")
    with pytest.raises(AirflowFailException) as failed:
        rollback(bad_release)
    message = str(failed.value)
    assert "analytics: v2.0.0 stays live: v1.0.0 did not come back healthy" in message
    assert "recommendation -> v1.0.0 (blue)" in message
    assert served(sandbox_env, "analytics") == "v2.0.0"
    assert served(sandbox_env, "recommendation") == "v1.0.0"
    assert Ledger("sandbox").revision("analytics", "v2.0.0").verdict == FAILED


def test_a_first_release_with_nothing_to_go_back_to_fails_and_is_marked_failed(sandbox_env, ctx):
    go_live(ctx, "analytics", "v1.0.0")
    with pytest.raises(AirflowFailException, match="analytics: v1.0.0 stays live: nothing to roll back to"):
        rollback(ctx, version="v1.0.0", services=["analytics"])
    assert Ledger("sandbox").revision("analytics", "v1.0.0").verdict == FAILED
    assert served(sandbox_env, "analytics") == "v1.0.0"


def test_a_candidate_that_never_took_traffic_is_discarded_and_never_a_target(sandbox_env, ctx):
    go_live(ctx, "analytics", "v1.0.0", PASSED)
    candidate = LocalPlatform().deploy_candidate("analytics", "v2.0.0", "img")
    Ledger("sandbox").record_candidate(Actor.from_context(ctx), candidate)
    with pytest.raises(AirflowFailException, match="analytics: candidate discarded, v1.0.0 keeps serving"):
        rollback(ctx, services=["analytics"])
    assert Ledger("sandbox").revision("analytics", "v2.0.0").verdict == FAILED
    assert sandbox_env.status()["services"]["analytics"]["idle"]["state"] == "failed"


def test_nothing_to_undo_when_every_service_passed(sandbox_env, ctx):
    for service in SERVICES:
        go_live(ctx, service, "v2.0.0", PASSED)
    with pytest.raises(AirflowSkipException, match="nothing to roll back"):
        rollback(ctx)
    assert Ledger("sandbox").revision("analytics", "v2.0.0").verdict == PASSED


def test_a_retried_rollback_converges(sandbox_env, bad_release):
    with pytest.raises(AirflowFailException):
        rollback(bad_release)
    # Try 2 finds everything already back: it still fails the run, and moves nothing.
    with pytest.raises(AirflowFailException, match="rolled back"):
        rollback(bad_release)
    assert served(sandbox_env, "analytics") == "v1.0.0"
    assert Ledger("sandbox").revision("analytics", "v2.0.0").verdict == ROLLED_BACK
    assert PENDING not in {r.verdict for r in Ledger("sandbox").run_revisions("manual__test")}


# -- after Phase 4: the storefronts' search judges a backend whose analysis passed --------------------
@pytest.fixture
def passed_release(ctx):
    """v1.0.0 then v2.0.0 released and passed on both services, v1.0.0 retired as after a passed analysis."""
    platform = LocalPlatform()
    old = {service: go_live(ctx, service, "v1.0.0", PASSED) for service in SERVICES}
    for service in SERVICES:
        go_live(ctx, service, "v2.0.0", PASSED)
        platform.retire(service, old[service])
    return ctx


def searched(ctx, channel, outcome, detail="html (cdn): a shopper's search for 'round' showed 'Sorry'"):
    detail = {"channel": channel, "outcome": outcome, "detail": detail}
    Ledger("sandbox").record(Actor.from_context(ctx), STOREFRONT_SEARCH, None, "v2.0.0", detail)


def after_phase_4(ctx, services=SERVICES, version="v2.0.0"):
    return rollback(ctx, version=version, services=services, operator=StorefrontRollbackOperator)


def test_a_search_failing_on_every_storefront_rolls_the_passed_backend_back(sandbox_env, passed_release):
    searched(passed_release, "html", "failed")
    searched(passed_release, "magento", "failed")
    with pytest.raises(AirflowFailException) as failed:
        after_phase_4(passed_release)
    message = str(failed.value)
    reason = "Phase 4: the widget's search failed on every storefront: html: html (cdn): a shopper's search for "
    assert f"release v2.0.0 rolled back ({reason}" in message and "; magento: html (cdn)" in message
    assert "analytics -> v1.0.0" in message and "recommendation -> v1.0.0" in message
    for service in SERVICES:  # the retired revisions were started again before traffic went back
        assert served(sandbox_env, service) == "v1.0.0"
        assert Ledger("sandbox").revision(service, "v2.0.0").verdict == ROLLED_BACK
    # A retry finds what it judged by its reason: it fails the run again and moves nothing.
    with pytest.raises(AirflowFailException, match=r"analytics -> v1\.0\.0"):
        after_phase_4(passed_release)
    assert served(sandbox_env, "analytics") == "v1.0.0"


def test_a_search_failing_on_some_storefronts_is_their_channels_fault(sandbox_env, passed_release):
    searched(passed_release, "html", "failed")
    searched(passed_release, "woocommerce", "passed", "2 deliveries")
    with pytest.raises(AirflowSkipException, match="failed for the backend: it stays"):
        after_phase_4(passed_release)
    assert Ledger("sandbox").revision("analytics", "v2.0.0").verdict == PASSED
    assert served(sandbox_env, "analytics") == "v2.0.0"


def test_a_storefront_retried_into_success_counts_by_its_last_search(sandbox_env, passed_release):
    searched(passed_release, "html", "failed")
    searched(passed_release, "html", "passed", "2 deliveries")
    with pytest.raises(AirflowSkipException):
        after_phase_4(passed_release)
    assert served(sandbox_env, "analytics") == "v2.0.0"


def test_no_search_at_all_judges_nothing(sandbox_env, passed_release):
    with pytest.raises(AirflowSkipException):
        after_phase_4(passed_release)
    assert Ledger("sandbox").revision("recommendation", "v2.0.0").verdict == PASSED


def test_a_service_this_run_did_not_put_live_is_not_judged(sandbox_env, passed_release):
    """A service whose version was already live from an earlier run is that run's, not this one's."""
    run = vars(passed_release["dag_run"]) | {"run_id": "manual__earlier"}
    go_live({**passed_release, "dag_run": SimpleNamespace(**run)}, "analytics", "v2.0.1", PASSED)
    searched(passed_release, "html", "failed")
    with pytest.raises(AirflowSkipException):
        after_phase_4(passed_release, services=["analytics"], version="v2.0.1")
    assert Ledger("sandbox").revision("analytics", "v2.0.1").verdict == PASSED
