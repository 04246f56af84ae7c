"""The HTML widget on the CDN: ``widgets/html/<x.y.z>/js/varai-widget.min.js``, and ``latest`` for releases.

Merchants pin a version with SRI (``<script src=".../1.4.2/js/varai-widget.min.js" integrity="sha384-..."
crossorigin="anonymous">``), so a version's object is immutable and cached for a year; the ``latest``
alias (the guide's availability check) is cached for five minutes. A pre-release is published under its
own version for testers and never moves ``latest``, and neither does a release older than the one
``latest`` already serves (a hotfix of an old line, a re-run of an old release).

The manifest is not uploaded next to the script: what a merchant needs beyond the URL is the SRI,
which the publication's detail carries, and the full manifest is the build task's return value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from varai_deploy.widgets.publishing import ChannelContext, Publication

if TYPE_CHECKING:
    from varai_deploy.hooks.cdn import Stored

CHANNEL = "html"
DESTINATION = "cdn"
ROLE = "cdn"
CONTENT_TYPE = "application/javascript; charset=utf-8"
ALIAS = "latest"
#: Custom metadata on the alias: which version it serves, so an older release never moves it back.
VERSION_KEY = "varai-version"


def object_name(version: str) -> str:
    """``1.4.2`` (or ``latest``) -> ``widgets/html/1.4.2/js/varai-widget.min.js``."""
    return f"widgets/{CHANNEL}/{version}/js/varai-widget.min.js"


def publish(ctx: ChannelContext) -> list[Publication]:
    from varai_deploy.hooks.cdn import ALIAS_CACHE_CONTROL, IMMUTABLE_CACHE_CONTROL, CdnHook
    from varai_deploy.widgets.manifest import verify_against_manifest

    manifest = ctx.manifest
    script = ctx.build_dir / manifest.channels[manifest.cdn_channel].root / manifest.cdn_path
    data = script.read_bytes()
    verify_against_manifest(manifest, manifest.cdn_channel, data, manifest.cdn_path)
    version = manifest.package_version
    hook = CdnHook(ctx.connection(ROLE), channel=CHANNEL)

    pinned = object_name(version)
    outcome = hook.put_immutable(
        pinned, data, content_type=CONTENT_TYPE, cache_control=IMMUTABLE_CACHE_CONTROL, channel=CHANNEL
    )
    publications = [
        Publication(CHANNEL, DESTINATION, outcome, hook.public_url(pinned), f"integrity {manifest.cdn_sri}")
    ]

    alias = object_name(ALIAS)
    held_back = _why_alias_stays(ctx, hook.stat(alias))
    if held_back:
        publications.append(Publication(CHANNEL, DESTINATION, "skipped", hook.public_url(alias), held_back))
        return publications
    outcome = hook.put_alias(
        alias,
        data,
        content_type=CONTENT_TYPE,
        cache_control=ALIAS_CACHE_CONTROL,
        channel=CHANNEL,
        metadata={VERSION_KEY: version},
    )
    publications.append(Publication(CHANNEL, DESTINATION, outcome, hook.public_url(alias), f"serves {version}"))
    return publications


def _why_alias_stays(ctx: ChannelContext, alias: Stored | None) -> str | None:
    version = ctx.manifest.package_version
    if ctx.prerelease:
        return f"{version} is a pre-release: {ALIAS} is left alone (pin /{version}/ to test it)"
    current = (alias.metadata.get(VERSION_KEY) if alias else None) or ""
    if _release_key(current) > _release_key(version):
        return (
            f"{ALIAS} serves {current}, newer than {version}: left alone ({ALIAS} only moves forward; "
            "fix forward with a higher version)"
        )
    return None


def _release_key(version: str) -> tuple[int, ...]:
    """``1.4.2`` -> (1, 4, 2); anything else (no alias yet, a hand upload) sorts first."""
    parts = version.split(".")
    return tuple(int(p) for p in parts) if len(parts) == 3 and all(p.isdigit() for p in parts) else ()
