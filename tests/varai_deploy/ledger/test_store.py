"""The release ledger against a real PostgreSQL: the lock, verdicts, rollback targets, the audit."""

from __future__ import annotations

import threading

import pytest

from varai_deploy.ledger import (
    FAILED,
    PASSED,
    PENDING,
    ROLLED_BACK,
    WIDGETS_BUILT,
    Actor,
    Ledger,
    LedgerError,
    LockHeldError,
)


def actor(run: str, dag: str = "ai_discovery_release") -> Actor:
    return Actor(dag_id=dag, run_id=run, who="tester")


def revision(service: str, version: str, name: str = "blue") -> dict:
    return {"service": service, "version": version, "name": name, "url": f"http://127.0.0.1:1/{name}", "image": "img"}


def always_running(dag_id: str, run_id: str) -> bool:
    return True


def test_a_second_operation_is_refused_naming_the_holder(environment):
    ledger = Ledger(environment)
    ledger.acquire(actor("run-1"), "release", always_running)
    with pytest.raises(LockHeldError) as refused:
        Ledger(environment).acquire(actor("alert__1", "ai_discovery_rollback"), "rollback", always_running)
    assert "release run 'run-1' of ai_discovery_release holds it" in str(refused.value)
    # The holder's own retry gets it again; only the holder lets go.
    assert ledger.acquire(actor("run-1"), "release", always_running).run_id == "run-1"
    assert not ledger.release(actor("alert__1", "ai_discovery_rollback"))
    assert ledger.release(actor("run-1"))
    assert ledger.holder() is None
    assert ledger.acquire(actor("run-2"), "release", always_running).run_id == "run-2"


def test_environments_are_locked_apart(environment):
    Ledger(environment).acquire(actor("run-1"), "release", always_running)
    other = Ledger(environment + "-staging")
    assert other.acquire(actor("run-2"), "release", always_running).run_id == "run-2"


def test_a_holder_whose_run_ended_without_letting_go_is_taken_over_and_audited(environment):
    ledger = Ledger(environment)
    ledger.acquire(actor("crashed"), "release", always_running)
    asked = []

    def is_running(dag_id, run_id):
        asked.append((dag_id, run_id))
        return False

    holder = ledger.acquire(actor("next"), "rollback", is_running)
    assert (holder.run_id, holder.operation) == ("next", "rollback")
    assert asked == [("ai_discovery_release", "crashed")]
    recovered = ledger.audit(action="lock_recovered")
    assert recovered[-1]["detail"]["stale_holder"]["run_id"] == "crashed"


def test_concurrent_acquirers_get_exactly_one_lock(environment):
    winners, refused = [], []

    def take(i):
        try:
            Ledger(environment).acquire(actor(f"run-{i}"), "release", always_running)
            winners.append(i)
        except LockHeldError:
            refused.append(i)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(refused) == 7
    assert Ledger(environment).holder().run_id == f"run-{winners[0]}"


def test_a_run_that_lost_the_lock_is_refused_before_it_acts(environment):
    ledger = Ledger(environment)
    with pytest.raises(LockHeldError, match="nobody holds"):
        ledger.check_holds(actor("run-1"))
    ledger.acquire(actor("run-1"), "release", always_running)
    ledger.check_holds(actor("run-1"))
    ledger.acquire(actor("run-2"), "release", lambda d, r: False)  # run-1 judged dead
    with pytest.raises(LockHeldError, match="no longer holds"):
        ledger.check_holds(actor("run-1"))


def test_only_revisions_that_served_and_passed_are_rollback_targets(environment):
    ledger, run = Ledger(environment), actor("run-1")
    ledger.record_candidate(run, revision("analytics", "v1.0.0", "blue"))
    ledger.record_switch(run, "analytics", revision("analytics", "v1.0.0", "blue"), None)
    ledger.record_verdict(run, "analytics", "v1.0.0", PASSED)
    assert ledger.service_state("analytics").last_good_version == "v1.0.0"
    # A candidate that never served (its sibling failed its streak) is no target, nor a failed one.
    ledger.record_candidate(run, revision("analytics", "v1.1.0", "green"))
    assert ledger.revision("analytics", "v1.1.0").verdict == PENDING
    ledger.record_candidate(run, revision("analytics", "v1.2.0", "green"))
    ledger.record_switch(run, "analytics", revision("analytics", "v1.2.0", "green"), revision("analytics", "v1.0.0"))
    ledger.record_verdict(run, "analytics", "v1.2.0", FAILED, "error rate 30%")
    assert [r.version for r in ledger.good_revisions("analytics")] == ["v1.0.0"]
    state = ledger.service_state("analytics")
    assert (state.live_version, state.previous_version, state.last_good_version) == ("v1.2.0", "v1.0.0", "v1.0.0")
    ledger.record_restored(run, "analytics", revision("analytics", "v1.0.0"), "v1.2.0", ROLLED_BACK, "error rate")
    assert ledger.revision("analytics", "v1.2.0").verdict == ROLLED_BACK
    assert ledger.service_state("analytics").live_version == "v1.0.0"
    assert ledger.revision("analytics", "v1.2.0").reason == "error rate"


