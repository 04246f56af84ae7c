"""Phase 1's security scan of a release, before anything changes: the widget sources and every artifact the
release would ship (built here exactly as the widgets group will build them), and the environment's Terraform
module, for secrets; the module for misconfigurations; the npm package's dependencies for advisories."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varai_deploy.config import REPO_ROOT, ConfigError
from varai_deploy.security.findings import ACCEPTED_FILE, Finding, count, load_accepted

if TYPE_CHECKING:
    from varai_deploy.config import EnvironmentConfig


class SecurityScanError(ConfigError):
    """Findings at or above the environment's ``security_scan.fail_on``: the message lists them."""


def scan_release(env: EnvironmentConfig, version: str, channels: list[str] | tuple[str, ...]) -> dict[str, Any]:
    from varai_deploy.security.npm_audit import audit_package
    from varai_deploy.security.secret_scan import scan_tree
    from varai_deploy.security.terraform_scan import scan_module
    from varai_deploy.widgets.build import SOURCES_ENV, WIDGETS_DIR, build_release

    policy, accepted = env.security_scan, load_accepted()
    sources = Path(os.environ.get(SOURCES_ENV) or WIDGETS_DIR)
    module = env.terraform.module
    findings: list[Finding] = [
        *scan_tree(sources, _label(sources), accepted),
        *scan_tree(module, _label(module), accepted),
    ]
    report: dict[str, Any] = {"scanned": [_label(sources), _label(module)]}
    if channels:
        with tempfile.TemporaryDirectory(prefix="varai-scan-") as tmp:
            built = Path(tmp, "widgets")
            build_release(version, built, sources=sources)
            for channel in channels:  # what each marketplace gets; not the build's own manifest of digests
                findings += scan_tree(built / channel, f"widgets {version}/{channel}", accepted)
            report["scanned"].append(f"widgets {version} as {', '.join(channels)} ship it")
            if "html" in channels:
                advisories, report["npm_audit"] = audit_package(built / "html" / "package.json", env.connections["npm"])
                findings += advisories
    misconfigurations, report["terraform"] = scan_module(
        module, _label(module), unrated=policy.terraform_severity, accepted=accepted, checkov=policy.checkov
    )
    findings += misconfigurations
    failing = [f for f in findings if not f.accepted and policy.fails(f.severity)]
    report |= {
        "fail_on": policy.fail_on,
        "counts": count(findings),
        "accepted": sum(1 for f in findings if f.accepted),
        "findings": [f.to_dict() for f in findings],
    }
    if failing:
        lines = "\n".join(f"  {f.line()}" for f in failing)
        raise SecurityScanError(
            f"security scan: {len(failing)} finding(s) at or above {policy.fail_on}, nothing was changed:\n{lines}\n"
            f"Fix them; a finding reviewed as harmless goes into {_label(ACCEPTED_FILE)} with why."
        )
    return report


def format_report(report: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {severity}" for severity, n in report["counts"].items())
    lines = [f"Scanned {'; '.join(report['scanned'])}", f"Open findings: {counts} (fail on {report['fail_on']})"]
    tf = report["terraform"]
    lines.append(f"Terraform: {tf['resources']} resources, {tf['passed']} checks passed, {tf['failed']} failed")
    if "npm_audit" in report:
        npm = report["npm_audit"]
        if not npm["dependencies"]:
            lines.append("npm audit: the package has no dependencies, nothing to audit")
        else:
            state = "audited" if npm["audited"] else f"not audited, the registry did not answer: {npm.get('why')}"
            lines.append(f"npm audit: {npm['dependencies']} dependencies, {state}")
    lines += [f"  {Finding(**f).line()}" for f in report["findings"]]
    return "\n".join(lines)


def _label(path: Path) -> str:
    path = Path(path).resolve()
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)
