"""People in the loop, through a real api-server, scheduler and triggerer: the approval of a release
(answered over the REST API as Airflow's users), and what Slack and the email endpoint hear.

The cluster reads a copy of the tests' sandbox config (``VARAI_ENVIRONMENTS_DIR``) that each test rewrites
before it triggers: approval required or not, approvers alice and carol, a timeout. Users: alice,
bob and carol (op). Every test sets up what it needs (every service serving a judged version
first), so it passes alone and in any order; versions are v6.x, this module's own.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from tests.support.airflow_cluster import AirflowApi, AirflowCluster, free_port
from tests.support.environments import write_environments
from tests.support.notifications_told import slack_run, told
from tests.support.stack import gateway_versions
from varai_deploy.ledger import Ledger
from varai_deploy.notifiers.outcome import first_failures
from varai_deploy.services import SERVICE_NAMES

pytestmark = pytest.mark.integration

RELEASE = "ai_discovery_release"
APPROVERS = ["alice", "carol"]
_versions = iter(range(1, 1000))


def next_version() -> str:
    return f"v6.{next(_versions)}.0"


@pytest.fixture(scope="module")
def environments(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("environments")


def configure(directory: Path, *, approval: bool, timeout_minutes: float = 10) -> None:
    """The tests' sandbox config, with this test's approval settings (read by each task when it runs)."""
    write_environments(
        directory,
        requires_approval=approval,
        approval={"approvers": list(APPROVERS), "timeout_minutes": timeout_minutes},
    )


@pytest.fixture(scope="module")
def cluster(stack, sandbox, environments, tmp_path_factory):
    configure(environments, approval=False)
    env = {
        **os.environ,
        "VARAI_ENVIRONMENTS_DIR": str(environments),
        # The scheduler's sweep of approvals past their deadline (15 s by default).
        "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
    }
    cluster = AirflowCluster(
        env,
        api_port=free_port(exclude={19880}),
        log_dir=tmp_path_factory.mktemp("people"),
        users={"alice": "op", "bob": "op", "carol": "op"},
    )
    cluster.start()
    cluster.wait_for_dag(RELEASE)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def no_release_in_flight(cluster) -> None:
    """Nothing left running by a test that failed before its run ended: each test starts free."""
    if ended := cluster.end_unfinished_runs(RELEASE):
        print(f"marked failed, left running by an earlier test: {ended}")


def trigger(api: AirflowApi, version: str, services: list[str]) -> str:
    conf = {"version": version, "services": services, "marketplaces": [], "environment": "sandbox"}
    status, run = api.trigger(RELEASE, conf)
    assert status == 200, run
    return run["dag_run_id"]


def all_serving(cluster: AirflowCluster, environments: Path) -> dict[str, str]:
    """Every service serving a judged version (post-deploy checks go through all five): what serves."""
    if any(status != 200 for status, _, _ in gateway_versions().values()):
        configure(environments, approval=False)
        run_id = trigger(cluster, next_version(), list(SERVICE_NAMES))
        assert cluster.wait_for_run(RELEASE, run_id, timeout=360) == "success", cluster.describe_run(RELEASE, run_id)
    return {service: version for service, (_, version, _) in gateway_versions().items()}


def slack_text(sandbox, run_id: str, kind: str) -> str:
    for record in sandbox.notifications("slack"):
        body = record["body"]
        if isinstance(body, dict) and slack_run(body) == run_id and f":{kind}:" in str(body["blocks"][0]):
            return str(body)
    raise AssertionError(f"slack never heard {kind} of {run_id}")


def email_of(sandbox, run_id: str, kind: str) -> dict:
    for record in sandbox.notifications("email"):
        event = (record["body"] or {}).get("event") or {}
        if event.get("run_id") == run_id and event.get("kind") == kind:
            return record["body"]
    raise AssertionError(f"the email endpoint never heard {kind} of {run_id}")


def answers(run_id: str) -> list[dict]:
    return [e["detail"] for e in Ledger("sandbox").run_audit(run_id, ("approval_answered",))]


def await_approval(cluster: AirflowCluster, run_id: str) -> dict:
    """Until the request is there, and a moment more, as a person answers: Airflow 3.3 fails a task
    it resumes before it processed the parking worker's exit (the approval's retry then asks again)."""
    ti = cluster.wait_for_task(RELEASE, run_id, "approval", {"awaiting_input"}, timeout=240)
    time.sleep(3)
    return ti


def assert_lock_free() -> None:
    holder = Ledger("sandbox").holder()
    assert holder is None, holder.describe()


def test_an_approver_approves_over_the_rest_api_and_the_release_goes_on(cluster, sandbox, environments):
    before = all_serving(cluster, environments)
    configure(environments, approval=True)
    version = next_version()
    run_id = trigger(cluster.as_user("alice"), version, ["analytics"])
    ti = await_approval(cluster, run_id)

    # Parked: no process of it runs (no worker slot), and nothing changed yet.
    pid = ti.get("pid")
    assert not (pid and psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    assert cluster.task_instance(RELEASE, run_id, "infrastructure.apply")["state"] in (None, "scheduled", "none")
    assert gateway_versions()["analytics"][1] == before["analytics"]

    status, detail = cluster.hitl_detail(RELEASE, run_id, "approval")
    assert status == 200, detail
    assert detail["assigned_users"] == [{"id": "carol", "name": "carol"}], "alice triggered it: she may not approve"
    assert f"analytics: {before['analytics']} (" in detail["body"] and f"-> {version}" in detail["body"]
    assert "Terraform plan" in detail["body"]

    # A second release while this one waits is refused at its lock, naming the holder, and says so.
    second = trigger(cluster, next_version(), ["analytics"])
    assert cluster.wait_for_run(RELEASE, second) == "failed"
    assert cluster.task_instance(RELEASE, second, "lock")["state"] == "failed"
    assert told(sandbox, second) == {
        "slack": [("release_refused", "warning", 200)],
        "email": [("release_refused", "warning", 202)],
    }
    assert run_id in email_of(sandbox, second, "release_refused")["text"]

    # The scheduler restarts while the approval waits (SIGKILL: the machine went away); the request stands.
    cluster.kill("scheduler")
    cluster.start_component("scheduler")
    assert cluster.task_instance(RELEASE, run_id, "approval")["state"] == "awaiting_input"

    # The trigger user and a non-approver are refused by the API; the approver's answer counts.
    for user in ("alice", "bob"):
        status, body = cluster.as_user(user).answer(RELEASE, run_id, "approval", "Approve")
        assert status == 403, (user, status, body)
    status, body = cluster.as_user("carol").answer(RELEASE, run_id, "approval", "Approve", {"comment": "ship it"})
    assert status == 200, body

    assert cluster.wait_for_run(RELEASE, run_id, timeout=360) == "success", cluster.describe_run(RELEASE, run_id)
    assert gateway_versions()["analytics"][1] == version
    [answer] = answers(run_id)
    assert (answer["answer"], answer["by"], answer["why"]) == ("approved", "carol", "ship it")

    heard = told(sandbox, run_id)
    assert heard["slack"] == [
        ("release_started", "info", 200),
        ("approval_requested", "warning", 200),
        ("approved", "info", 200),
        ("release_succeeded", "info", 200),
    ]
    assert heard["email"] == [("approval_requested", "warning", 202)]
    request = email_of(sandbox, run_id, "approval_requested")
    assert (
        f"/dags/{RELEASE}/runs/" in request["event"]["action_url"]
        and "required_actions" in request["event"]["action_url"]
    )
    assert "carol" in request["text"] and version in request["subject"]
    assert "approved by carol" in slack_text(sandbox, run_id, "release_succeeded")
    assert_lock_free()


def test_a_rejected_release_changes_nothing_and_ends_failed_with_the_reason(cluster, sandbox, environments):
    before = all_serving(cluster, environments)
    state_file = Path(os.environ["VARAI_SANDBOX_HOME"]) / "terraform" / "sandbox" / "terraform.tfstate"
    state_before = state_file.read_bytes()
    configure(environments, approval=True)
    version = next_version()
    run_id = trigger(cluster.as_user("alice"), version, ["analytics"])
    await_approval(cluster, run_id)
    status, body = cluster.as_user("carol").answer(
        RELEASE, run_id, "approval", "Reject", {"comment": "change freeze until Monday"}
    )
    assert status == 200, body

    assert cluster.wait_for_run(RELEASE, run_id, timeout=240) == "failed"
    assert cluster.task_instance(RELEASE, run_id, "approval")["state"] == "failed"
    assert cluster.task_instance(RELEASE, run_id, "infrastructure.apply")["state"] == "upstream_failed"
    failures = first_failures(Ledger("sandbox").run_audit(run_id, ("task_failed",)))
    failure = failures[0]
    assert failure["task"] == "approval", failures
    assert (
        f"release {version} rejected by carol" in failure["error"] and "change freeze until Monday" in failure["error"]
    )
    assert {s: v for s, (_, v, _) in gateway_versions().items()} == before
    assert Ledger("sandbox").revision("analytics", version) is None, "nothing was deployed"
    assert state_file.read_bytes() == state_before, "Terraform applied nothing"
    assert answers(run_id)[-1]["answer"] == "rejected"

    heard = told(sandbox, run_id)
    assert heard["slack"] == [
        ("release_started", "info", 200),
        ("approval_requested", "warning", 200),
        ("rejected", "warning", 200),
    ]
    assert heard["email"] == [("approval_requested", "warning", 202), ("rejected", "warning", 202)]
    assert "change freeze until Monday" in email_of(sandbox, run_id, "rejected")["text"]
    assert_lock_free()


def test_no_answer_before_the_deadline_is_a_rejection(cluster, sandbox, environments):
    all_serving(cluster, environments)
    configure(environments, approval=True, timeout_minutes=0.05)  # 3 s
    version = next_version()
    run_id = trigger(cluster.as_user("alice"), version, ["analytics"])
    started = time.monotonic()
    assert cluster.wait_for_run(RELEASE, run_id, timeout=240) == "failed"
    assert time.monotonic() - started < 180
    assert cluster.task_instance(RELEASE, run_id, "infrastructure.apply")["state"] == "upstream_failed"
    assert answers(run_id)[-1]["answer"] == "timed out"
    assert Ledger("sandbox").revision("analytics", version) is None
    rejected = email_of(sandbox, run_id, "rejected")
    assert "no approver answered within 0.05 minutes" in rejected["text"]
    assert told(sandbox, run_id)["email"] == [("approval_requested", "warning", 202), ("rejected", "warning", 202)]
    assert_lock_free()


def test_a_rolled_back_release_tells_the_rule_the_value_the_threshold_and_where_traffic_is(
    cluster, sandbox, environments
):
    before = all_serving(cluster, environments)
    configure(environments, approval=False)
    version = next_version()
    sandbox.register_fault(version, "errors", services=["analytics"], rate=0.6)
    run_id = trigger(cluster, version, ["analytics"])
    assert cluster.wait_for_run(RELEASE, run_id, timeout=360) == "failed"
    assert gateway_versions()["analytics"][1] == before["analytics"]

    heard = told(sandbox, run_id)
    assert heard["slack"] == [("release_started", "info", 200), ("release_rolled_back", "critical", 200)]
    assert heard["email"] == [("release_rolled_back", "critical", 202)]
    email = email_of(sandbox, run_id, "release_rolled_back")
    event = email["event"]
    assert event["rule"] == "error rate of analytics"
    assert event["threshold"] == "5.0%"
    measured = float(event["value"].split("%")[0])
    assert measured > 5.0, event["value"]
    assert event["traffic"]["analytics"].startswith(f"{before['analytics']} (")
    assert email["subject"] == f"[VarAI sandbox][critical] Release {version} to sandbox rolled back"
    assert_lock_free()


def test_notification_endpoints_answering_500_do_not_change_the_release(cluster, sandbox, environments):
    all_serving(cluster, environments)
    configure(environments, approval=False)
    version = next_version()
    sandbox.fail_notifications("slack", 500)
    sandbox.fail_notifications("email", 500)
    try:
        run_id = trigger(cluster, version, ["analytics"])
        assert cluster.wait_for_run(RELEASE, run_id, timeout=360) == "success", cluster.describe_run(RELEASE, run_id)
    finally:
        sandbox.clear_notification_faults()
    assert gateway_versions()["analytics"][1] == version
    # Each event was tried three times (the config's attempts), each answered 500, and the release went on.
    assert (
        told(sandbox, run_id)["slack"]
        == [("release_started", "info", 500)] * 3 + [("release_succeeded", "info", 500)] * 3
    )
    notified = [e["detail"] for e in Ledger("sandbox").run_audit(run_id, ("notified",))]
    assert [n["kind"] for n in notified] == ["release_started", "release_succeeded"]
    assert all("500" in n["channels"]["slack"] for n in notified), notified
    assert_lock_free()


def test_a_failed_release_names_the_failing_task_and_its_error(cluster, sandbox, environments):
    before = all_serving(cluster, environments)
    configure(environments, approval=False)
    version = next_version()
    sandbox.register_fault(version, "crash", services=["analytics"])
    run_id = trigger(cluster, version, ["analytics"])
    assert cluster.wait_for_run(RELEASE, run_id, timeout=240) == "failed"
    assert gateway_versions()["analytics"][1] == before["analytics"]

    heard = told(sandbox, run_id)
    assert heard["slack"] == [("release_started", "info", 200), ("release_failed", "warning", 200)]
    assert heard["email"] == [("release_failed", "warning", 202)]
    event = email_of(sandbox, run_id, "release_failed")["event"]
    assert event["failed_task"] == "backend.candidates.wait_healthy[analytics]", event
    assert "analytics" in event["error"] and version in event["error"], event["error"]
    assert event["traffic"]["analytics"].startswith(f"{before['analytics']} (")
    assert f"nothing of {version} serves traffic" in event["message"]
    assert_lock_free()


def test_a_rollback_run_tells_who_rolled_back_why_and_where_traffic_is(cluster, sandbox, environments):
    all_serving(cluster, environments)
    configure(environments, approval=False)
    previous, version = gateway_versions()["analytics"][1], next_version()
    run_id = trigger(cluster, version, ["analytics"])
    assert cluster.wait_for_run(RELEASE, run_id, timeout=360) == "success", cluster.describe_run(RELEASE, run_id)
    status, run = cluster.as_user("bob").trigger(
        "ai_discovery_rollback",
        {"environment": "sandbox", "reason": "checkout errors after the release", "services": ["analytics"]},
    )
    assert status == 200, run
    rollback_id = run["dag_run_id"]
    assert cluster.wait_for_run("ai_discovery_rollback", rollback_id) == "success"
    assert gateway_versions()["analytics"][1] == previous

    heard = told(sandbox, rollback_id)
    assert heard == {"slack": [("rollback_done", "warning", 200)], "email": [("rollback_done", "warning", 202)]}
    email = email_of(sandbox, rollback_id, "rollback_done")
    assert "Rolled back by bob because checkout errors after the release" in email["event"]["message"]
    assert email["event"]["traffic"]["analytics"].startswith(f"{previous} (")
    assert_lock_free()
