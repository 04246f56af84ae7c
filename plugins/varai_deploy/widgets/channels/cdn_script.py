"""A widget script on the CDN: an immutable pinned copy per version, and a ``latest`` alias that only moves forward.

Merchants pin a version with SRI, so a version's object never changes and is cached for a year; the
``latest`` alias (the guide's availability check) is cached for five minutes. A pre-release never
moves ``latest``, and neither does a release older than the one it already serves (a hotfix of an
old line, a re-run of an old release). The html and shopify channels both publish this way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from varai_deploy.widgets.publishing import ChannelContext, Publication
from varai_deploy.widgets.versions import release_key

if TYPE_CHECKING:
    from varai_deploy.hooks.cdn import CdnHook, Stored

CONTENT_TYPE = "application/javascript; charset=utf-8"
ALIAS = "latest"
#: Custom metadata on the alias: which version it serves, so an older release never moves it back.
VERSION_KEY = "varai-version"


def publish_script(
    ctx: ChannelContext, hook: CdnHook, channel: str, object_name: Callable[[str], str], data: bytes
) -> list[Publication]:
    """Uploads the pinned copy, then moves the alias when it should; returns both publications."""
    from varai_deploy.hooks.cdn import ALIAS_CACHE_CONTROL, IMMUTABLE_CACHE_CONTROL

    version = ctx.manifest.package_version
    pinned = object_name(version)
    outcome = hook.put_immutable(
        pinned, data, content_type=CONTENT_TYPE, cache_control=IMMUTABLE_CACHE_CONTROL, channel=channel
    )
    publications = [Publication(channel, "cdn", outcome, hook.public_url(pinned), f"integrity {ctx.manifest.cdn_sri}")]
    alias = object_name(ALIAS)
    held_back = _why_alias_stays(ctx, hook.stat(alias))
    if held_back:
        publications.append(Publication(channel, "cdn", "skipped", hook.public_url(alias), held_back))
        return publications
    outcome = hook.put_alias(
        alias,
        data,
        content_type=CONTENT_TYPE,
        cache_control=ALIAS_CACHE_CONTROL,
        channel=channel,
        metadata={VERSION_KEY: version},
    )
    publications.append(Publication(channel, "cdn", outcome, hook.public_url(alias), f"serves {version}"))
    return publications


def _why_alias_stays(ctx: ChannelContext, alias: Stored | None) -> str | None:
    version = ctx.manifest.package_version
    if ctx.prerelease:
        return f"{version} is a pre-release: {ALIAS} is left alone (pin /{version}/ to test it)"
    current = (alias.metadata.get(VERSION_KEY) if alias else None) or ""
    if release_key(current) > release_key(version):
        return (
            f"{ALIAS} serves {current}, newer than {version}: left alone ({ALIAS} only moves forward; "
            "fix forward with a higher version)"
        )
    return None
