"""The four marketplaces a widget release publishes to, and what each needs.

Each channel module offers ``publish(ctx) -> list[Publication]`` and ``verify(ctx) -> list[str]``
(consumer-side checks against the release manifest); CDN URLs are checked separately by a
deferrable trigger, so ``verify`` covers what a trigger cannot (npm pack, svn export, composer).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: The marketplaces, in the order releases publish and report them (the DAG's form lists them too:
#: this module stays light enough to import while a DAG file is parsed).
CHANNELS: tuple[str, ...] = ("html", "shopify", "woocommerce", "magento")

#: The connection roles (keys of an environment's ``connections:``) each channel publishes through.
ROLES: dict[str, tuple[str, ...]] = {
    "html": ("cdn", "npm"),
    "shopify": ("cdn", "shopify"),
    "woocommerce": ("wordpress_svn",),
    "magento": ("composer", "magento_marketplace"),
}

#: Roles whose connection must carry a secret in its password field, and what that secret is.
SECRET_ROLES: dict[str, str] = {
    "npm": "the npm automation token (with a login: the publisher password)",
    "wordpress_svn": "the WordPress.org SVN password",
    "magento_marketplace": "the Marketplace API secret (login: the API key)",
    "shopify": "the Shopify access token",
}


def check_channels(channels: object, allowed: tuple[str, ...] = CHANNELS) -> list[str]:
    """The requested marketplaces, in catalogue order; refuses unknown ones naming the choices."""
    from varai_deploy.config import ConfigError

    if not isinstance(channels, list | tuple) or not all(isinstance(c, str) for c in channels):
        raise ConfigError(f"marketplaces must be a list of names from {', '.join(allowed)}, got {channels!r}")
    unknown = sorted(set(channels) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown marketplace(s) {', '.join(map(repr, unknown))}: this environment publishes to "
            f"{', '.join(allowed) or 'none'}"
        )
    return [c for c in allowed if c in channels]


def module(channel: str) -> ModuleType:
    if channel not in CHANNELS:
        raise ValueError(f"unknown marketplace {channel!r}; known: {', '.join(CHANNELS)}")
    return importlib.import_module(f"varai_deploy.widgets.channels.{channel}")
