"""The release DAG's shape and its params contract (checked at trigger time, before any task)."""

import copy
import itertools

import pytest
from airflow.sdk.exceptions import ParamValidationError

from varai_deploy.services import SERVICE_NAMES
from varai_deploy.widgets.channels import CHANNELS


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    from varai_deploy.config import REPO_ROOT

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "ai_discovery_release.py"))
    return bag.dags["ai_discovery_release"]


def resolve(dag, **conf):
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


def test_phases_run_in_the_guide_order(dag):
    order = [
        "validate.request",
        "infrastructure.plan",
        "approval",
        "infrastructure.apply",
        "backend.candidates.deploy_candidate",
        "backend.traffic.switch_traffic",
        "backend.analysis",
        "widgets.build",
        "widgets.marketplace.publish",
        "widgets.marketplace.verify",
        "widgets.summary",
        "post_deploy.health_checks",
    ]
    for upstream, downstream in itertools.pairwise(order):
        assert upstream in dag.get_task(downstream).get_flat_relative_ids(upstream=True), (
            upstream,
            downstream,
        )


def test_candidates_get_the_outputs_from_apply_and_the_plan_is_applied_by_a_separate_task(dag):
    # Plan and apply are two tasks with the approval between them; apply returns the outputs.
    assert {t.task_id for t in dag.tasks if t.task_id.startswith("infrastructure.")} == {
        "infrastructure.plan",
        "infrastructure.apply",
    }
    assert dag.get_task("infrastructure.apply").upstream_task_ids == {"infrastructure.plan", "approval"}
    # Each candidate gets its target from the applied outputs (backend.targets: service, version, images).
    assert dag.get_task("backend.targets").upstream_task_ids == {"infrastructure.apply", "validate.request"}
    assert dag.get_task("backend.candidates.deploy_candidate").upstream_task_ids == {"backend.targets"}


def test_the_approval_sits_after_the_plan_and_before_anything_changes(dag):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    approval = dag.get_task("approval")
    assert isinstance(approval, ApprovalOperator)
    assert approval.upstream_task_ids == {"infrastructure.plan", "validate.request"}  # the plan, the services
    # A rejection or timeout fails for good; the one retry only recovers a resume Airflow failed itself.
    assert approval.retries == 1
    assert set(approval.params) == {"comment"}, "the approval form asks only for a comment"
    changing = ["infrastructure.apply", "backend.candidates.deploy_candidate", "backend.traffic.switch_traffic"]
    for task_id in changing:
        assert "approval" in dag.get_task(task_id).get_flat_relative_ids(upstream=True), task_id


def test_traffic_moves_only_after_every_candidate_passed_its_health_streak(dag):
    gate = dag.get_task("backend.all_candidates_healthy")
    assert gate.upstream_task_ids == {"backend.candidates.wait_healthy"}
    assert gate.trigger_rule == "all_success"
    assert "backend.all_candidates_healthy" in dag.get_task("backend.traffic.switch_traffic").upstream_task_ids
    retire = dag.get_task("backend.retire_previous")
    assert "backend.analysis" in retire.get_flat_relative_ids(upstream=True)


def test_a_failure_after_the_switch_always_reaches_the_rollback(dag):
    rollback = dag.get_task("backend.rollback_on_failure")
    assert rollback.trigger_rule == "all_done"
    assert "backend.traffic.switch_traffic" in rollback.get_flat_relative_ids(upstream=True)
    assert "post_deploy.health_checks" in rollback.get_flat_relative_ids(upstream=False)


def test_validation_fails_fast_without_retries(dag):
    for task_id in (
        "validate.request",
        "validate.marketplaces",
        "validate.prerequisites",
        "validate.credentials",
        "validate.resources",
    ):
        assert dag.get_task(task_id).retries == 0


def test_deferred_waits_keep_a_retry_for_airflows_stale_executor_event(dag):
    # apache/airflow#72716: a resumed deferred task can be failed by the scheduler; a genuine
    # failure (candidate never healthy) raises AirflowFailException and is never retried.
    for task_id in ("backend.candidates.wait_healthy", "backend.analysis", "widgets.marketplace.verify"):
        assert dag.get_task(task_id).retries >= 1, task_id


def test_the_environment_is_locked_around_everything_that_changes_it(dag):
    lock, finish = dag.get_task("lock"), dag.get_task("finish")
    # A refusal fails for good (AirflowFailException); a lost try (apache/airflow#72716) is retried.
    assert lock.is_setup and finish.is_teardown and lock.retries >= 1
    assert "validate.credentials" in lock.get_flat_relative_ids(upstream=True)
    changing = ["infrastructure.apply", "backend.traffic.switch_traffic", "backend.rollback_on_failure"]
    changing += ["widgets.marketplace.publish", "widgets.rollback_on_failure", "post_deploy.health_checks"]
    for task_id in changing:
        assert task_id in lock.get_flat_relative_ids(upstream=False), task_id
        assert task_id in finish.get_flat_relative_ids(upstream=True), task_id
    # The lock serialises one environment; releases to different environments run side by side.
    assert dag.max_active_runs > 1


def test_defaults_release_every_service_to_the_sandbox(dag):
    params = resolve(dag, version="v1.4.2")
    assert params["environment"] == "sandbox"
    assert params["services"] == list(SERVICE_NAMES)
    assert params["marketplaces"] == ["html", "shopify", "woocommerce", "magento"]