def test_a_version_released_again_is_judged_afresh(environment):
    ledger, run = Ledger(environment), actor("run-1")
    ledger.record_candidate(run, revision("analytics", "v1.0.0"))
    ledger.record_verdict(run, "analytics", "v1.0.0", FAILED, "inconclusive")
    ledger.record_candidate(actor("run-2"), revision("analytics", "v1.0.0", "green"))
    again = ledger.revision("analytics", "v1.0.0")
    assert (again.verdict, again.reason, again.run_id, again.name) == (PENDING, "", "run-2", "green")
    assert [r.version for r in ledger.run_revisions("run-2")] == ["v1.0.0"]


def test_the_audit_is_append_only_and_says_who_did_what(environment):
    ledger = Ledger(environment)
    ledger.record(actor("run-1"), "rollback", detail={"why": "checkout conversions dropped"})
    entry = ledger.audit(action="rollback")[-1]
    assert (entry["actor"], entry["run_id"], entry["detail"]["why"]) == (
        "tester",
        "run-1",
        "checkout conversions dropped",
    )
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id="varai_ledger").get_conn()
    try:
        with conn.cursor() as cur, pytest.raises(Exception, match="append-only"):
            cur.execute("DELETE FROM audit WHERE environment = %s", (environment,))
    finally:
        conn.close()
    assert ledger.audit(action="rollback")


def test_the_audit_can_be_read_for_one_version_alone(environment):
    ledger = Ledger(environment)
    ledger.record(actor("run-1"), WIDGETS_BUILT, None, "v1.0.0", {"manifest": "sha256:a"})
    ledger.record(actor("run-2"), WIDGETS_BUILT, None, "v1.1.0", {"manifest": "sha256:b"})
    ledger.record(actor("run-3"), WIDGETS_BUILT, None, "v1.0.0", {"manifest": "sha256:c"})
    ledger.record(actor("run-3"), "rollback", None, "v1.0.0")
    Ledger(environment + "-staging").record(actor("run-4"), WIDGETS_BUILT, None, "v1.0.0", {"manifest": "sha256:d"})

    builds = ledger.audit(action=WIDGETS_BUILT, version="v1.0.0")
    assert [(e["run_id"], e["version"], e["detail"]["manifest"]) for e in builds] == [
        ("run-1", "v1.0.0", "sha256:a"),
        ("run-3", "v1.0.0", "sha256:c"),
    ]
    assert [e["action"] for e in ledger.audit(version="v1.0.0")] == [WIDGETS_BUILT, WIDGETS_BUILT, "rollback"]
    assert ledger.audit(action=WIDGETS_BUILT, version="v9.9.9") == []
    # Without a version, every version's entries, as before.
    assert [e["version"] for e in ledger.audit(action=WIDGETS_BUILT)] == ["v1.0.0", "v1.1.0", "v1.0.0"]


def test_an_unknown_verdict_or_revision_is_refused(environment):
    ledger = Ledger(environment)
    with pytest.raises(LedgerError, match="unknown verdict"):
        ledger.record_verdict(actor("r"), "analytics", "v1.0.0", "great")
    with pytest.raises(LedgerError, match="not in the ledger"):
        ledger.record_verdict(actor("r"), "analytics", "v9.9.9", PASSED)


def test_an_unreachable_ledger_names_the_connection_and_never_the_password(environment, ledger_conn, monkeypatch):
    import json

    monkeypatch.setenv("AIRFLOW_CONN_VARAI_LEDGER_DOWN", json.dumps({**ledger_conn, "port": 1}))
    with pytest.raises(LedgerError) as failed:
        Ledger(environment, "varai_ledger_down").holder()
    assert "varai_ledger_down" in str(failed.value)
    assert ledger_conn["password"] not in str(failed.value)


def test_a_holder_that_means_to_let_go_at_a_set_time_is_refused_naming_that_time(environment):
    from datetime import UTC, datetime

    until = datetime(2027, 1, 3, 4, 0, tzinfo=UTC)
    Ledger(environment).acquire(actor("scheduled__w", "maintenance_window"), "maintenance", always_running, until)
    with pytest.raises(LockHeldError, match=r"maintenance run 'scheduled__w' .* until 2027-01-03 04:00:00 UTC"):
        Ledger(environment).acquire(actor("run-9"), "release", always_running)
