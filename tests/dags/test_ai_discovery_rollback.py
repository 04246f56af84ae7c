"""The rollback DAG's shape and params contract."""

import copy

import pytest
from airflow.sdk.exceptions import ParamValidationError


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    from varai_deploy.config import REPO_ROOT

    return DagBag(dag_folder=str(REPO_ROOT / "dags" / "ai_discovery_rollback.py")).dags["ai_discovery_rollback"]


def resolve(dag, **conf):
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


def test_defaults_roll_every_service_back_to_the_previous_revision(dag):
    params = resolve(dag, reason="p95 over 5s since 02:00")
    assert (params["environment"], params["target"]) == ("sandbox", "previous")
    assert len(params["services"]) == 5


@pytest.mark.parametrize(
    "conf",
    [
        {},  # no reason
        {"reason": ""},
        {"reason": "   "},
        {"reason": "x", "target": "latest"},
        {"reason": "x", "target": "v1.0.0; rm -rf /"},
        {"reason": "x", "environment": "moon"},
        {"reason": "x", "services": ["billing"]},
    ],
)
def test_bad_params_are_refused(dag, conf):
    with pytest.raises(ParamValidationError):
        resolve(dag, **conf)


def test_a_named_target_is_a_release_tag(dag):
    assert resolve(dag, reason="x", target="v1.4.1")["target"] == "v1.4.1"
    # or a maintenance window's rebuild of one
    assert resolve(dag, reason="x", target="v1.4.1+sec.20261206")["target"] == "v1.4.1+sec.20261206"


def test_traffic_moves_only_once_every_target_is_healthy(dag):
    gate = dag.get_task("restore.all_targets_healthy")
    assert gate.upstream_task_ids == {"restore.wait_healthy"}
    assert dag.get_task("traffic.switch_traffic").upstream_task_ids == {"restore.all_targets_healthy"}
    assert "traffic.verify_gateway" in dag.get_task("record").upstream_task_ids
    assert dag.get_task("validate.targets").retries == 0


def test_targets_are_chosen_under_the_environment_lock_and_every_ending_is_recorded(dag):
    lock, finish = dag.get_task("validate.lock"), dag.get_task("finish")
    assert lock.is_setup and finish.is_teardown
    assert "validate.lock" in dag.get_task("validate.targets").upstream_task_ids
    for task_id in ("validate.targets", "traffic.switch_traffic", "record"):
        assert task_id in lock.get_flat_relative_ids(upstream=False)
        assert task_id in finish.get_flat_relative_ids(upstream=True)


def test_every_mapped_task_is_labelled_by_its_service(dag):
    for task_id in (
        "restore.prepare_target",
        "restore.wait_healthy",
        "traffic.switch_traffic",
        "traffic.verify_gateway",
    ):
        assert "service" in (dag.get_task(task_id).map_index_template or ""), task_id
