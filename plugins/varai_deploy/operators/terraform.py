"""Terraform as three steps: plan (summary to XCom), apply only when the plan has changes, outputs."""

from __future__ import annotations

import re
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from varai_deploy.hooks.terraform import TerraformError, TerraformHook
from varai_deploy.operators.base import EnvironmentOperator
from varai_deploy.services import SERVICES


def terraform_for(env) -> TerraformHook:
    """The hook for an environment's module, with its state where the environment keeps state."""
    from varai_deploy.sandbox import SandboxSettings

    work_dir = SandboxSettings.load().home / "terraform" / env.name
    if env.terraform.backend == "local":
        backend = {"path": str(work_dir / "terraform.tfstate")}
    else:
        backend = {"bucket": env.terraform.state_bucket, "prefix": env.terraform.state_prefix or env.name}
    return TerraformHook(env.terraform.module, work_dir, backend_config=backend)


def release_variables(env, version: str) -> dict[str, Any]:
    from varai_deploy.hooks.gateway import GatewayHook

    return {
        "environment": env.name,
        "release_version": version,
        "services": {
            name: {"prefix": SERVICES[name].prefix, "health_path": SERVICES[name].health_path} for name in env.services
        },
        "gateway_url": GatewayHook(env.gateway_conn_id).url,
    }


class TerraformPlanOperator(EnvironmentOperator):
    """init + plan -detailed-exitcode -out; returns {changes, summary, plan_file}."""

    template_fields = ("environment", "version")

    def __init__(self, *, version: str = "{{ params.version }}", **kwargs):
        super().__init__(**kwargs)
        self.version = version

    def execute(self, context) -> dict[str, Any]:
        hook = terraform_for(self.env_config)
        hook.init()
        run_id = re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
        plan_file = hook.work_dir / "plans" / f"{run_id}.tfplan"
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        result = hook.plan(release_variables(self.env_config, self.version), plan_file)
        self.log.info("Terraform plan for %s %s:\n%s", self.environment, self.version, result.summary)
        return {"changes": result.changes, "summary": result.summary, "plan_file": result.plan_file}


class TerraformApplyOperator(EnvironmentOperator):
    """Applies the saved plan; skipped when the plan has no changes. Safe to re-run (stale plan = done)."""

    template_fields = ("environment", "plan")

    def __init__(self, *, plan: Any, **kwargs):
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context) -> None:
        if not self.plan["changes"]:
            raise AirflowSkipException("Terraform plan has no changes: nothing to apply")
        hook = terraform_for(self.env_config)
        try:
            hook.apply(self.plan["plan_file"])
        except TerraformError as exc:
            if "Saved plan is stale" not in str(exc):
                raise
            # A retry after a crash mid-apply: the state moved on, so re-plan and converge.
            fresh = hook.plan(None, hook.work_dir / "plans" / "retry.tfplan")
            if fresh.changes:
                hook.apply(fresh.plan_file)


class TerraformOutputOperator(EnvironmentOperator):
    """Reads `terraform output -json` into XCom for the steps that follow."""

    def execute(self, context) -> dict[str, Any]:
        hook = terraform_for(self.env_config)
        hook.init()
        outputs = hook.outputs()
        if not outputs:
            raise TerraformError("terraform state has no outputs: was the module ever applied?")
        return outputs
