"""checkov, offline, over a Terraform module: each failed check found at its file, line and resource; the
project's own modules pass but for the reviewed acceptances; no checkov is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.planted import PUBLIC_BUCKET
from varai_deploy.config import REPO_ROOT
from varai_deploy.security.findings import Accepted, load_accepted
from varai_deploy.security.terraform_scan import ScannerError, scan_module

NONE_ACCEPTED = Accepted(secrets={}, terraform={})


def test_a_misconfigured_module_is_reported_check_by_check(tmp_path: Path):
    (tmp_path / "main.tf").write_text(PUBLIC_BUCKET)
    findings, summary = scan_module(tmp_path, "planted", unrated="high", accepted=NONE_ACCEPTED)
    by_check = {(f.rule, f.where) for f in findings}
    assert ("CKV_GCP_28", "planted/main.tf:7 google_storage_bucket_iam_member.everyone") in by_check
    assert ("CKV_GCP_29", "planted/main.tf:2 google_storage_bucket.open") in by_check  # no uniform access
    assert {f.severity for f in findings} == {"high"}  # offline, checkov rates nothing
    assert summary["failed"] == len(findings) and summary["resources"] == 2


def test_an_acceptance_names_one_resource_or_every_resource_of_a_check(tmp_path: Path):
    (tmp_path / "main.tf").write_text(PUBLIC_BUCKET)
    reviewed = Accepted(
        secrets={},
        terraform={
            "CKV_GCP_28:google_storage_bucket_iam_member.everyone": "public by design",
            "CKV_GCP_62": "audit logs",
        },
    )
    findings, _ = scan_module(tmp_path, "planted", unrated="medium", accepted=reviewed)
    accepted = {f.rule: f.accepted for f in findings if f.accepted}
    assert accepted == {"CKV_GCP_28": "public by design", "CKV_GCP_62": "audit logs"}
    assert any(f.rule == "CKV_GCP_29" and not f.accepted for f in findings)


@pytest.mark.parametrize("module", ["include/terraform/gcp", "include/terraform/sandbox"])
def test_the_projects_modules_have_no_finding_left_unreviewed(module: str):
    findings, summary = scan_module(REPO_ROOT / module, module, unrated="high", accepted=load_accepted())
    assert [f.line() for f in findings if not f.accepted] == []
    assert summary["parsing_errors"] == 0


def test_no_checkov_says_how_to_get_one(tmp_path: Path):
    (tmp_path / "main.tf").write_text(PUBLIC_BUCKET)
    with pytest.raises(ScannerError, match="checkov not found at /nowhere/checkov: run `make setup`"):
        scan_module(tmp_path, "planted", unrated="high", accepted=NONE_ACCEPTED, checkov="/nowhere/checkov")
