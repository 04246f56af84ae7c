"""Release the AI Discovery platform: the deployment guide's phases as one DAG.

validate -> lock -> infrastructure (Terraform plan, a human's approval where the environment requires
it, apply) -> backend (candidates per service, then traffic per service,
then analysis against real metrics, then retire or roll back) -> widgets (build once, then publish and
verify per marketplace) -> post_deploy (health through the gateway, then the widget's search from a
storefront origin and the gateway's security, the guide's key metrics and the alert rules).

Trigger it from the UI form, from CI through the REST API
(``POST /api/v2/dags/ai_discovery_release/dagRuns`` with ``{"conf": {"version": "v1.4.2", ...}}``),
or ``./airflow.sh dags test ai_discovery_release -c '{"version": "v1.4.2"}'``.
Traffic only moves once every candidate passed its health streak; a candidate that never gets
healthy fails the run and the live revision keeps serving. After the switch the release is judged
on real metrics (health checks, error rate, p95 latency); a broken rule puts every switched
service back on the revision it replaced and fails the run with the rule and the measured value.
Widgets are published only once the backend release passed; one marketplace failing does not stop
the others, the summary says which are live, and clearing that marketplace's failed task retries
only it. A shopper's search that fails on every storefront (Phase 4) rolls the backend back too. A
version already published with other bytes is refused, never overwritten. The start, the
approval request and its answer, and the outcome (with a rollback's rule, value and threshold) go to
Slack and the email endpoint as the environment routes each severity. A dry run (``dry_run``)
validates and plans, reports per service and marketplace what would change, and changes nothing.
"""

from __future__ import annotations

from airflow.sdk import Param, TaskGroup, dag, task, task_group

from varai_deploy.blue_green_group import blue_green_tasks
from varai_deploy.config import VERSION_PATTERN
from varai_deploy.dag_params import (
    FAIL_FAST,
    OPERATIONS_DAG,
    default_args,
    dry_run_param,
    environment_param,
    marketplaces_param,
    services_param,
)
from varai_deploy.operators.approval import ReleaseApprovalOperator
from varai_deploy.operators.environment import FinishOperationOperator, LockEnvironmentOperator
from varai_deploy.operators.terraform import TerraformApplyOperator, TerraformPlanOperator
from varai_deploy.operators.widgets import (
    BuildWidgetsOperator,
    PublishWidgetOperator,
    StorefrontCheckOperator,
    StorefrontRollbackOperator,
    VerifyWidgetOperator,
    WidgetSummaryOperator,
)


