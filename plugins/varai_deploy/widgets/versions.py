"""The package version every channel ships: the release tag without its ``v``, valid for npm and Composer."""

from __future__ import annotations

import re
from typing import Any

from varai_deploy.config import ConfigError, check_version

# npm (semver 2.0): a numeric pre-release identifier has no leading zero.
_SEMVER_PRERELEASE_ID = re.compile(r"0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*")
# Composer's VersionParser (what Magento's composer.json is read with) only knows these modifiers.
_COMPOSER_VERSION = re.compile(
    r"\d{1,5}\.\d+\.\d+(?:[._-]?(?:stable|beta|b|RC|alpha|a|patch|pl|p)(?:[.-]?\d+)*)?(?:[.-]?dev)?",
    re.IGNORECASE,
)


def package_version(version: Any) -> str:
    """``v1.4.2`` -> ``1.4.2``; raises ``ConfigError`` for a tag some channel could not publish."""
    tag = check_version(version)
    plain = tag[1:]
    _core, _, prerelease = plain.partition("-")
    if prerelease and not all(_SEMVER_PRERELEASE_ID.fullmatch(part) for part in prerelease.split(".")):
        raise ConfigError(
            f"version {tag!r}: npm refuses {plain!r} (a numeric pre-release part has a leading zero); "
            "use e.g. v1.5.0-rc.1"
        )
    if not _COMPOSER_VERSION.fullmatch(plain):
        raise ConfigError(
            f"version {tag!r}: Composer (the Magento channel) cannot read {plain!r}; "
            "name pre-releases -alpha.N, -beta.N or -rc.N, e.g. v1.5.0-rc.1"
        )
    return plain


def release_key(version: str | None) -> tuple[int, ...]:
    """``1.4.2`` -> (1, 4, 2), to tell which release is newer (the aliases and tags that point at the
    newest only move forward); anything else (a pre-release, nothing yet, a hand upload) sorts first."""
    parts = (version or "").split(".")
    return tuple(int(p) for p in parts) if len(parts) == 3 and all(p.isdigit() for p in parts) else ()
