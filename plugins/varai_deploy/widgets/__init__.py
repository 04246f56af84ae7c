"""The storefront widget release: one script, packaged for four channels, described by one manifest.

``build_release("v1.4.2", out_dir)`` stamps ``include/widgets/``, minifies the widget once and writes
the html (CDN + npm), shopify, woocommerce and magento artifacts plus ``manifest.json``;
``verify_against_manifest`` checks a file a channel serves against it. CLI: ``python -m varai_deploy.widgets``.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from varai_deploy.widgets.build import WIDGETS_DIR, WidgetBuildError, build_release, magento_zip_name
    from varai_deploy.widgets.channels import CHANNELS
    from varai_deploy.widgets.manifest import (
        Artifact,
        ChannelLayout,
        Manifest,
        WidgetIntegrityError,
        sha256_of,
        verify_against_manifest,
    )
    from varai_deploy.widgets.minify import sri
    from varai_deploy.widgets.versions import package_version

#: Where each public name lives; imported on first use, so that the light parts (the channel list
#: the DAG's form shows) load without the build, the minifier and zipfile.
_HOMES = {
    "CHANNELS": "channels",
    "WIDGETS_DIR": "build",
    "WidgetBuildError": "build",
    "build_release": "build",
    "magento_zip_name": "build",
    "Artifact": "manifest",
    "ChannelLayout": "manifest",
    "Manifest": "manifest",
    "WidgetIntegrityError": "manifest",
    "sha256_of": "manifest",
    "verify_against_manifest": "manifest",
    "sri": "minify",
    "package_version": "versions",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "CHANNELS",
    "WIDGETS_DIR",
    "Artifact",
    "ChannelLayout",
    "Manifest",
    "WidgetBuildError",
    "WidgetIntegrityError",
    "build_release",
    "magento_zip_name",
    "package_version",
    "sha256_of",
    "sri",
    "verify_against_manifest",
]
