"""Phase 4 of the guide, integration testing: the widget as a shopper meets it, once it is published.

For each way a channel delivers the widget, a storefront page is served on loopback and opened in headless
Chromium: the widget loads from where it was published (its SRI checked by the browser), its load time is
measured over several first visits (cache off), then a shopper's search runs through the environment's
gateway and its answer must come from the release. The page carries the gateway connection's check key;
it is served to this browser only and never logged."""

from __future__ import annotations

import html
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from varai_deploy.config import EnvironmentConfig
    from varai_deploy.widgets.storefront_pages import Delivery

#: Set by the page when the widget has rendered (data-varai-ready), in ms since navigation start.
READY_PROBE = """<script>
new MutationObserver(function () {
  if (!window.__varaiReadyAt && document.querySelector('[data-varai-ready]')) {
    window.__varaiReadyAt = performance.now();
  }
}).observe(document.documentElement, {subtree: true, childList: true, attributes: true});
</script>"""
SEARCH_WORDS = "round"
PAGE_TIMEOUT_SECONDS = 20.0


class StorefrontCheckError(RuntimeError):
    pass


def check(env: EnvironmentConfig, version: str, found: list[Delivery], released: list[str]) -> dict[str, Any]:
    """Per delivery: its load time p95 and what the search found; raises on the first that fails."""
    from varai_deploy.hooks.gateway import GatewayHook
    from varai_deploy.widgets.browser import headless_chromium

    hook = GatewayHook(env.gateway_conn_id)
    key = hook.api_key()
    if not key:
        raise StorefrontCheckError(f"the connection {env.gateway_conn_id} has no password: the check key")
    report: dict[str, Any] = {}
    with headless_chromium() as driver:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
        for delivery in found:
            with storefront(delivery, key, hook.url) as page:
                searchable = env.gateway.origin_allowed(page.rstrip("/"))
                report[delivery.name] = _check_page(driver, page, delivery, env, version, released, searchable)
    return report


def _check_page(driver, page, delivery, env, version, released, searchable) -> dict[str, Any]:
    seconds = [_load(driver, page, delivery) for _ in range(env.storefront_loads)]
    p95 = _p95(seconds)
    where = f"{delivery.name} ({delivery.source or 'served by the storefront'})"
    if p95 > env.load_time_p95_seconds:
        raise StorefrontCheckError(
            f"{where}: the widget's load time p95 is {p95:.2f} s over {len(seconds)} first visits, "
            f"above {env.load_time_p95_seconds:g} s"
        )
    row: dict[str, Any] = {"load_p95_seconds": round(p95, 3), "loads": len(seconds)}
    if not searchable:
        row["search"] = f"skipped: gateway.allowed_origins of {env.name} lets no loopback storefront call the API"
        return row
    served, results = _search(driver, where)
    if "ai-discovery" in released and served != version:
        raise StorefrontCheckError(f"{where}: the search was answered by {served}, not {version}")
    row["search"] = f"{results} frames from {served}"
    return row


def _load(driver, page: str, delivery: Delivery) -> float:
    driver.get(page)
    deadline = time.monotonic() + PAGE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        ready = driver.execute_script("return window.__varaiReadyAt || null")
        if ready is not None:
            return float(ready) / 1000
        time.sleep(0.05)
    console = " ".join(e["message"] for e in driver.get_log("browser"))[-600:]
    raise StorefrontCheckError(
        f"{delivery.name}: the widget did not appear within {PAGE_TIMEOUT_SECONDS:g} s on a storefront "
        f"loading {delivery.source or 'the package'}; the browser said: {console or 'nothing'}"
    )


def _search(driver, where: str) -> tuple[str | None, int]:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, ".varai-widget__button").click()
    driver.find_element(By.CSS_SELECTOR, ".varai-widget__input").send_keys(SEARCH_WORDS)
    driver.find_element(By.CSS_SELECTOR, ".varai-widget__submit").click()
    deadline = time.monotonic() + PAGE_TIMEOUT_SECONDS
    status = ""
    while time.monotonic() < deadline:
        status = driver.find_element(By.CSS_SELECTOR, ".varai-widget__status").text
        if status and status != "Searching...":
            break
        time.sleep(0.05)
    results = len(driver.find_elements(By.CSS_SELECTOR, ".varai-widget__result"))
    if not results:
        raise StorefrontCheckError(f"{where}: a shopper's search for {SEARCH_WORDS!r} showed {status!r}")
    served = driver.find_element(By.CSS_SELECTOR, ".varai-widget").get_attribute("data-varai-served-version")
    return served, results


def _p95(values: list[float]) -> float:
    return max(values) if len(values) < 20 else statistics.quantiles(values, n=20)[18]


@contextmanager
def storefront(delivery: Delivery, key: str, api_base: str) -> Iterator[str]:
    """A shop's page on loopback with the widget as ``delivery`` brings it; the page's address."""
    served: dict[str, tuple[bytes, str]] = {}

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, ctype = served.get(self.path.split("?", 1)[0], (b"", ""))
            self.send_response(200 if ctype else 404)
            self.send_header("Content-Type", ctype or "text/plain")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()  # answers 404 until the page is made
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>Release check: {html.escape(delivery.name)}</title>{READY_PROBE}</head>"
            f"<body><h1>Frames &amp; Co</h1>\n{delivery.body(key, api_base, origin)}\n</body></html>"
        )
        served["/"] = (page.encode(), "text/html; charset=utf-8")
        served |= {path: (data, _content_type(path)) for path, data in delivery.files.items()}
        yield origin + "/"
    finally:
        server.shutdown()
        server.server_close()


def _content_type(path: str) -> str:
    return {".js": "application/javascript", ".css": "text/css", ".php": "text/plain; charset=utf-8"}.get(
        Path(path).suffix, "application/octet-stream"
    )
