"""The Shopify widget: the theme app extension as an app version, and its script on the CDN.

The script goes to ``widgets/shopify/<x.y.z>/widget.js`` (immutable) and, for a release newer than
what it serves, ``widgets/shopify/latest/widget.js`` (the guide's availability check). The extension
(``blocks/``, ``assets/widget.js``; its ``shopify.extension.toml`` names it) becomes app version
``x.y.z`` the way ``shopify app deploy`` makes one: the registration, a zip bundle uploaded to a signed
URL, then ``appDeploy``. A release is released to merchants; a pre-release is created unreleased, for
testing on development stores.

A version's message carries the sha256 of the extension's files, so a re-run recognises its own
version (``unchanged``) and a different extension under the same version is refused: Shopify never
lets a version tag be reused, and neither do we.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from varai_deploy.widgets.channels.cdn_script import ALIAS, publish_script
from varai_deploy.widgets.publishing import ChannelContext, Publication, PublishConflictError, PublishError

if TYPE_CHECKING:
    from varai_deploy.hooks.shopify import AppVersion, ShopifyHook
    from varai_deploy.widgets.manifest import Manifest

CHANNEL = "shopify"
EXTENSION_TOML = "shopify.extension.toml"
THEME_MODULE_CONFIG = json.dumps({"theme_extension": {"files": {}}})
_DIGEST = re.compile(r"extension sha256 ([0-9a-f]{64})")


def object_name(version: str) -> str:
    """``1.4.2`` (or ``latest``) -> ``widgets/shopify/1.4.2/widget.js``."""
    return f"widgets/{CHANNEL}/{version}/widget.js"


def publish(ctx: ChannelContext) -> list[Publication]:
    from varai_deploy.hooks.cdn import CdnHook
    from varai_deploy.hooks.shopify import ShopifyHook

    files, toml = _extension(ctx)
    widget = files[ctx.manifest.channels[CHANNEL].widget]
    publications = publish_script(ctx, CdnHook(ctx.connection("cdn"), channel=CHANNEL), CHANNEL, object_name, widget)
    publications.append(_publish_app_version(ctx, ShopifyHook(ctx.connection("shopify")), files, toml))
    return publications


def verify(ctx: ChannelContext) -> list[str]:
    """Checks (versions list) that app version ``x.y.z`` holds this release's extension; returns what was
    checked, then the CDN URLs (:func:`cdn_urls`) a deferrable trigger checks against the manifest."""
    from varai_deploy.hooks.shopify import ShopifyHook

    version = ctx.manifest.package_version
    hook = ShopifyHook(ctx.connection("shopify"))
    found = _find(hook.versions(), version)
    if found is None:
        raise PublishError(
            f"{CHANNEL} -> shopify_app: app {hook.api_key} has no version {version}; publish the release again",
            channel=CHANNEL,
            destination="shopify_app",
        )
    expected = extension_digest(_bundled_from_manifest(ctx.manifest))
    if _digest_of(found) != expected:
        raise _conflict(hook, found, expected)
    checked = f"shopify_app: app {hook.api_key} version {version} ({found.status}) holds extension sha256 {expected}"
    return [checked, *cdn_urls(ctx)]


def cdn_urls(ctx: ChannelContext) -> list[str]:
    """Where merchants load this release's script: the pinned URL, and ``latest`` unless a pre-release."""
    from varai_deploy.hooks.cdn import CdnHook

    cdn = CdnHook(ctx.connection("cdn"), channel=CHANNEL)
    version = ctx.manifest.package_version
    return [cdn.public_url(object_name(v)) for v in (version, *(() if ctx.prerelease else (ALIAS,)))]


