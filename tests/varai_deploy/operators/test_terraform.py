"""The infrastructure tasks, run as a worker runs them (``execute``), on real terraform and the real sandbox module.

Every task gets its own TMPDIR, deleted once it is done, so plan and apply demonstrably share no file:
only the state under the sandbox home (a tmp dir per test).
"""

import dataclasses
import json
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from varai_deploy.config import REPO_ROOT, load_environment
from varai_deploy.hooks.terraform import TerraformHook
from varai_deploy.operators.terraform import (
    CHANGED_SINCE_PLAN,
    NO_CHANGES,
    TerraformApplyOperator,
    TerraformPlanOperator,
    release_variables,
    terraform_for,
)

SECRET = "s3cr3t-token-never-in-xcom"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "sandbox-home"
    monkeypatch.setenv("VARAI_SANDBOX_HOME", str(home))
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_GATEWAY", '{"conn_type": "http", "host": "127.0.0.1", "port": 18080}')
    return home


@pytest.fixture
def worker(tmp_path):
    """Run a task as if on a fresh worker: its own TMPDIR, which is gone (and was left empty) afterwards."""
    count = iter(range(100))

    def run(task, **context):
        scratch = tmp_path / f"worker-{next(count)}"
        scratch.mkdir()
        previous, tempfile.tempdir = tempfile.tempdir, str(scratch)
        try:
            return task.execute({"run_id": "manual__test", **context})
        finally:
            tempfile.tempdir = previous
            left = list(scratch.iterdir())
            scratch.rmdir()
            assert not left, f"{task.task_id} left files behind: {left}"

    return run


def state_file(home: Path) -> Path:
    return home / "terraform" / "sandbox" / "terraform.tfstate"


def plan_task(version="v1.0.0", env=None):
    task = TerraformPlanOperator(task_id="plan", environment="sandbox", version=version)
    if env is not None:
        task.env_config = env
    return task


def apply_task(plan, version="v1.0.0", env=None):
    task = TerraformApplyOperator(task_id="apply", environment="sandbox", version=version, plan=plan)
    if env is not None:
        task.env_config = env
    return task


def apply_directly(version: str) -> None:
    """Someone else's terraform run on the same state (another run, a hand-run apply)."""
    env = load_environment("sandbox")
    with terraform_for(env) as hook:
        hook.init()
        hook.apply(hook.plan(release_variables(env, version)).plan_file)


def test_plan_then_apply_on_two_workers_hands_on_only_the_whitelisted_outputs(home, worker):
    planned = worker(plan_task())
    assert set(planned) == {"changes", "summary", "fingerprint"}
    assert planned["changes"] is True and planned["fingerprint"].startswith("sha256:")
    assert planned["summary"].startswith("Plan: ")
    assert json.loads(json.dumps(planned)) == planned, "XCom must be plain JSON"
    assert not state_file(home).exists(), "planning changes nothing"

    outputs = worker(apply_task(planned))
    assert set(outputs) == {"images", "url_map", "gateway_url", "release_version"}
    assert "environment" not in outputs, "outputs the config does not name stay out of XCom"
    assert outputs["images"]["ai-discovery"] == "sandbox.local/varai/ai-discovery:v1.0.0"
    assert outputs["release_version"] == "v1.0.0"
    assert state_file(home).is_file(), "the sandbox keeps its state under the sandbox home"
    assert stat.S_IMODE(state_file(home).stat().st_mode) == 0o600
    assert stat.S_IMODE(state_file(home).parent.stat().st_mode) == 0o700


def test_nothing_to_apply_still_hands_on_the_outputs(home, worker, capfd):
    worker(apply_task(worker(plan_task())))
    planned = worker(plan_task())
    assert planned["changes"] is False and planned["summary"].startswith("No changes")
    before = state_file(home).read_bytes()
    capfd.readouterr()
    outputs = worker(apply_task(planned))
    assert NO_CHANGES in capfd.readouterr().out
    assert outputs["images"]["api-gateway"] == "sandbox.local/varai/api-gateway:v1.0.0"
    assert state_file(home).read_bytes() == before


def test_a_change_since_the_plan_is_refused_before_anything_is_applied(home, worker):
    worker(apply_task(worker(plan_task("v1.0.0"))))
    planned = worker(plan_task("v1.0.1"))
    apply_directly("v1.0.2")  # the state moved on after the plan (and after any approval of it)
    before = state_file(home).read_bytes()
    with pytest.raises(AirflowFailException, match=CHANGED_SINCE_PLAN):
        worker(apply_task(planned, "v1.0.1"))
    assert state_file(home).read_bytes() == before, "nothing may be applied"