@dag(
    dag_id="ai_discovery_release",
    **OPERATIONS_DAG,
    tags=["varai", "release"],
    doc_md=__doc__,
    default_args=default_args(),
    params={
        "version": Param(
            type="string",
            pattern=VERSION_PATTERN,
            title="Version",
            description="The release tag to deploy: v, then MAJOR.MINOR.PATCH, e.g. v1.4.2 (pre-release: v1.5.0-rc.1)",
        ),
        "environment": environment_param("Where to release: the local sandbox, staging or production"),
        "services": services_param("Which backend services to release (default: all five)"),
        "marketplaces": marketplaces_param(
            "Where to publish the storefront widget (default: all four; none selected: a backend-only release)"
        ),
        "dry_run": dry_run_param(),
    },
)
def ai_discovery_release():
    with TaskGroup("validate", tooltip="Phase 1: fail fast, before anything is changed") as validate:

        @task(**FAIL_FAST)
        def request(params=None) -> list[str]:
            """Checks version, environment and services again at run time; returns the services to release."""
            from varai_deploy.validation import check_request

            return check_request(params["version"], params["environment"], params["services"])["services"]

        @task(**FAIL_FAST)
        def prerequisites(params=None) -> dict:
            from varai_deploy.config import load_environment
            from varai_deploy.validation import check_prerequisites

            return check_prerequisites(load_environment(params["environment"]))

        @task(**FAIL_FAST)
        def marketplaces(params=None) -> list[str]:
            """The widget channels to publish, among those the environment has."""
            from varai_deploy.config import load_environment
            from varai_deploy.widgets.channels import check_channels

            env = load_environment(params["environment"])
            return check_channels(params["marketplaces"] or [], allowed=env.marketplaces)  # none: backend only

        @task(**FAIL_FAST)
        def credentials(channels: list[str], params=None) -> dict:
            from varai_deploy.config import load_environment
            from varai_deploy.validation import check_credentials

            return check_credentials(load_environment(params["environment"]), channels)

        @task(**FAIL_FAST)
        def resources(services: list[str], params=None) -> dict:
            from varai_deploy.config import load_environment
            from varai_deploy.validation import check_resources

            return check_resources(load_environment(params["environment"]), services)

        @task(**FAIL_FAST)
        def promotion(services: list[str], channels: list[str], params=None) -> dict:
            """Production: only a version that passed staging, its widgets built the same."""
            from varai_deploy.config import load_environment
            from varai_deploy.validation import check_promotion

            env = load_environment(params["environment"])
            return check_promotion(env, params["version"], services, channels)

        @task(**FAIL_FAST)
        def security_scan(channels: list[str], params=None) -> dict:
            """Secrets in the widget sources, in every package the release would ship and in the Terraform
            module; the module's misconfigurations (checkov); the npm package's advisories. Offline."""
            from varai_deploy.config import load_environment
            from varai_deploy.security.scan import format_report, scan_release

            report = scan_release(load_environment(params["environment"]), params["version"], channels)
            print(format_report(report))
            return report

        checked = request()
        channels = marketplaces()
        checks = [
            prerequisites(),
            credentials(channels),
            resources(checked),
            promotion(checked, channels),
            security_scan(channels),
        ]
        checked >> channels >> checks

    @task.short_circuit(ignore_downstream_trigger_rules=True)
    def proceed(params=None) -> bool:
        """A dry run ends here: nothing after it runs, whatever its trigger rule (the lock included)."""
        return not params["dry_run"]

    with TaskGroup("dry_run", tooltip="Only for a dry run: plan, then say what the release would change") as dry_run:

        @task.short_circuit
        def requested(params=None) -> bool:
            return bool(params["dry_run"])

        dry_plan = TerraformPlanOperator(task_id="plan")

        @task
        def report(plan: dict, services: list[str], channels: list[str], params=None) -> dict:
            """Per service and marketplace what the release would do, from the platform and the ledger."""
            from varai_deploy.config import load_environment
            from varai_deploy.dry_run import describe_release, format_report

            env = load_environment(params["environment"])
            described = describe_release(env, params["version"], services, channels, plan)
            print(format_report(described))
            return described

        requested() >> dry_plan
        report(dry_plan.output, checked, channels)

    with TaskGroup(
        "infrastructure", tooltip="Phase 2: Terraform plan, then apply what was planned and hand on its outputs"
    ) as infra:
        plan = TerraformPlanOperator(task_id="plan")
        # Apply plans again on its own worker and refuses anything but the planned changes; it returns
        # the environment's whitelisted outputs (terraform.outputs), e.g. {"images": {service: image}}.
        apply = TerraformApplyOperator(task_id="apply", plan=plan.output)

    # Where the environment requires it (production always): a human approves what the plan showed,
    # before Terraform applies or traffic moves; elsewhere it passes at once.
    approval = ReleaseApprovalOperator(task_id="approval", plan=plan.output, services=checked)
    plan >> approval >> apply

    with TaskGroup("backend", tooltip="Phase 3: blue-green deployment of each service") as backend:

        @task
        def targets(services: list[str], infra: dict, params=None) -> list[dict]:
            """Each service to release, at the release's version, from the images Terraform applied."""
            return [{"service": s, "version": params["version"], "infra": infra} for s in services]

        blue_green_tasks("backend", targets(checked, apply.output), services=checked, versions="{{ params.version }}")

    with TaskGroup(
        "widgets", tooltip="Phase 4: publish the storefront widget, check it as merchants get it"
    ) as widgets:

        @task(trigger_rule="none_failed")
        def backend_released(services: list[str], params=None) -> bool:
            """Widgets go out only with a backend the ledger has live and passed, service by service."""
            from airflow.sdk.exceptions import AirflowSkipException

            from varai_deploy.config import load_environment
            from varai_deploy.ledger import PASSED, ledger_for

            ledger = ledger_for(load_environment(params["environment"]))
            verdicts = {s: ledger.revision(s, params["version"]) for s in services}
            unreleased = [
                f"{s} ({r.verdict if r else 'not deployed'})"
                for s, r in verdicts.items()
                if not r or r.verdict != PASSED
            ]
            if unreleased:
                raise AirflowSkipException(
                    f"the backend is not released: {', '.join(unreleased)}; no widget is published"
                )
            return True

        build = BuildWidgetsOperator(task_id="build")

        @task_group(
            group_id="marketplace",
            tooltip="Publish one channel, check it from the consumer side, then on a storefront in a browser",
        )
        def marketplace(channel: str, manifest: dict, services: list[str]):
            publish = PublishWidgetOperator(task_id="publish", channel=channel, manifest=manifest)
            verify = VerifyWidgetOperator(
                task_id="verify", channel=channel, manifest=manifest, publications=publish.output
            )
            verify >> StorefrontCheckOperator(
                task_id="storefront",
                channel=channel,
                manifest=manifest,
                publications=publish.output,
                services=services,
            )

        published = marketplace.partial(manifest=build.output, services=checked).expand(channel=channels)
        summary = WidgetSummaryOperator(
            task_id="summary",
            channels=channels,
            group_id="widgets.marketplace",
            gate_task_id="widgets.backend_released",
            build_task_id="widgets.build",
        )
        backend_released(checked) >> build
        published >> summary
        # A search that failed on every storefront is the backend's: it goes back as a failed analysis would.
        published >> StorefrontRollbackOperator(
            task_id="rollback_on_failure", services=checked, analysis_task_id="backend.analysis"
        )

    with TaskGroup(
        "post_deploy", tooltip="Phase 5: health, the widget's search, security, performance and monitoring"
    ) as post_deploy:

        @task(trigger_rule="none_failed")
        def health_checks(released: list[str], params=None) -> dict:
            from varai_deploy.config import load_environment
            from varai_deploy.post_deploy import check_gateway, format_summary

            report = check_gateway(load_environment(params["environment"]), params["version"], released)
            print(f"Release {params['version']} on {params['environment']}:\n{format_summary(report)}")
            return report

        @task
        def integration(released: list[str], params=None) -> dict:
            """The widget's search through the gateway, from a storefront origin, answered by this version."""
            from varai_deploy.config import load_environment
            from varai_deploy.gateway_checks import check_search

            found = check_search(load_environment(params["environment"]), params["version"], released)
            print(f"Search from {found['origin']}: {found['suggestions']} suggestions from {found['version']}")
            return found

        @task
        def security(params=None) -> dict:
            """CORS, API keys, rate limit, security headers and TLS as the environment's gateway: policy says."""
            from varai_deploy.config import load_environment
            from varai_deploy.gateway_checks import check_security, format_report

            report = check_security(load_environment(params["environment"]))
            print(f"Gateway security on {params['environment']}:\n{format_report(report)}")
            return report

        @task
        def performance(released: list[str], params=None) -> dict:
            """The guide's key metrics (p95, error rate) on the released revisions, from the metrics backend."""
            from varai_deploy.config import load_environment
            from varai_deploy.post_deploy_metrics import check_performance

            report = check_performance(load_environment(params["environment"]), params["version"], released)
            for service, row in report.items():
                print(f"{service}: {row}")
            return report

        @task
        def monitoring(params=None) -> dict:
            """The guide's critical and warning alert rules: loaded in the rule evaluator, and evaluating."""
            from varai_deploy.config import load_environment
            from varai_deploy.post_deploy_metrics import check_monitoring

            report = check_monitoring(load_environment(params["environment"]))
            for alert, state in report.items():
                print(f"{alert}: {state}")
            return report

        healthy = health_checks(checked)
        healthy >> integration(checked) >> security()
        healthy >> [performance(checked), monitoring()]

    # One operation per environment at a time: the lock is the setup, its release the teardown that
    # runs however the tasks between them ended.
    lock = LockEnvironmentOperator(
        task_id="lock", operation="release", services=checked, version="{{ params.version }}"
    )
    finish = FinishOperationOperator(
        task_id="finish",
        operation="release",
        services=checked,
        version="{{ params.version }}",
        emit_outcome=True,
        widgets_summary_task_id="widgets.summary",
        post_deploy_group="post_deploy",
    )
    validate >> proceed() >> lock >> infra
    validate >> dry_run
    backend >> widgets >> post_deploy
    backend >> post_deploy
    [widgets, post_deploy] >> finish
    finish.as_teardown(setups=lock)


ai_discovery_release()
