"""The plain-HTML widget: a script tag from the CDN, and ``npm install @varai/widget``."""

from __future__ import annotations

from varai_deploy.widgets.channels import html_cdn, html_npm
from varai_deploy.widgets.publishing import ChannelContext, Publication


def publish(ctx: ChannelContext) -> list[Publication]:
    return html_cdn.publish(ctx) + html_npm.publish(ctx)


def verify(ctx: ChannelContext) -> list[str]:
    return html_npm.verify(ctx)