def test_changed_inputs_since_the_plan_are_refused_too(home, worker, monkeypatch):
    planned = worker(plan_task())
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_GATEWAY", '{"conn_type": "http", "host": "127.0.0.2", "port": 18080}')
    with pytest.raises(AirflowFailException, match=CHANGED_SINCE_PLAN):
        worker(apply_task(planned))
    assert not state_file(home).exists()


def test_a_retried_apply_after_a_crash_mid_apply_converges(home, worker, capfd):
    planned = worker(plan_task("v1.0.0"))
    apply_directly("v1.0.0")  # the first attempt applied, then its worker died before it returned
    capfd.readouterr()
    outputs = worker(apply_task(planned))
    log = capfd.readouterr().out
    assert NO_CHANGES in log and "state already matches" in log
    assert outputs["release_version"] == "v1.0.0"


def test_a_retried_apply_after_a_crash_before_terraform_applied_applies(home, worker, monkeypatch):
    planned = worker(plan_task())
    real_apply = TerraformHook.apply

    def crash(self, plan_file):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(TerraformHook, "apply", crash)
    with pytest.raises(RuntimeError, match="worker lost"):
        worker(apply_task(planned))
    monkeypatch.setattr(TerraformHook, "apply", real_apply)
    assert worker(apply_task(planned))["release_version"] == "v1.0.0"


def test_apply_refuses_anything_but_a_plan_result(home, worker):
    with pytest.raises(AirflowFailException, match="needs the plan task's result"):
        worker(apply_task({"changes": True, "summary": "", "plan_file": "/tmp/x.tfplan"}))


@pytest.fixture
def secret_env(home, tmp_path):
    """The sandbox environment on a tiny module with a sensitive output."""
    module = tmp_path / "module"
    module.mkdir()
    (module / "main.tf").write_text(
        textwrap.dedent(
            f"""
            terraform {{
              backend "local" {{}}
            }}
            variable "environment" {{ type = string }}
            variable "release_version" {{ type = string }}
            variable "services" {{ type = any }}
            variable "gateway_url" {{ type = string }}
            output "images" {{
              value = {{ for name, _ in var.services : name => "img/${{name}}:${{var.release_version}}" }}
            }}
            output "db_password" {{
              value     = "{SECRET}-${{var.release_version}}"
              sensitive = true
            }}
            """
        )
    )
    env = load_environment("sandbox")
    return lambda outputs: dataclasses.replace(
        env, terraform=dataclasses.replace(env.terraform, module=module, outputs=outputs)
    )


def test_a_sensitive_output_is_refused_by_name_and_never_logged(secret_env, home, worker, capfd):
    env = secret_env(("images", "db_password"))
    with pytest.raises(AirflowFailException, match="db_password are marked sensitive") as refused:
        worker(plan_task(env=env))
    assert not state_file(home).exists(), "refused before anything was applied"
    log = capfd.readouterr()
    assert "Terraform plan for sandbox" in log.out
    assert SECRET not in log.out + log.err + str(refused.value)


def test_sensitive_values_stay_out_of_summaries_logs_and_xcom(secret_env, home, worker, capfd):
    env = secret_env(("images",))
    planned = worker(plan_task(env=env))
    outputs = worker(apply_task(planned, env=env))
    bumped = worker(plan_task("v1.0.1", env=env))
    assert "output   db_password: (sensitive)" in bumped["summary"]
    assert set(outputs) == {"images"}
    log = capfd.readouterr()
    assert "Applying the plan for sandbox v1.0.0" in log.out
    for text in (json.dumps(planned), json.dumps(outputs), json.dumps(bumped), log.out, log.err):
        assert SECRET not in text


def test_staging_and_production_keep_state_in_their_gcs_bucket(home):
    env = load_environment("sandbox")
    gcs = dataclasses.replace(
        env,
        name="staging",
        terraform=dataclasses.replace(env.terraform, backend="gcs", state_bucket="varai-tf", state_path=None),
    )
    with terraform_for(gcs) as hook:
        assert hook.backend_config == {"bucket": "varai-tf", "prefix": "staging"}
    with terraform_for(env) as hook:
        assert hook.backend_config == {"path": str(state_file(home))}


def test_terraform_production_code_never_imports_the_sandbox():
    code = (
        "import sys\n"
        "from varai_deploy.config import load_environment\n"
        "from varai_deploy.operators.terraform import terraform_for\n"
        "terraform_for(load_environment('sandbox')).close()\n"
        "print([m for m in sys.modules if m.startswith('varai_deploy.sandbox')])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT / "plugins"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == "[]"