def extension_digest(file_sha256: Mapping[str, str]) -> str:
    """sha256 over ``sha256sum``-style lines of the bundled files: the same extension gives the same digest."""
    lines = "".join(f"{sha}  {path}\n" for path, sha in sorted(file_sha256.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


# -- the extension --------------------------------------------------------------------------------
def _extension(ctx: ChannelContext) -> tuple[dict[str, bytes], dict]:
    """The extension's bundled files (checked against the manifest) and its parsed TOML."""
    from varai_deploy.widgets.manifest import verify_against_manifest

    root = ctx.build_dir / ctx.manifest.channels[CHANNEL].root
    files, toml = {}, {}
    for artifact in ctx.manifest.files(CHANNEL):
        data = (root / artifact.path).read_bytes()
        verify_against_manifest(ctx.manifest, CHANNEL, data, artifact.path)
        if artifact.path == EXTENSION_TOML:
            toml = tomllib.loads(data.decode("utf-8"))
        else:
            files[artifact.path] = data
    if toml.get("type") != "theme" or not toml.get("name"):
        raise PublishError(
            f"{CHANNEL} -> shopify_app: {EXTENSION_TOML} must name a theme app extension (name = ..., type = "
            f'"theme"), found {toml!r}',
            channel=CHANNEL,
            destination="shopify_app",
        )
    return files, toml


def _bundled_from_manifest(manifest: Manifest) -> dict[str, str]:
    return {a.path: a.sha256 for a in manifest.files(CHANNEL) if a.path != EXTENSION_TOML}


def _handle(toml: dict) -> str:
    return toml.get("handle") or re.sub(r"[^a-z0-9]+", "-", toml["name"].lower()).strip("-")


# -- the app version ------------------------------------------------------------------------------
def _publish_app_version(ctx: ChannelContext, hook: ShopifyHook, files: dict[str, bytes], toml: dict) -> Publication:
    from varai_deploy.widgets.archives import deterministic_zip

    version = ctx.manifest.package_version
    digest = extension_digest({path: hashlib.sha256(data).hexdigest() for path, data in files.items()})
    if _find(hook.versions(), version) is not None:
        return _unchanged_or_conflict(hook, hook.version(version), digest)
    registration = hook.theme_extension(toml["name"], _handle(toml))
    bundle = deterministic_zip({f"{registration}/{path}": data for path, data in files.items()})
    module = {
        "uuid": registration,
        "handle": _handle(toml),
        "context": "",
        "config": THEME_MODULE_CONFIG,
        "specificationIdentifier": "THEME_APP_EXTENSION",
    }
    message = f"{toml['name']} {version} (extension sha256 {digest})"
    try:
        created = hook.deploy(
            bundle_url=hook.upload_bundle(bundle),
            modules=[module],
            version_tag=version,
            message=message,
            release=not ctx.prerelease,
        )
    except PublishConflictError:  # the tag exists after all (a retried request that did land, a long list)
        return _unchanged_or_conflict(hook, hook.version(version), digest)
    state = "created unreleased (pre-release)" if ctx.prerelease else "released"
    return Publication(CHANNEL, "shopify_app", "published", created.location, f"app version {version} {state}")


def _find(versions: list[AppVersion], tag: str) -> AppVersion | None:
    return next((v for v in versions if v.version_tag == tag), None)


def _digest_of(version: AppVersion) -> str | None:
    match = _DIGEST.search(version.message)
    return match.group(1) if match else None


def _unchanged_or_conflict(hook: ShopifyHook, existing: AppVersion, digest: str) -> Publication:
    if _digest_of(existing) != digest:
        raise _conflict(hook, existing, digest)
    detail = f"app version {existing.version_tag} exists"
    return Publication(CHANNEL, "shopify_app", "unchanged", existing.location, detail)


def _conflict(hook: ShopifyHook, existing: AppVersion, digest: str) -> PublishConflictError:
    there = _digest_of(existing) or "none recorded"
    return PublishConflictError(
        f"{CHANNEL} -> shopify_app: app {hook.api_key} already has version {existing.version_tag} with another "
        f"extension (sha256 {there} there, {digest} in this release); nothing was created. Shopify never reuses a "
        "version tag: release a new version",
        channel=CHANNEL,
        destination="shopify_app",
    )
