"""Phase 4's storefront check (varai_deploy.widgets.storefront) in Debian's headless Chromium against a real
sandbox gateway: the widget as each delivery brings it, its load time, and a shopper's search."""

from __future__ import annotations

import dataclasses
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.sandbox import deploy
from tests.support.threaded_http import serving
from varai_deploy.config import load_environment
from varai_deploy.sandbox import Sandbox
from varai_deploy.widgets import Manifest, build_release
from varai_deploy.widgets.build import WOOCOMMERCE_SLUG, magento_zip_name
from varai_deploy.widgets.storefront import StorefrontCheckError, StorefrontSearchError, check
from varai_deploy.widgets.storefront_pages import (
    StorefrontPageError,
    magento_module,
    script_tag,
    shopify_app_block,
    wordpress_plugin,
)

SCRIPT = "html/dist/varai-widget.min.js"


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("storefront") / "build"
    build_release("v1.2.3", out)
    return out


@pytest.fixture(scope="module")
def built(out: Path):
    return Manifest.load(out / "manifest.json"), (out / SCRIPT).read_bytes()


def bundled(script: bytes):
    """The npm package's file, served by the storefront itself as a bundler ships it."""
    return script_tag("npm package", "/assets/w.js", files={"/assets/w.js": script})


def cdn_serving(script: bytes):
    """A CDN for the widget's file (cross-origin readable, as the sandbox's and Cloud CDN's are)."""

    class Cdn(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/javascript")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(script)))
            self.end_headers()
            self.wfile.write(script)

        def log_message(self, *args) -> None:
            pass

    return serving(ThreadingHTTPServer(("127.0.0.1", 0), Cdn))


def test_both_deliveries_load_fast_and_the_search_comes_from_the_release(sandbox_env: Sandbox, built):
    manifest, script = built
    deploy(sandbox_env, "ai-discovery", "v1.2.3")
    with cdn_serving(script) as port:
        found = [
            script_tag(
                "cdn script tag",
                f"http://127.0.0.1:{port}/widgets/html/1.2.3/js/varai-widget.min.js",
                manifest.widget_sri,
            ),
            bundled(script),
        ]
        report = check(load_environment("sandbox"), "v1.2.3", found, ["ai-discovery"])
    assert set(report) == {"cdn script tag", "npm package"}
    for row in report.values():
        assert row["loads"] == 5 and 0 < row["load_p95_seconds"] < 3
        assert row["search"] == "3 frames from v1.2.3"


def test_bytes_that_do_not_match_the_sri_never_run_and_the_check_says_so(sandbox_env: Sandbox, built):
    manifest, script = built
    with cdn_serving(script + b"\n// changed on the way") as port:
        tampered = script_tag("cdn script tag", f"http://127.0.0.1:{port}/w.js", manifest.widget_sri)
        refused = r"the browser refused the widget's script.*(integrity|digest)"  # at once: it never runs
        with pytest.raises(StorefrontCheckError, match=refused) as failed:
            check(load_environment("sandbox"), "v1.2.3", [tampered], ["ai-discovery"])
    assert not isinstance(failed.value, StorefrontSearchError), "a channel's delivery, not the backend's search"


def test_a_search_answered_by_another_version_fails_naming_both(sandbox_env: Sandbox, built):
    _, script = built
    deploy(sandbox_env, "ai-discovery", "v1.2.3")
    with pytest.raises(StorefrontSearchError, match=r"npm package .*answered by v1\.2\.3, not v1\.3\.0"):
        check(load_environment("sandbox"), "v1.3.0", [bundled(script)], ["ai-discovery"])


def test_a_version_that_refuses_browsers_fails_the_search_as_the_shopper_sees_it(sandbox_env: Sandbox, built):
    """Health, the analysis's scripted search and the load generator see nothing wrong with it; a browser does."""
    _, script = built
    sandbox_env.register_fault("v1.2.4", "browser_refused", ["ai-discovery"])
    deploy(sandbox_env, "ai-discovery", "v1.2.4")
    with pytest.raises(StorefrontSearchError, match=r"search for 'round' showed 'Frame suggestions are not available"):
        check(load_environment("sandbox"), "v1.2.4", [bundled(script)], ["ai-discovery"])


def test_a_load_time_over_the_key_metric_fails_with_the_figure(sandbox_env: Sandbox, built):
    _, script = built
    deploy(sandbox_env, "ai-discovery", "v1.2.3")
    strict = dataclasses.replace(load_environment("sandbox"), load_time_p95_seconds=0.000001, storefront_loads=2)
    with pytest.raises(StorefrontCheckError, match=r"load time p95 is \d+\.\d\d s over 2 first visits, above 1e-06 s"):
        check(strict, "v1.2.3", [bundled(script)], ["ai-discovery"])


@pytest.fixture
def https_storefronts_only(sandbox_env: Sandbox):
    """The environment and its gateway letting only https storefronts call the API, as staging and production do."""
    from varai_deploy.sandbox.edge import write_policy
    from varai_deploy.sandbox.gateway import gateway_dir

    env = load_environment("sandbox")
    https_only = dataclasses.replace(env.gateway, allowed_origins=("https://*",))
    write_policy(gateway_dir(sandbox_env.settings.home), https_only)
    try:
        yield dataclasses.replace(env, gateway=https_only)
    finally:
        write_policy(gateway_dir(sandbox_env.settings.home), env.gateway)


def test_where_only_https_storefronts_may_call_the_api_the_shop_is_served_over_tls(
    sandbox_env: Sandbox, built, https_storefronts_only
):
    _, script = built
    deploy(sandbox_env, "ai-discovery", "v1.2.3")
    report = check(https_storefronts_only, "v1.2.3", [bundled(script)], ["ai-discovery"])
    assert report["npm package"]["origin"] == "https://storefront.varai-release-check.test"
    assert report["npm package"]["search"] == "3 frames from v1.2.3"


def test_where_no_storefront_of_the_check_may_call_the_api_the_search_is_left_to_phase_5(sandbox_env: Sandbox, built):
    _, script = built
    env = load_environment("sandbox")
    one_shop = dataclasses.replace(
        env, gateway=dataclasses.replace(env.gateway, allowed_origins=("https://shop.test",))
    )
    report = check(one_shop, "v1.2.3", [bundled(script)], ["ai-discovery"])
    assert report["npm package"]["search"].startswith("skipped: gateway.allowed_origins of sandbox lets no storefront")


def test_the_check_key_must_be_there(sandbox_env: Sandbox, built, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VARAI_GATEWAY", '{"conn_type": "http", "host": "127.0.0.1"}')
    with pytest.raises(StorefrontCheckError, match="varai_gateway has no password"):
        check(load_environment("sandbox"), "v1.2.3", [], ["ai-discovery"])


def test_the_wordpress_plugin_and_the_magento_module_render_a_widget_that_searches(sandbox_env: Sandbox, out, tmp_path):
    """The plugin's and the module's own PHP render their markup (the key and the API's address from their
    settings); the page loads the widget from where each platform serves a plugin's or a module's files."""
    deploy(sandbox_env, "ai-discovery", "v1.2.3")
    module = tmp_path / "module"
    with zipfile.ZipFile(out / "magento" / magento_zip_name("1.2.3")) as archive:
        archive.extractall(module)
    found = [wordpress_plugin(out / "woocommerce" / WOOCOMMERCE_SLUG), magento_module(module)]
    report = check(load_environment("sandbox"), "v1.2.3", found, ["ai-discovery"])
    assert {name: row["search"] for name, row in report.items()} == {
        "WordPress plugin": "3 frames from v1.2.3",
        "Magento module": "3 frames from v1.2.3",
    }


def test_the_plugins_markup_is_its_own_with_the_settings_escaped(out):
    page = wordpress_plugin(out / "woocommerce" / WOOCOMMERCE_SLUG).body('k"<1', "http://api.test", "http://shop")
    assert '<div class="varai-discovery" data-varai-widget data-varai-api-key="k&quot;&lt;1"' in page
    assert 'src="http://shop/wp-content/plugins/varai-ai-discovery/assets/js/varai-widget.min.js?ver=1.2.3"' in page


def test_the_shopify_app_block_rendered_by_liquid_loads_the_widget_from_the_cdn_and_searches(
    sandbox_env: Sandbox, built, out
):
    """The block's Liquid, as a live storefront renders it, with its asset where the release published it."""
    _, script = built
    deploy(sandbox_env, "ai-discovery", "v1.2.3")
    with cdn_serving(script) as port:
        url = f"http://127.0.0.1:{port}/widgets/shopify/1.2.3/widget.js"
        block = shopify_app_block(out / "shopify", {"widget.js": url}, url)
        report = check(load_environment("sandbox"), "v1.2.3", [block], ["ai-discovery"])
    assert report["Shopify app block"]["search"] == "3 frames from v1.2.3"


def test_the_shopify_blocks_markup_is_its_own_settings_escaped_and_production_needs_no_address(out):
    block = shopify_app_block(out / "shopify", {"widget.js": "https://cdn.test/w.js"})
    page = block.body('k"<1', "http://api.test", "http://shop")
    assert '<script src="https://cdn.test/w.js" defer="defer"></script>' in page
    assert 'data-varai-api-key="k&quot;&lt;1"' in page and 'data-varai-api-base="http://api.test"' in page
    assert 'data-varai-label="Find your frames"' in page, "a setting left alone has its schema default"
    assert "schema" not in page and '"settings"' not in page
    # A production shop leaves the address blank: the widget calls its default, https://api.varai.ai.
    assert "data-varai-api-base" not in block.body("k", "", "http://shop")


def test_a_block_asking_for_an_asset_nobody_published_fails_the_render_naming_it(out, tmp_path):
    extension = tmp_path / "shopify"
    (extension / "blocks").mkdir(parents=True)
    liquid = (out / "shopify" / "blocks" / "varai_discovery.liquid").read_text()
    (extension / "blocks" / "varai_discovery.liquid").write_text(liquid.replace("'widget.js'", "'widget-v2.js'"))
    with pytest.raises(StorefrontPageError, match="asset_url: widget-v2.js is not an asset this release published"):
        shopify_app_block(extension, {"widget.js": "https://cdn.test/w.js"}).body("k", "", "http://shop")


@pytest.mark.parametrize(
    ("message", "refused"),
    [
        (
            "http://127.0.0.1:1/shop - Failed to find a valid digest in the 'integrity' attribute for resource "
            "'http://127.0.0.1:2/w.js' with computed SHA-384 integrity 'abc'. The resource has been blocked.",
            True,
        ),
        ("Refused to load the script 'http://cdn/w.js' because it violates the Content Security Policy", True),
        (
            "Mixed Content: The page at 'https://shop/' was loaded over HTTPS, but requested an insecure script "
            "'http://cdn/w.js'. This request has been blocked; the content must be served over HTTPS.",
            True,
        ),
        ("http://127.0.0.1:1/favicon.ico - Failed to load resource: the server responded with a status of 404", False),
        (
            "Mixed Content: The page at 'https://shop/' was loaded over HTTPS, but requested an insecure image "
            "'http://cdn/frame.png'. This content should also be served over HTTPS.",
            False,
        ),
    ],
)
def test_only_a_refused_script_ends_the_wait_for_the_widget_early(message, refused):
    from varai_deploy.widgets.storefront import _refuses_script

    assert _refuses_script(message) is refused
