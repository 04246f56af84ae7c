"""The storefront pages of Phase 4: the widget as each channel delivers it, from where it was published.

- html: the CDN script tag with its SRI; the npm package's file, as a bundler ships it (from the registry);
- woocommerce: the WordPress plugin from its SVN tag, its footer scripts and its [varai_discovery] shortcode
  rendered by the plugin's own PHP (php/wordpress_storefront.php gives it the WordPress functions it calls);
- magento: the module from the Composer repository's dist zip, its layout's head script and its block
  rendered by the module's own PHP (php/magento_storefront.php gives it the Magento classes it uses);
- shopify: the theme app extension's block, as the app version holds it (its digest checked by verify),
  rendered by Shopify's Liquid (ruby/shopify_storefront.rb) with its script where the release published it.
"""

from __future__ import annotations

import html
import io
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from varai_deploy.widgets.publishing import ChannelContext

PHP_DIR = Path(__file__).parent / "php"
RUBY_DIR = Path(__file__).parent / "ruby"
RENDER_TIMEOUT_SECONDS = 30
WORDPRESS_PLUGINS = "/wp-content/plugins"
#: Where a Magento store serves a module's view/frontend/web files (theme and locale as the Luma default).
MAGENTO_STATIC = "/static/frontend/Magento/luma/en_US"


class StorefrontPageError(RuntimeError):
    pass


@dataclass(frozen=True)
class Delivery:
    """One way shoppers get the widget: ``body(key, api_base, origin)`` is the page's markup as the
    platform renders it; ``files`` what the storefront itself serves (path -> bytes)."""

    name: str
    body: Callable[[str, str, str], str]
    files: Mapping[str, bytes] = field(default_factory=dict)
    source: str | None = None  # where the widget was published, when not served by the storefront itself


def script_tag(name: str, src: str, integrity: str | None = None, files: Mapping[str, bytes] | None = None) -> Delivery:
    """A page with the widget's script tag, as the HTML channel's README tells merchants to write it."""

    def body(key: str, api_base: str, origin: str) -> str:
        sri = f' integrity="{html.escape(integrity)}" crossorigin="anonymous"' if integrity else ""
        return (
            f'<script src="{html.escape(src)}"{sri} data-varai-api-key="{html.escape(key)}" '
            f'data-varai-api-base="{html.escape(api_base)}" defer></script>'
        )

    return Delivery(name, body, dict(files or {}), src if "://" in src else None)


def html_deliveries(ctx: ChannelContext, publications: list[dict[str, Any]]) -> list[Delivery]:
    found = [script_tag("cdn script tag", url, ctx.manifest.widget_sri) for url in _pinned_cdn(publications)[:1]]
    bundled = "/assets/varai-widget.min.js"
    found.append(script_tag("npm package", bundled, files={bundled: _npm_widget(ctx)}))
    return found


def woocommerce_deliveries(ctx: ChannelContext, publications: list[dict[str, Any]]) -> list[Delivery]:
    """The plugin as WordPress installs it: the published SVN tag."""
    from varai_deploy.hooks.wordpress_svn import WordPressSvnHook
    from varai_deploy.widgets.channels.woocommerce import CHANNEL, ROLE

    hook = WordPressSvnHook(ctx.connection(ROLE), channel=CHANNEL)
    tag = f"tags/{ctx.manifest.package_version}"
    return [wordpress_plugin(hook.export(tag, ctx.scratch_dir / "wordpress-plugin"), hook.url(tag))]


def wordpress_plugin(plugin: Path, source: str | None = None) -> Delivery:
    """A WordPress page with the plugin active: its [varai_discovery] shortcode in the content, its enqueued
    scripts in the footer, its files served where WordPress serves a plugin's."""
    from varai_deploy.widgets.build import WOOCOMMERCE_SLUG

    folder = f"{WORDPRESS_PLUGINS}/{WOOCOMMERCE_SLUG}"
    files = {f"{folder}/{p.relative_to(plugin).as_posix()}": p.read_bytes() for p in plugin.rglob("*") if p.is_file()}

    def body(key: str, api_base: str, origin: str) -> str:
        settings = {"api_key": key, "api_base": api_base, "floating": "1"}
        main = plugin / f"{WOOCOMMERCE_SLUG}.php"
        rendered = json.loads(
            _render("php", PHP_DIR / "wordpress_storefront.php", [str(main), origin + folder], settings)
        )
        return f"<main>{rendered['shortcode']}</main>\n{rendered['footer']}"

    return Delivery("WordPress plugin", body, files, source)


def magento_deliveries(ctx: ChannelContext, publications: list[dict[str, Any]]) -> list[Delivery]:
    """The module as Composer installs it: the repository's dist zip."""
    import requests

    from varai_deploy.widgets.channels.magento_composer import Repository

    repo = Repository(ctx)
    url = repo.hook.public_url(repo.dist(ctx.manifest.package_version))
    answer = requests.get(url, timeout=30)
    if answer.status_code != 200:
        raise StorefrontPageError(f"the Composer package {url} answered HTTP {answer.status_code}")
    module = ctx.scratch_dir / "magento-module"
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        archive.extractall(module)
    return [magento_module(module, url)]


