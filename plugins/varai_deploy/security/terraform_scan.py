"""Terraform misconfigurations: checkov, offline (no download, no platform), over the environment's module.

Checkov takes about 5 s of CPU on a module, and every release scans its environment's module before
anything changes. Offline, its verdict depends only on the module's files, checkov's own installation
and the arguments; so a verdict is kept under the hash of those, and a release whose module and checkov
are those of an earlier scan reads that scan's output instead of running checkov again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from varai_deploy.config import REPO_ROOT
from varai_deploy.security.findings import Accepted, Finding, severity

#: `make setup` installs the pinned checkov (requirements-checkov.txt) in its own venv: it pins much of
#: what Airflow pins differently.
PINNED_CHECKOV = REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"
TIMEOUT_SECONDS = 300
#: Checkov's reports by the hash of what decides them (``checkov_output``).
RESULTS_DIR = REPO_ROOT / ".tools" / "checkov-results"
#: A module block's local source: its files decide the verdict too.
LOCAL_SOURCE = re.compile(r'^\s*source\s*=\s*"(\.{1,2}/[^"]*)"', re.MULTILINE)

log = logging.getLogger(__name__)


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
    reports = json.loads(checkov_output(Path(module), find_checkov(checkov)))
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


def checkov_output(module: Path, checkov: str) -> str:
    """Checkov's JSON report on ``module``: an earlier identical scan's, or a new one (then kept)."""
    args = ["--directory", str(module), "--framework", "terraform", "--skip-download"]
    args += ["--quiet", "--compact", "--output", "json", "--soft-fail"]
    key = scan_key(module, checkov, args)
    kept = RESULTS_DIR / f"{key}.json"
    with contextlib.suppress(OSError, ValueError):
        output = kept.read_text()
        json.loads(output)  # one that is not whole (written by hand, a full disk) is scanned again
        return output
    # No Prisma Cloud: no key, no guideline mapping download, nothing leaves the machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    env |= {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "LOG_LEVEL": "WARNING"}
    try:
        proc = subprocess.run(
            [checkov, *args], capture_output=True, text=True, env=env, timeout=TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        raise ScannerError(f"checkov took over {TIMEOUT_SECONDS} s on {module}") from None
    try:
        json.loads(proc.stdout)
    except ValueError:
        raise ScannerError(
            f"checkov failed on {module} (exit {proc.returncode}): {proc.stderr.strip()[-800:]}"
        ) from None
    if proc.returncode == 0:
        _keep(kept, proc.stdout)
    return proc.stdout


def scan_key(module: Path, checkov: str, args: list[str]) -> str:
    """The hash of what decides checkov's verdict: its installation (the script and the package beside
    it, as installed), the arguments but the module's path, and every file of the module and of the local
    modules it sources, by path within them and content."""
    digest = hashlib.sha256()
    script = Path(checkov).resolve()
    installed = [script, *sorted(script.parent.parent.glob("lib/python*/site-packages/checkov/version.py"))]
    for path in installed:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    digest.update("\0".join(a for a in args if a != str(module)).encode())
    seen: set[Path] = set()
    pending = [module.resolve()]
    while pending:
        root = pending.pop()
        if root in seen:
            continue
        seen.add(root)
        digest.update(f"\0module\0{len(seen)}\0".encode())
        for path in sorted(p for p in root.rglob("*") if p.is_file() and ".terraform" not in p.parts):
            content = path.read_bytes()
            digest.update(f"{path.relative_to(root)}\0{len(content)}\0".encode() + content)
            if path.suffix == ".tf":
                text = content.decode(errors="replace")
                pending += [(path.parent / source).resolve() for source in LOCAL_SOURCE.findall(text)]
    return digest.hexdigest()


def _keep(path: Path, output: str) -> None:
    """Written whole or not at all (concurrent releases may scan the same module); a read-only tree only
    loses the saving."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
            tmp.write(output)
        os.replace(tmp.name, path)
    except OSError as error:
        log.info("Checkov's report is not kept for the next scan: %s", error)
