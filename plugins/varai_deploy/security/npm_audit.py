"""Advisories against the npm package's dependencies, as the environment's registry resolves and rates them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from varai_deploy.security.findings import Finding, severity


def audit_package(package_json: Path, npm_conn_id: str) -> tuple[list[Finding], dict[str, Any]]:
    """The published package's dependencies audited; none, nothing to ask. A registry that does not answer
    audits is reported as such (it cannot be asked offline), not taken for a clean result."""
    manifest = json.loads(package_json.read_text(encoding="utf-8"))
    names = sorted(
        {n for key in ("dependencies", "optionalDependencies", "peerDependencies") for n in manifest.get(key) or {}}
    )
    if not names:
        return [], {"dependencies": 0, "audited": True}
    from varai_deploy.hooks.npm import NpmRegistryHook

    report = NpmRegistryHook(npm_conn_id).audit(package_json)
    if "error" in report:
        error = report["error"] or {}
        return [], {
            "dependencies": len(names),
            "audited": False,
            "why": f"{error.get('code') or ''} {error.get('summary') or ''}".strip(),
        }
    findings = [
        Finding(
            scanner="npm-audit",
            severity=severity(entry.get("severity"), "high"),
            rule=", ".join(sorted({v["title"] for v in entry.get("via", []) if isinstance(v, dict)})) or "advisory",
            where=f"{manifest.get('name')} -> {name}@{entry.get('range', '*')}",
            detail="direct dependency"
            if entry.get("isDirect")
            else "through " + ", ".join(v for v in entry.get("via", []) if isinstance(v, str)),
        )
        for name, entry in sorted((report.get("vulnerabilities") or {}).items())
    ]
    return findings, {"dependencies": len(names), "audited": True}
