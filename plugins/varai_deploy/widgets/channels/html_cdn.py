"""The HTML widget on the CDN: ``widgets/html/<x.y.z>/js/varai-widget.min.js``, and ``latest`` for releases.

Merchants pin a version with SRI (``<script src=".../1.4.2/js/varai-widget.min.js" integrity="sha384-..."
crossorigin="anonymous">``); see ``cdn_script`` for the pinned copy and the ``latest`` alias.

The manifest is not uploaded next to the script: what a merchant needs beyond the URL is the SRI,
which the publication's detail carries, and the full manifest is the build task's return value.
"""

from __future__ import annotations

from varai_deploy.widgets.channels.cdn_script import ALIAS, CONTENT_TYPE, VERSION_KEY, publish_script
from varai_deploy.widgets.publishing import ChannelContext, Publication

CHANNEL = "html"
DESTINATION = "cdn"
ROLE = "cdn"
__all__ = ["ALIAS", "CONTENT_TYPE", "VERSION_KEY", "object_name", "publish"]


def object_name(version: str) -> str:
    """``1.4.2`` (or ``latest``) -> ``widgets/html/1.4.2/js/varai-widget.min.js``."""
    return f"widgets/{CHANNEL}/{version}/js/varai-widget.min.js"


def publish(ctx: ChannelContext) -> list[Publication]:
    from varai_deploy.hooks.cdn import CdnHook
    from varai_deploy.widgets.manifest import verify_against_manifest

    manifest = ctx.manifest
    script = ctx.build_dir / manifest.channels[manifest.cdn_channel].root / manifest.cdn_path
    data = script.read_bytes()
    verify_against_manifest(manifest, manifest.cdn_channel, data, manifest.cdn_path)
    return publish_script(ctx, CdnHook(ctx.connection(ROLE), channel=CHANNEL), CHANNEL, object_name, data)
