"""What every widget channel's publisher returns and raises, so the release DAG can summarise them.

A publisher puts one channel's artifact on one destination (the CDN, npm, WordPress SVN, the
Composer repository, the Magento Marketplace, the Shopify app) and says where a merchant now finds
it. Publishing is idempotent: the same bytes under an already published version are a quick
``unchanged``; different bytes raise :class:`PublishConflictError` and nothing is overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from varai_deploy.widgets.manifest import Manifest

Outcome = Literal["published", "unchanged", "skipped"]


class PublishError(RuntimeError):
    """A publication failed; the message names the channel and the destination and says what to fix."""

    def __init__(self, message: str, *, channel: str, destination: str) -> None:
        super().__init__(message)
        self.channel = channel
        self.destination = destination


class PublishConflictError(PublishError):
    """The version is already published there with different bytes; nothing was overwritten."""


class PublishAuthError(PublishError):
    """The destination refused the credentials of the channel's Airflow connection."""


@dataclass(frozen=True)
class Publication:
    channel: str  #: html | shopify | woocommerce | magento
    destination: str  #: cdn | npm | svn | composer | marketplace | shopify_app
    outcome: Outcome
    location: str  #: where a merchant gets it: a URL, an npm spec, an SVN URL, Composer coordinates
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChannelContext:
    """Everything a channel's ``publish(ctx)`` and ``verify(ctx)`` need; built by the release DAG's operator.

    ``build_dir`` holds a fresh ``build_release(version, build_dir)`` output whose manifest equals
    ``manifest`` (the operator checks that before calling the channel). ``connections`` maps a role to
    the Airflow connection id configured for the environment, e.g. ``{"cdn": "varai_cdn"}``.
    ``scratch_dir`` is an empty directory the channel may use (``npm pack``, ``svn export``, a Composer
    project), removed afterwards.
    """

    version: str
    manifest: Manifest
    build_dir: Path
    connections: Mapping[str, str]
    scratch_dir: Path

    @property
    def prerelease(self) -> bool:
        """``v1.5.0-rc.1``: published for testers, never promoted (no ``latest`` alias, npm dist-tag
        ``next``, no WordPress ``Stable tag`` change, no Marketplace submission)."""
        return "-" in self.manifest.package_version

    def connection(self, role: str) -> str:
        try:
            return self.connections[role]
        except KeyError:
            raise KeyError(f"no Airflow connection configured for the {role!r} role") from None
