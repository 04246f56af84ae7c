"""Secrets in what a release ships: detect-secrets over a tree of files and inside its zip archives."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from varai_deploy.security.findings import Accepted, Finding

#: Not what ships: Terraform's working data (providers, plans) if a module was initialised in place.
SKIPPED_DIRS = frozenset({".terraform", "node_modules", ".git"})


def scan_tree(root: Path, label: str, accepted: Accepted) -> list[Finding]:
    """Every file under ``root`` (zip archives opened), reported as ``label/<path>:<line>``; values never."""
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    findings: list[Finding] = []
    with default_settings(), tempfile.TemporaryDirectory(prefix="varai-secrets-") as tmp:
        for path, where in _files(root, label, Path(tmp)):
            found = SecretsCollection()
            found.scan_file(str(path))
            for _, secret in found:
                findings.append(
                    Finding(
                        scanner="secrets",
                        severity="critical",
                        rule=secret.type,
                        where=f"{where}:{secret.line_number}",
                        detail=f"hashed secret {secret.secret_hash}",
                        accepted=accepted.secret(secret.secret_hash),
                    )
                )
    return sorted(findings, key=lambda f: f.where)


def _files(root: Path, label: str, unpack_to: Path) -> Iterator[tuple[Path, str]]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or SKIPPED_DIRS.intersection(relative.parts):
            continue
        where = f"{label}/{relative.as_posix()}"
        if zipfile.is_zipfile(path):
            target = unpack_to / relative.as_posix()
            with zipfile.ZipFile(path) as archive:
                archive.extractall(target)  # zipfile keeps members inside target
                for member in sorted(archive.namelist()):
                    if not member.endswith("/"):
                        yield target / member, f"{where}!{member}"
        else:
            yield path, where