def magento_module(module: Path, source: str | None = None) -> Delivery:
    """A Magento page with the module enabled: its layout's head scripts (served where Magento serves a module's
    static files) and its block, rendered by the block's own class and template."""
    web = module / "view" / "frontend" / "web"
    head, files = [], {}
    layout = module / "view" / "frontend" / "layout" / "default.xml"
    for script in ET.parse(layout).getroot().iter("script"):  # noqa: S314 - the release's own module
        name, _, path = script.get("src", "").partition("::")  # VarAI_AIDiscovery::js/varai-widget.js
        served = f"{MAGENTO_STATIC}/{name}/{path}"
        files[served] = (web / path).read_bytes()
        head.append(f'<script type="text/javascript" src="{html.escape(served)}"></script>')

    def body(key: str, api_base: str, origin: str) -> str:
        settings = {"enabled": "1", "api_key": key, "api_base": api_base}
        template = module / "view" / "frontend" / "templates" / "widget.phtml"
        block = _render(
            "php", PHP_DIR / "magento_storefront.php", [str(module / "Block" / "Widget.php"), str(template)], settings
        )
        return "\n".join(head) + f"\n<main>Frames</main>\n{block}"

    return Delivery("Magento module", body, files, source)


def shopify_deliveries(ctx: ChannelContext, publications: list[dict[str, Any]]) -> list[Delivery]:
    """The app block of the extension the app version holds, its widget.js from the CDN's pinned copy (the
    same bytes Shopify serves for the extension's asset: verify checked both)."""
    from varai_deploy.widgets.channels.shopify import CHANNEL

    pinned = _pinned_cdn(publications)
    if not pinned:
        raise StorefrontPageError(f"{CHANNEL}: no pinned CDN copy of the widget among {publications}")
    layout = ctx.manifest.channels[CHANNEL]
    extension = ctx.build_dir / layout.root
    return [shopify_app_block(extension, {Path(layout.widget).name: pinned[0]}, pinned[0])]


def shopify_app_block(extension: Path, assets: Mapping[str, str], source: str | None = None) -> Delivery:
    """A Shopify product page with the app block added in the theme editor, the merchant's key (and, off
    production, the API's address) in its settings; wrapped as Shopify wraps an app block."""
    block = extension / "blocks" / "varai_discovery.liquid"

    def body(key: str, api_base: str, origin: str) -> str:
        given = {"settings": {"api_key": key, "api_base": api_base}, "assets": dict(assets)}
        rendered = _render("ruby", RUBY_DIR / "shopify_storefront.rb", [str(block)], given)
        return f'<main>Frames</main>\n<div id="shopify-block-varai" class="shopify-app-block">{rendered}</div>'

    return Delivery("Shopify app block", body, {}, source)


def _pinned_cdn(publications: list[dict[str, Any]]) -> list[str]:
    """The channel's versioned CDN URLs (not the ``latest`` alias)."""
    return [p["location"] for p in publications if p["destination"] == "cdn" and "/latest/" not in p["location"]]


#: The channels with storefront pages, and how each delivers the widget.
CHANNELS: dict[str, Callable[[ChannelContext, list[dict[str, Any]]], list[Delivery]]] = {
    "html": html_deliveries,
    "shopify": shopify_deliveries,
    "woocommerce": woocommerce_deliveries,
    "magento": magento_deliveries,
}


def deliveries(channel_name: str, ctx: ChannelContext, publications: list[dict[str, Any]]) -> list[Delivery]:
    return CHANNELS[channel_name](ctx, publications)


def _render(program: str, script: Path, args: list[str], given: dict[str, Any]) -> str:
    """Runs a platform's own renderer (php-cli, Ruby's liquid); what it is given (the API key among it) goes
    through stdin, never the command line."""
    found = shutil.which(program)
    if not found:
        raise StorefrontPageError(f"{program} is needed to render {script.stem}'s markup: `make setup` installs it")
    done = subprocess.run(
        [found, str(script), *args],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise StorefrontPageError(
            f"{script.name} failed (exit {done.returncode}): {(done.stderr or done.stdout)[-600:]}"
        )
    return done.stdout


def _npm_widget(ctx: ChannelContext) -> bytes:
    """The widget as ``npm install @varai/widget@<version>`` gets it: the registry's tarball, its file."""
    from varai_deploy.hooks.npm import NpmRegistryHook
    from varai_deploy.widgets.build import HTML_WIDGET
    from varai_deploy.widgets.channels.html_npm import PACKAGE, ROLE, tarball_files

    hook = NpmRegistryHook(ctx.connection(ROLE), channel="html")
    tarball = hook.pack(f"{PACKAGE}@{ctx.manifest.package_version}", ctx.scratch_dir / "npm-pack")
    files = tarball_files(tarball)
    if HTML_WIDGET not in files:
        raise StorefrontPageError(f"{tarball.name} has no {HTML_WIDGET}")
    return files[HTML_WIDGET]
