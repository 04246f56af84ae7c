"""The release manifest: every file each channel ships, with its sha256, and the CDN script's SRI.

A channel's publisher checks what it downloads back (CDN object, ``npm pack`` output, SVN export,
``composer require``) with :func:`verify_against_manifest`, so all four channels are proven to ship
the same widget bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = "varai-widget-release/1"
MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20


class WidgetIntegrityError(ValueError):
    """A channel's file is not what the release manifest says it ships."""

    def __init__(self, message: str, *, channel: str, path: str, expected: str | None, actual: str | None):
        super().__init__(message)
        self.channel = channel
        self.path = path
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class Artifact:
    """One shipped file. ``path`` is relative to the channel's root, or to ``archive``'s root when set."""

    channel: str
    path: str
    sha256: str
    size: int
    archive: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"channel": self.channel, "path": self.path}
        if self.archive:
            data["archive"] = self.archive
        data.update(sha256=self.sha256, size=self.size)
        return data


@dataclass(frozen=True)
class ChannelLayout:
    """Where a channel's files are under the build directory, and which of them is the widget script."""

    #: Directory, relative to the build directory, whose content the channel publishes.
    root: str
    #: The widget script, relative to ``root`` (or to ``archive``'s root).
    widget: str
    #: The package file the channel publishes, when it publishes an archive (Magento's Composer zip).
    archive: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"root": self.root}
        if self.archive:
            data["archive"] = self.archive
        data["widget"] = self.widget
        return data


@dataclass(frozen=True)
class Manifest:
    version: str
    package_version: str
    widget_sha256: str
    widget_sri: str
    widget_size: int
    #: The CDN script: (channel, path) of the file uploaded to ``widgets/html/<version>/js/``.
    cdn_channel: str
    cdn_path: str
    channels: Mapping[str, ChannelLayout]
    artifacts: tuple[Artifact, ...]

    # -- lookup ---------------------------------------------------------------------------
    def artifact(self, channel: str, path: str) -> Artifact:
        if channel not in self.channels:
            raise WidgetIntegrityError(
                f"{channel}: no such channel in the release manifest of {self.version} "
                f"(channels: {', '.join(self.channels)})",
                channel=channel,
                path=path,
                expected=None,
                actual=None,
            )
        path = _normalise(path)
        for artifact in self.artifacts:
            if artifact.channel == channel and artifact.path == path:
                return artifact
        raise WidgetIntegrityError(
            f"{channel}: {path} is not a file of the release manifest of {self.version}",
            channel=channel,
            path=path,
            expected=None,
            actual=None,
        )

    def files(self, channel: str) -> tuple[Artifact, ...]:
        return tuple(a for a in self.artifacts if a.channel == channel)

    def widget_artifact(self, channel: str) -> Artifact:
        return self.artifact(channel, self.channels[channel].widget)

    @property
    def cdn_sri(self) -> str:
        return self.widget_sri

    def location(self, out_dir: str | os.PathLike[str], artifact: Artifact) -> Path:
        """Where a (non-archived) artifact lies in the build directory ``out_dir``."""
        if artifact.archive:
            raise ValueError(f"{artifact.channel}: {artifact.path} lies inside {artifact.archive}, not on disk")
        return Path(out_dir, self.channels[artifact.channel].root, artifact.path)

    def check_consistency(self) -> None:
        """Every channel's widget file is the one widget: same sha256, and the CDN's SRI is its SRI."""
        for channel in self.channels:
            shipped = self.widget_artifact(channel)
            if shipped.sha256 != self.widget_sha256:
                raise WidgetIntegrityError(
                    f"{channel}: its widget {shipped.path} (sha256 {shipped.sha256}) is not the release's "
                    f"widget (sha256 {self.widget_sha256})",
                    channel=channel,
                    path=shipped.path,
                    expected=self.widget_sha256,
                    actual=shipped.sha256,
                )
        if self.artifact(self.cdn_channel, self.cdn_path).sha256 != self.widget_sha256:
            raise WidgetIntegrityError(
                f"{self.cdn_channel}: the CDN script {self.cdn_path} is not the release's widget",
                channel=self.cdn_channel,
                path=self.cdn_path,
                expected=self.widget_sha256,
                actual=self.artifact(self.cdn_channel, self.cdn_path).sha256,
            )

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": self.version,
            "package_version": self.package_version,
            "widget": {"sha256": self.widget_sha256, "sri": self.widget_sri, "size": self.widget_size},
            "cdn": {"channel": self.cdn_channel, "path": self.cdn_path, "sri": self.widget_sri},
            "channels": {name: layout.to_dict() for name, layout in self.channels.items()},
            "artifacts": [artifact.to_dict() for artifact in self.artifacts],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def digest(self) -> str:
        """``sha256:<hex>`` of the manifest as written: one value for every byte every channel ships."""
        return "sha256:" + sha256_of(self.to_json().encode("utf-8"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            raise ValueError(f"not a widget release manifest: expected schema {SCHEMA!r}")
        try:
            widget, cdn = data["widget"], data["cdn"]
            manifest = cls(
                version=data["version"],
                package_version=data["package_version"],
                widget_sha256=widget["sha256"],
                widget_sri=widget["sri"],
                widget_size=widget["size"],
                cdn_channel=cdn["channel"],
                cdn_path=cdn["path"],
                channels={name: ChannelLayout(**layout) for name, layout in data["channels"].items()},
                artifacts=tuple(Artifact(**artifact) for artifact in data["artifacts"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed widget release manifest: {exc!r}") from exc
        if cdn.get("sri") != manifest.widget_sri:
            raise ValueError("malformed widget release manifest: cdn.sri differs from widget.sri")
        return manifest

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read ``manifest.json`` (or the build directory holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def sha256_of(data: bytes | bytearray | memoryview | str | os.PathLike[str]) -> str:
    """sha256 hex of bytes, or of a file's content when given a path (``str`` is always a path)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with open(data, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_against_manifest(
    manifest: Manifest | Mapping[str, Any],
    channel: str,
    file_path_or_bytes: bytes | bytearray | memoryview | str | os.PathLike[str],
    relative_path: str,
) -> Artifact:
    """Check a file a channel serves against the manifest; returns its entry, or raises naming the channel.

    ``relative_path`` is the file's path in what the channel delivers: inside the npm package
    (``dist/varai-widget.min.js``), the SVN trunk/tag, the Shopify extension, the installed Composer
    package (``view/frontend/web/js/varai-widget.js``), or the Composer zip's own name.
    """
    if not isinstance(manifest, Manifest):
        manifest = Manifest.from_dict(manifest)
    expected = manifest.artifact(channel, relative_path)
    actual = sha256_of(file_path_or_bytes)
    if actual != expected.sha256:
        where = f"{expected.archive}!/{expected.path}" if expected.archive else expected.path
        raise WidgetIntegrityError(
            f"{channel}: {where} does not match the release manifest of {manifest.version}: "
            f"expected sha256 {expected.sha256}, got sha256 {actual}",
            channel=channel,
            path=expected.path,
            expected=expected.sha256,
            actual=actual,
        )
    return expected


def _normalise(path: str) -> str:
    path = str(path).replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path
