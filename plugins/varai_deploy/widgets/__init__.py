"""The storefront widget release: one script, packaged for four channels, described by one manifest.

``build_release("v1.4.2", out_dir)`` stamps ``include/widgets/``, minifies the widget once and writes
the html (CDN + npm), shopify, woocommerce and magento artifacts plus ``manifest.json``;
``verify_against_manifest`` checks a file a channel serves against it. CLI: ``python -m varai_deploy.widgets``.
"""

from varai_deploy.widgets.build import CHANNELS, WIDGETS_DIR, WidgetBuildError, build_release, magento_zip_name
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
