"""Advisories against the npm package's dependencies, as the environment's registry resolves and rates them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from varai_deploy.security.findings import Finding, severity

DEPENDENCY_KEYS = ("dependencies", "optionalDependencies", "peerDependencies")


def audit_package(package_json: Path, npm_conn_id: str) -> tuple[list[Finding], dict[str, Any]]:
    """The published package's dependencies audited; none, nothing to ask. A registry that does not answer
    audits is reported as such (it cannot be asked offline), not taken for a clean result."""
    manifest = json.loads(package_json.read_text(encoding="utf-8"))
    names = sorted({name for key in DEPENDENCY_KEYS for name in manifest.get(key) or {}})
    if not names:
        return [], {"dependencies": 0, "audited": True}
    from varai_deploy.hooks.npm import NpmRegistryHook

    report = NpmRegistryHook(npm_conn_id).audit(package_json)
    if "error" in report:
        error = report["error"] or {}
        why = f"{error.get('code') or ''} {error.get('summary') or ''}".strip()
        return [], {"dependencies": len(names), "audited": False, "why": why}
    findings = [
        Finding(
            scanner="npm-audit",
            severity=severity(entry.get("severity"), "high"),
            rule=", ".join(sorted({a["title"] for a in _advisories(entry)})) or "advisory",
            where=f"{manifest.get('name')} -> {name}",
            detail=_detail(entry),
        )
        for name, entry in sorted((report.get("vulnerabilities") or {}).items())
    ]
    return findings, {"dependencies": len(names), "audited": True}


def _advisories(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in entry.get("via", []) if isinstance(v, dict)]


def _detail(entry: dict[str, Any]) -> str:
    """Direct or through which packages; the vulnerable versions and the advisories' addresses."""
    through = [v for v in entry.get("via", []) if isinstance(v, str)]
    how = "direct dependency" if entry.get("isDirect") else f"through {', '.join(through)}"
    advisories = [f"{a.get('range', '*')} {a.get('url', '')}".strip() for a in _advisories(entry)]
    return f"{how}; vulnerable: {'; '.join(advisories)}" if advisories else how
