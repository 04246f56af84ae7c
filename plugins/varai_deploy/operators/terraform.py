"""Terraform as two steps that share no file: plan (a fingerprint to XCom), then apply (re-planned, checked).

Workers share no disk, so each step runs init + plan in its own scratch directory against the shared
state. The plan step hands on only {changes, summary, fingerprint}; the apply step plans again and
applies only what has the same fingerprint, which is what an approval between the two approved.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from varai_deploy.hooks.terraform import OutputError, PlanResult, TerraformHook, check_outputs
from varai_deploy.operators.base import EnvironmentOperator
from varai_deploy.services import SERVICES

NO_CHANGES = "Terraform plan has no changes: nothing to apply"
CHANGED_SINCE_PLAN = "the infrastructure changed since it was planned: re-run the release to plan again"


def terraform_for(env, work_dir=None) -> TerraformHook:
    """The hook for an environment's module and state; its own scratch dir unless ``work_dir`` is given."""
    tf = env.terraform
    if tf.backend == "local":
        backend = {"path": str(tf.state_path)}
    else:
        backend = {"bucket": tf.state_bucket, "prefix": tf.state_prefix or env.name}
    return TerraformHook(tf.module, work_dir, backend_config=backend, binary=tf.binary)


def release_variables(env, version: str) -> dict[str, Any]:
    from varai_deploy.hooks.gateway import GatewayHook

    return {
        **env.terraform.variables,
        "environment": env.name,
        "release_version": version,
        "services": {
            name: {"prefix": SERVICES[name].prefix, "health_path": SERVICES[name].health_path} for name in env.services
        },
        "gateway_url": GatewayHook(env.gateway_conn_id).url,
    }


def _check_outputs(env, plan: PlanResult) -> None:
    try:
        check_outputs(env.terraform.outputs, plan.output_sensitivity)
    except OutputError as exc:
        raise AirflowFailException(str(exc)) from exc


class TerraformPlanOperator(EnvironmentOperator):
    """init + plan in a scratch dir; returns {changes, summary, fingerprint}, never a path or a value."""

    template_fields = ("environment", "version")

    def __init__(self, *, version: str = "{{ params.version }}", **kwargs):
        super().__init__(**kwargs)
        self.version = version

    def execute(self, context) -> dict[str, Any]:
        env = self.env_config
        with terraform_for(env) as hook:
            hook.init()
            result = hook.plan(release_variables(env, self.version))
        self.log.info("Terraform plan for %s %s:\n%s", self.environment, self.version, result.summary)
        _check_outputs(env, result)
        return {"changes": result.changes, "summary": result.summary, "fingerprint": result.fingerprint}


class TerraformApplyOperator(EnvironmentOperator):
    """Re-plans, applies only the plan that was planned, returns the whitelisted outputs.

    A retry converges: when the state already matches (an earlier attempt applied it) there is
    nothing to apply; any other difference from the planned fingerprint is refused, unapplied.
    """

    template_fields = ("environment", "version", "plan")

    def __init__(self, *, plan: Any, version: str = "{{ params.version }}", **kwargs):
        super().__init__(**kwargs)
        self.plan = plan
        self.version = version

    def execute(self, context) -> dict[str, Any]:
        planned = self.plan
        if not isinstance(planned, dict) or not planned.get("fingerprint"):
            raise AirflowFailException("apply needs the plan task's result {changes, summary, fingerprint}")
        env = self.env_config
        with terraform_for(env) as hook:
            hook.init()
            fresh = hook.plan(release_variables(env, self.version))
            _check_outputs(env, fresh)
            if not fresh.changes:
                already = " (the state already matches what was planned)" if planned.get("changes") else ""
                self.log.info("%s%s", NO_CHANGES, already)
            elif fresh.fingerprint != planned["fingerprint"]:
                self.log.info("Terraform plan now, for %s %s:\n%s", self.environment, self.version, fresh.summary)
                raise AirflowFailException(
                    f"{CHANGED_SINCE_PLAN} (planned {planned['fingerprint']}, now {fresh.fingerprint})"
                )
            else:
                self.log.info("Applying the plan for %s %s:\n%s", self.environment, self.version, fresh.summary)
                hook.apply(fresh.plan_file)
            try:
                return hook.outputs(env.terraform.outputs)
            except OutputError as exc:
                raise AirflowFailException(str(exc)) from exc
