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


@pytest.fixture
def counted_checkov(tmp_path: Path, monkeypatch) -> tuple[str, Path]:
    """The pinned checkov behind a script that counts its runs; reports kept in a scratch folder."""
    from varai_deploy.security import terraform_scan

    monkeypatch.setattr(terraform_scan, "RESULTS_DIR", tmp_path / "results")
    runs = tmp_path / "runs"
    script = tmp_path / "bin" / "checkov"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\necho run >> {runs}\nexec {terraform_scan.find_checkov(None)} "$@"\n')
    script.chmod(0o755)
    return str(script), runs


def runs_of(runs: Path) -> int:
    return len(runs.read_text().splitlines()) if runs.exists() else 0


def test_a_module_scanned_before_is_not_scanned_again_until_a_file_of_it_changes(tmp_path: Path, counted_checkov):
    checkov, runs = counted_checkov
    first, copy = tmp_path / "first", tmp_path / "copy"
    for module in (first, copy):
        module.mkdir()
        (module / "main.tf").write_text(PUBLIC_BUCKET)
    found, summary = scan_module(first, "planted", unrated="high", accepted=NONE_ACCEPTED, checkov=checkov)
    again = scan_module(copy, "planted", unrated="high", accepted=NONE_ACCEPTED, checkov=checkov)
    assert again == (found, summary) and runs_of(runs) == 1  # same files elsewhere: the kept report

    (copy / "main.tf").write_text(PUBLIC_BUCKET.replace('"allUsers"', '"group:shop-team@example.com"'))
    changed, _ = scan_module(copy, "planted", unrated="high", accepted=NONE_ACCEPTED, checkov=checkov)
    assert runs_of(runs) == 2
    assert any(f.rule == "CKV_GCP_28" for f in found) and not any(f.rule == "CKV_GCP_28" for f in changed)


def test_a_change_in_a_local_module_it_sources_scans_it_again(tmp_path: Path, counted_checkov):
    checkov, runs = counted_checkov
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "main.tf").write_text('module "buckets" {\n  source = "../buckets"\n}\n')
    (tmp_path / "buckets").mkdir()
    (tmp_path / "buckets" / "main.tf").write_text(PUBLIC_BUCKET)
    scan_module(tmp_path / "env", "env", unrated="high", accepted=NONE_ACCEPTED, checkov=checkov)
    scan_module(tmp_path / "env", "env", unrated="high", accepted=NONE_ACCEPTED, checkov=checkov)
    assert runs_of(runs) == 1
    (tmp_path / "buckets" / "main.tf").write_text(PUBLIC_BUCKET + "\n# reviewed\n")
    scan_module(tmp_path / "env", "env", unrated="high", accepted=NONE_ACCEPTED, checkov=checkov)
    assert runs_of(runs) == 2


def test_a_module_checkov_cannot_parse_is_refused_every_time(tmp_path: Path, counted_checkov):
    checkov, _ = counted_checkov
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "main.tf").write_text('resource "google_storage_bucket" "open" {\n  name = \n')
    for _attempt in (1, 2):
        with pytest.raises(ScannerError, match="could not parse 1 file"):
            scan_module(tmp_path / "broken", "broken", unrated="high", accepted=NONE_ACCEPTED, checkov=checkov)


def test_a_kept_report_that_is_not_whole_is_scanned_again(tmp_path: Path, counted_checkov):
    from varai_deploy.security import terraform_scan

    checkov, runs = counted_checkov
    (tmp_path / "module").mkdir()
    (tmp_path / "module" / "main.tf").write_text(PUBLIC_BUCKET)
    first = scan_module(tmp_path / "module", "planted", unrated="high", accepted=NONE_ACCEPTED, checkov=checkov)
    [kept] = list(terraform_scan.RESULTS_DIR.glob("*.json"))
    kept.write_text(kept.read_text()[:40])  # cut short
    again = scan_module(tmp_path / "module", "planted", unrated="high", accepted=NONE_ACCEPTED, checkov=checkov)
    assert again == first and runs_of(runs) == 2
