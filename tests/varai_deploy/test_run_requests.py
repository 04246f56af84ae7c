"""The run-requests middleware over HTTP (a small app behind it, FastAPI's TestClient), with the refusals
the API server really gives: each comes from the DAG's serialized params, as the server checks them.
The path through a real API server is in tests/integration/test_rest_api.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from varai_deploy.run_requests import RunRequests, in_words, name_request, run_id_for

NOW = datetime(2026, 12, 2, 15, 30, 12, 345678, tzinfo=UTC)


def server_refusal(dag_id: str, **conf) -> str:
    """The ``detail`` Airflow's API server answers for ``conf``: its serialized params' own error."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    from varai_deploy.config import REPO_ROOT

    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / f"{dag_id}.py")).dags[dag_id]
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    with pytest.raises(ParamValidationError) as refused:
        serialized.params.deep_merge(conf).validate()
    return str(refused.value)


@pytest.fixture
def client() -> TestClient:
    """An app that answers a trigger with what it received, or 400 with ``refuse`` as Airflow would."""
    app = FastAPI()

    @app.post("/api/v2/dags/{dag_id}/dagRuns")
    async def trigger(dag_id: str, request: Request):
        body = await request.json()
        if refusal := body.get("conf", {}).get("refuse"):
            raise HTTPException(400, refusal)
        return {"received": body, "length": len(await request.body()), "declared": request.headers["content-length"]}

    @app.post("/api/v2/dags/{dag_id}/clearTaskInstances")
    async def other(dag_id: str, request: Request):
        raise HTTPException(400, "Invalid input for param version: kept\n\nas it was")

    app.add_middleware(RunRequests)
    return TestClient(app)


def test_a_release_without_an_id_is_named_by_its_version_environment_and_time():
    body = name_request("ai_discovery_release", {"conf": {"version": "v1.4.2", "environment": "staging"}}, NOW)
    assert body["dag_run_id"] == "release__v1.4.2__staging__20261202T153012.345"
    assert body["note"] == "Release v1.4.2 to staging: all services, widgets to all marketplaces"


def test_an_id_and_a_note_the_caller_chose_are_kept():
    request = {"dag_run_id": "mine", "note": "hotfix for INC-42", "conf": {"version": "v1.4.2"}}
    assert name_request("ai_discovery_release", request, NOW) == request


def test_the_note_says_which_services_and_marketplaces():
    conf = {"version": "v2.0.0", "services": ["analytics", "ai-discovery"], "marketplaces": None}
    assert name_request("ai_discovery_release", {"conf": conf}, NOW)["note"] == (
        "Release v2.0.0 to sandbox: analytics, ai-discovery, backend only (no widgets)"
    )
    conf["marketplaces"] = ["shopify"]
    assert name_request("ai_discovery_release", {"conf": conf}, NOW)["note"].endswith("widgets to shopify")
    conf["dry_run"] = True
    assert name_request("ai_discovery_release", {"conf": conf}, NOW)["note"].startswith(
        "Dry run, changing nothing: Release v2.0.0 to sandbox"
    )


def test_a_rollback_is_named_by_its_target_and_noted_with_its_reason():
    conf = {"environment": "sandbox", "reason": "error rate  after\nv1.4.2", "services": ["analytics"]}
    body = name_request("ai_discovery_rollback", {"conf": conf}, NOW)
    assert body["dag_run_id"] == "rollback__previous__sandbox__20261202T153012.345"
    assert body["note"] == "Rollback of sandbox to previous: analytics. Reason: error rate after v1.4.2"


@pytest.mark.parametrize(
    "conf",
    [
        {"version": "v1.0; rm -rf /"},
        {"version": "v1.0.0", "environment": "qa"},
        {"version": ["v1.0.0"]},
        {"environment": "sandbox"},
    ],
)
def test_values_the_params_would_refuse_never_go_into_a_run_id(conf):
    assert run_id_for("ai_discovery_release", conf, NOW) is None
    assert "dag_run_id" not in name_request("ai_discovery_release", {"conf": conf}, NOW)


def test_a_malformed_version_is_refused_in_words():
    detail = server_refusal("ai_discovery_release", version="1.0")
    assert "Failed validating" in detail, "the server's own detail is jsonschema's dump"
    assert in_words(detail) == (
        "Invalid input for param version: '1.0' is not a release tag: v, then MAJOR.MINOR.PATCH in digits, "
        "e.g. v1.4.2 (a pre-release adds a suffix, e.g. v1.5.0-rc.1)"
    )


def test_a_rollback_target_and_an_empty_reason_are_refused_in_words():
    target = in_words(server_refusal("ai_discovery_rollback", reason="bad", target="last"))
    assert target == (
        "Invalid input for param target: 'last' is not 'previous' or a release tag such as v1.4.1 "
        "(v, then MAJOR.MINOR.PATCH; a maintenance rebuild adds +sec.YYYYMMDD)"
    )
    reason = in_words(server_refusal("ai_discovery_rollback", reason="   "))
    assert reason.startswith("Invalid input for param reason: '   ' is not a reason")


def test_an_unknown_environment_keeps_jsonschemas_first_line_only():
    detail = in_words(server_refusal("ai_discovery_release", version="v1.0.0", environment="qa"))
    assert detail == "Invalid input for param environment: 'qa' is not one of ['sandbox', 'staging', 'production']"


def test_over_http_the_request_is_named_and_the_refusal_worded(client):
    answer = client.post("/api/v2/dags/ai_discovery_release/dagRuns", json={"conf": {"version": "v1.4.2"}}).json()
    assert answer["received"]["dag_run_id"].startswith("release__v1.4.2__sandbox__")
    assert int(answer["declared"]) == answer["length"]

    refusal = server_refusal("ai_discovery_release", version="1.0")
    refused = client.post("/api/v2/dags/ai_discovery_release/dagRuns", json={"conf": {"refuse": refusal}})
    assert refused.status_code == 400
    assert refused.json() == {"detail": in_words(refusal)}
    assert int(refused.headers["content-length"]) == len(refused.content)


def test_other_dags_and_other_routes_pass_through_untouched(client):
    answer = client.post("/api/v2/dags/someone_elses/dagRuns", json={"conf": {"version": "v1.4.2"}}).json()
    assert answer["received"] == {"conf": {"version": "v1.4.2"}}
    other = client.post("/api/v2/dags/ai_discovery_release/clearTaskInstances", json={})
    assert other.json() == {"detail": "Invalid input for param version: kept\n\nas it was"}