@pytest.mark.parametrize(
    "conf",
    [
        {},  # version is required
        {"version": "v1; rm -rf /"},
        {"version": "1.0"},
        {"version": "v1.0.0\n"},
        {"version": "v1.0.0", "environment": "moon"},
        {"version": "v1.0.0", "services": ["billing"]},
        {"version": "v1.0.0", "services": []},
        {"version": "v1.0.0", "services": ["analytics", "analytics"]},
        {"version": "v1.0.0", "marketplaces": ["etsy"]},
        {"version": "v1.0.0", "marketplaces": ["html", "html"]},
        {"version": "v1.0.0", "marketplaces": "html; id"},
    ],
)
def test_bad_params_are_refused(dag, conf):
    with pytest.raises(ParamValidationError):
        resolve(dag, **conf)


def test_pre_release_tags_are_accepted(dag):
    assert resolve(dag, version="v1.5.0-rc.1")["version"] == "v1.5.0-rc.1"


def test_a_backend_only_release_publishes_no_widget(dag):
    assert resolve(dag, version="v1.4.2", marketplaces=[])["marketplaces"] == []
    # What the form sends for an emptied multi-select; the channels task reads it as none.
    assert resolve(dag, version="v1.4.2", marketplaces=None)["marketplaces"] is None


def test_the_form_offers_the_allowed_services_and_marketplaces_as_choices(dag):
    """An array Param with ``examples`` is a multi-select in the trigger form; the schema still
    holds the REST API and the CLI to the same values."""
    services, marketplaces = dag.params.get_param("services"), dag.params.get_param("marketplaces")
    assert services.schema["examples"] == services.schema["items"]["enum"] == list(SERVICE_NAMES)
    assert marketplaces.schema["examples"] == marketplaces.schema["items"]["enum"] == list(CHANNELS)
    assert set(marketplaces.schema["values_display"]) == set(CHANNELS)
    assert "null" in marketplaces.schema["type"], "an empty selection must not be 'This field is required'"
    assert "null" not in services.schema["type"], "a release releases at least one service"


def test_widgets_go_out_only_after_the_backend_passed(dag):
    gate = dag.get_task("widgets.backend_released")
    upstream = gate.get_flat_relative_ids(upstream=True)
    assert {"backend.analysis", "backend.rollback_on_failure", "backend.retire_previous"} <= upstream
    assert gate.trigger_rule == "none_failed"
    assert "widgets.build" in gate.downstream_task_ids


def test_each_marketplace_is_published_then_verified_then_opened_on_a_storefront_on_its_own(dag):
    publish = dag.get_task("widgets.marketplace.publish")
    verify = dag.get_task("widgets.marketplace.verify")
    storefront = dag.get_task("widgets.marketplace.storefront")
    assert type(publish.task_group).__name__ == "MappedTaskGroup" and verify.task_group is publish.task_group
    assert storefront.task_group is publish.task_group and storefront.map_index_template == "{{ task.channel }}"
    assert "widgets.marketplace.publish" in verify.upstream_task_ids
    assert "widgets.marketplace.verify" in storefront.upstream_task_ids
    # The summary runs whatever each channel did, so it can say which are live.
    summary = dag.get_task("widgets.summary")
    assert summary.trigger_rule == "all_done"
    assert "widgets.marketplace.storefront" in summary.upstream_task_ids
    # Phase 4's verdict on the backend (and its rollback) runs whatever the storefronts did.
    rollback = dag.get_task("widgets.rollback_on_failure")
    assert rollback.trigger_rule == "all_done"
    assert "widgets.marketplace.storefront" in rollback.upstream_task_ids


def test_post_deploy_checks_wait_for_the_backend_too(dag):
    upstream = dag.get_task("post_deploy.health_checks").get_flat_relative_ids(upstream=True)
    assert {"backend.rollback_on_failure", "widgets.summary", "widgets.rollback_on_failure"} <= upstream


def test_every_mapped_backend_task_is_labelled_by_its_service(dag):
    mapped = [t for t in dag.tasks if t.task_id.startswith("backend.") and getattr(t, "map_index_template", None)]
    labelled = {t.task_id: t.map_index_template for t in mapped}
    for task_id in (
        "backend.candidates.deploy_candidate",
        "backend.candidates.wait_healthy",
        "backend.traffic.switch_traffic",
        "backend.traffic.verify_gateway",
        "backend.retire_previous",
    ):
        assert "service" in labelled.get(task_id, ""), (task_id, labelled)


def test_a_dry_run_stops_before_the_lock_whatever_the_trigger_rules_below_and_only_reports(dag):
    assert resolve(dag, version="v1.0.0")["dry_run"] is False
    proceed = dag.get_task("proceed")
    assert proceed.ignore_downstream_trigger_rules is True
    assert "proceed" in dag.get_task("lock").upstream_task_ids
    # Everything that changes something, or runs whatever happened before it, is below the gate.
    below = proceed.get_flat_relative_ids(upstream=False)
    assert {"lock", "finish", "backend.rollback_on_failure", "widgets.summary", "post_deploy.health_checks"} <= below
    # The report's own plan runs only for a dry run, and nothing of the dry run changes anything.
    dry = {t.task_id for t in dag.tasks if t.task_id.startswith("dry_run.")}
    assert dry == {"dry_run.requested", "dry_run.plan", "dry_run.report"}
    assert not dry & below
    assert "validate.promotion" in dag.get_task("dry_run.report").get_flat_relative_ids(upstream=True)
