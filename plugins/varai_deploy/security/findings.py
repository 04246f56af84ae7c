"""What a scanner found, where, how severe, and whether a reviewed acceptance stands for it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from varai_deploy.config import FINDING_SEVERITIES, REPO_ROOT, ConfigError

#: Reviewed findings that stand, each with why: secrets by detect-secrets' hash, Terraform checks by id.
ACCEPTED_FILE = REPO_ROOT / "include" / "security" / "accepted.yaml"


@dataclass(frozen=True)
class Finding:
    scanner: str  #: secrets | terraform | npm-audit
    severity: str
    rule: str  #: the detector, check id or advisory
    where: str  #: file:line, a zip member as archive!member, or the package
    detail: str  #: what the rule says; a secret's hash (never its value)
    accepted: str | None = None  #: why it stands, when include/security/accepted.yaml says so

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def line(self) -> str:
        text = f"[{self.severity}] {self.scanner} {self.rule} at {self.where}: {self.detail}"
        return f"{text} (accepted: {self.accepted})" if self.accepted else text


@dataclass(frozen=True)
class Accepted:
    secrets: Mapping[str, str]
    terraform: Mapping[str, str]

    def secret(self, hashed: str) -> str | None:
        return self.secrets.get(hashed)

    def check(self, check_id: str, resource: str) -> str | None:
        """An acceptance of one resource's check (``CKV_GCP_62:google_storage_bucket.cdn``), or of the check."""
        return self.terraform.get(f"{check_id}:{resource}") or self.terraform.get(check_id)


def load_accepted(path: Path = ACCEPTED_FILE) -> Accepted:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    sections = {}
    for key in ("secrets", "terraform"):
        section = (raw or {}).get(key) or {}
        if not isinstance(section, dict) or not all(isinstance(v, str) and v.strip() for v in section.values()):
            raise ConfigError(f"{path}: {key} must map each accepted finding to why it stands")
        sections[key] = {str(k): v for k, v in section.items()}
    return Accepted(**sections)


def severity(rated: str | None, unrated: str) -> str:
    """A scanner's own rating in our terms (npm's moderate is medium, info low); ``unrated`` where it has none."""
    rated = {"moderate": "medium", "info": "low", "informational": "low"}.get(
        (rated or "").lower(), (rated or "").lower()
    )
    return rated if rated in FINDING_SEVERITIES else unrated


def count(findings: Iterable[Finding]) -> dict[str, int]:
    counted = dict.fromkeys(FINDING_SEVERITIES, 0)
    for finding in findings:
        if not finding.accepted:
            counted[finding.severity] += 1
    return counted
