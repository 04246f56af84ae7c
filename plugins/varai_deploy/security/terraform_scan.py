"""Terraform misconfigurations: checkov, offline (no download, no platform), over the environment's module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from varai_deploy.config import REPO_ROOT
from varai_deploy.security.findings import Accepted, Finding, severity

#: `make setup` installs the pinned checkov (requirements-checkov.txt) in its own venv: it pins much of
#: what Airflow pins differently.
PINNED_CHECKOV = REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"
TIMEOUT_SECONDS = 300


class ScannerError(RuntimeError):
    pass


def find_checkov(configured: str | None) -> str:
    found = shutil.which(configured) if configured else (str(PINNED_CHECKOV) if PINNED_CHECKOV.exists() else None)
    if not found:
        raise ScannerError(
            f"checkov not found at {configured or PINNED_CHECKOV}: run `make setup`, or set security_scan.checkov"
        )
    return found


def scan_module(
    module: Path, label: str, *, unrated: str, accepted: Accepted, checkov: str | None = None
) -> tuple[list[Finding], dict]:
    """Each failed check as a finding (of ``unrated`` severity: checkov rates checks only online); and the counts."""
    argv = [find_checkov(checkov), "--directory", str(module), "--framework", "terraform", "--skip-download"]
    argv += ["--quiet", "--compact", "--output", "json", "--soft-fail"]
    # No Prisma Cloud: no key, no guideline mapping download, nothing leaves the machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    env |= {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "LOG_LEVEL": "WARNING"}
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise ScannerError(f"checkov took over {TIMEOUT_SECONDS} s on {module}") from None
    try:
        reports = json.loads(proc.stdout)
    except ValueError:
        raise ScannerError(
            f"checkov failed on {module} (exit {proc.returncode}): {proc.stderr.strip()[-800:]}"
        ) from None
    findings: list[Finding] = []
    summary = {"passed": 0, "failed": 0, "parsing_errors": 0, "resources": 0}
    for report in reports if isinstance(reports, list) else [reports]:
        totals = report.get("summary", report)
        summary["passed"] += totals.get("passed", 0)
        summary["failed"] += totals.get("failed", 0)
        summary["parsing_errors"] += totals.get("parsing_errors", 0)
        summary["resources"] += totals.get("resource_count", 0)
        for check in (report.get("results") or {}).get("failed_checks", []):
            first_line = (check.get("file_line_range") or [0])[0]
            findings.append(
                Finding(
                    scanner="terraform",
                    severity=severity(check.get("severity"), unrated),
                    rule=check["check_id"],
                    where=f"{label}{check['file_path']}:{first_line} {check['resource']}",
                    detail=check.get("check_name") or "",
                    accepted=accepted.check(check["check_id"], check["resource"]),
                )
            )
    if summary["parsing_errors"]:
        raise ScannerError(f"checkov could not parse {summary['parsing_errors']} file(s) of {module}")
    return sorted(findings, key=lambda f: f.where), summary
