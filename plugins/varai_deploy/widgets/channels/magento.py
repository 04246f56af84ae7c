"""The Magento module: ``composer require varai/module-ai-discovery`` and the Adobe Commerce Marketplace.

The Composer repository comes first (merchants install from it at once); the Marketplace submission
follows for stable versions. ``verify`` installs the version with a real ``composer`` and checks every
installed file against the release manifest, then checks what the Marketplace holds.
"""

from __future__ import annotations

from varai_deploy.widgets.channels import magento_composer, magento_marketplace
from varai_deploy.widgets.publishing import ChannelContext, Publication


def publish(ctx: ChannelContext) -> list[Publication]:
    return [magento_composer.publish(ctx), magento_marketplace.publish(ctx)]


def verify(ctx: ChannelContext) -> list[str]:
    return [magento_composer.verify(ctx), magento_marketplace.verify(ctx)]
