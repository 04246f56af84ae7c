"""The widget on a storefront, in a real browser (headless Chromium): a shop page on its own origin loads the
built script from a CDN origin with its SRI, and searches through the sandbox's real gateway and services.

What a merchant and a shopper see: the search works from an allowed storefront origin and shows frames; a
foreign origin is refused by the browser (CORS); a bad key and a burst past the key's limit are told in words."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support import threaded_http
from tests.support.browser import chromium, eventually, sees
from tests.support.sandbox import deploy
from varai_deploy.sandbox import Sandbox, api_keys
from varai_deploy.sandbox.credentials import api_key
from varai_deploy.sandbox.gateway import gateway_dir
from varai_deploy.widgets import Manifest

SCRIPT = "html/dist/varai-widget.min.js"


@contextmanager
def serving(host: str, answer) -> Iterator[str]:
    """A tiny HTTP server on ``host``: ``answer(path, query) -> (status, content type, body, headers)``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            status, ctype, body, headers = answer(url.path, parse_qs(url.query))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    with threaded_http.serving(ThreadingHTTPServer((host, 0), Handler)) as port:
        yield f"http://{host}:{port}"


@pytest.fixture
def storefront(sandbox: Sandbox, built: tuple[Path, Manifest]) -> Iterator[dict]:
    """ai-discovery v1.2.3 live behind the gateway; a CDN origin serving the built script (CORS, for SRI); a shop
    page on 127.0.0.1 (an allowed storefront origin) and the same shop on 127.0.0.2 (not allowed)."""
    out, manifest = built
    deploy(sandbox, "ai-discovery", "v1.2.3")
    script = (out / SCRIPT).read_bytes()

    def cdn(path, _query):
        if path == "/widgets/html/latest/js/varai-widget.min.js":
            return 200, "application/javascript", script, [("Access-Control-Allow-Origin", "*")]
        return 404, "text/plain", b"not found", []

    with serving("127.0.0.1", cdn) as cdn_url:

        def shop(path, query):
            key = query.get("key", [""])[0]
            page = f"""<!doctype html><html><head><title>Frames &amp; Co</title></head><body>
<h1>Frames &amp; Co</h1>
<script src="{cdn_url}/widgets/html/latest/js/varai-widget.min.js" integrity="{manifest.widget_sri}"
  crossorigin="anonymous" data-varai-api-key="{key}" data-varai-api-base="{sandbox.settings.gateway_url}"
  defer></script></body></html>"""
            return (200, "text/html", page.encode(), []) if path == "/" else (404, "text/plain", b"", [])

        with serving("127.0.0.1", shop) as allowed, serving("127.0.0.2", shop) as foreign:
            yield {"allowed": allowed, "foreign": foreign, "settings": sandbox.settings}


def search(driver, page: str, words: str = "round") -> None:
    from selenium.webdriver.common.by import By

    driver.get(page)
    eventually(lambda: driver.find_element(By.CSS_SELECTOR, ".varai-widget__button").is_displayed(), "the widget")
    driver.find_element(By.CSS_SELECTOR, ".varai-widget__button").click()
    box = driver.find_element(By.CSS_SELECTOR, ".varai-widget__input")
    box.clear()
    box.send_keys(words)
    driver.find_element(By.CSS_SELECTOR, ".varai-widget__submit").click()


def status(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, ".varai-widget__status").text


def test_a_shopper_on_an_allowed_storefront_searches_and_sees_frames_from_the_live_version(storefront, tmp_path):
    from selenium.webdriver.common.by import By

    key = api_key(storefront["settings"], "demo-storefront")
    with chromium(tmp_path) as driver:
        search(driver, f"{storefront['allowed']}/?key={key}", "round wire")
        sees(driver, "3 frames for you")
        names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".varai-widget__name")]
        assert names[0] == "Round Wire"  # the best match for the words
        driver.shoot("storefront-search")
        # The page's script reads which revision answered: the gateway exposes X-Served-* cross-origin.
        served = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0] + '/ai/discover?q=round', {headers: {'X-API-Key': arguments[1]}})"
            ".then(r => done([r.status, r.headers.get('X-Served-Version')]), e => done(String(e)));",
            storefront["settings"].gateway_url,
            key,
        )
        assert served == [200, "v1.2.3"]


def test_a_foreign_origin_is_refused_by_the_browser_and_the_shopper_is_told_politely(storefront, tmp_path):
    key = api_key(storefront["settings"], "demo-storefront")
    with chromium(tmp_path) as driver:
        search(driver, f"{storefront['foreign']}/?key={key}")
        sees(driver, "Sorry, frame suggestions are unavailable right now.")
        console = " ".join(entry["message"] for entry in driver.get_log("browser"))
        assert "blocked by CORS policy" in console, console


def test_a_bad_key_and_a_burst_past_the_limit_are_told_in_words(storefront, tmp_path):
    from selenium.webdriver.common.by import By

    keys = gateway_dir(storefront["settings"].home) / api_keys.KEYS_FILE
    small = api_keys.issue(keys, "small-shop", requests=2, per_seconds=60)
    with chromium(tmp_path) as driver:
        search(driver, f"{storefront['allowed']}/?key=vk_not_a_key")
        sees(driver, "Frame suggestions are not available on this shop yet.")
        assert any("refused this shop (HTTP 401)" in e["message"] for e in driver.get_log("browser"))

        search(driver, f"{storefront['allowed']}/?key={small}")
        sees(driver, "3 frames for you")
        second = driver.execute_async_script(  # the plan's second request, from the page
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0] + '/ai/discover?q=round', {headers: {'X-API-Key': arguments[1]}})"
            ".then(r => done(r.status), e => done(String(e)));",
            storefront["settings"].gateway_url,
            small,
        )
        assert second == 200
        driver.find_element(By.CSS_SELECTOR, ".varai-widget__submit").click()  # one past it
        eventually(lambda: status(driver).startswith("Lots of shoppers are searching right now"), "the 429")
        assert status(driver) == "Lots of shoppers are searching right now; please try again in 30 s."
        driver.shoot("storefront-rate-limited")

        api_keys.revoke(keys, "small-shop")
        search(driver, f"{storefront['allowed']}/?key={small}")
        sees(driver, "Frame suggestions are not available on this shop yet.")
