"""Phase 4 of the guide, integration testing: the widget as a shopper meets it, once it is published.

For each way a channel delivers the widget, a storefront page is served on loopback and opened in headless
Chromium: the widget loads from where it was published (its SRI checked by the browser), its load time is
measured over several first visits (cache off), then a shopper's search runs through the environment's
gateway and its answer must come from the release. The page carries the gateway connection's check key;
it is served to this browser only and never logged. Where only https storefronts may call the API, the
shop is served over TLS under a name the browser maps to loopback (``Storefront``)."""

from __future__ import annotations

import html
import socket
import ssl
import statistics
import threading
import time
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
#: The https storefront's name where only https storefronts may call the API (``.test``: never a real host).
TLS_HOST = "storefront.varai-release-check.test"
PAGE_TIMEOUT_SECONDS = 20.0
#: What Chromium logs when it refuses a script (a content security policy, a MIME type, an http script on an
#: https page); and an SRI mismatch, which it logs as a blocked resource with an "integrity" attribute.
SCRIPT_REFUSED = ("Refused to load the script", "Refused to execute", "requested an insecure script")


def _refuses_script(message: str) -> bool:
    """Whether the browser said it will not run a script: the widget cannot appear, however long one waits."""
    sri_mismatch = "integrity" in message and "blocked" in message
    return sri_mismatch or any(words in message for words in SCRIPT_REFUSED)


class StorefrontCheckError(RuntimeError):
    pass


class StorefrontSearchError(StorefrontCheckError):
    """The widget loaded but a shopper's search did not work (or was not answered by the release):
    the backend's fault when it happens on every storefront (``widgets.rollback_on_failure``)."""


def check(env: EnvironmentConfig, version: str, found: list[Delivery], released: list[str]) -> dict[str, Any]:
    """Per delivery: its load time p95 and what the search found; raises on the first that fails."""
    from varai_deploy.hooks.gateway import GatewayHook
    from varai_deploy.widgets.browser import headless_chromium

    hook = GatewayHook(env.gateway_conn_id)
    key = hook.api_key()
    if not key:
        raise StorefrontCheckError(f"the connection {env.gateway_conn_id} has no password: the check key")
    report: dict[str, Any] = {}
    with Storefront(env) as shop, headless_chromium(*shop.browser_args) as driver:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
        for delivery in found:
            page = shop.show(delivery, key, hook.url)
            report[delivery.name] = _check_page(driver, page, delivery, env, version, released, shop)
    return report


def _check_page(driver, page, delivery, env, version, released, shop: Storefront) -> dict[str, Any]:
    seconds = [_load(driver, page, delivery) for _ in range(env.storefront_loads)]
    p95 = _p95(seconds)
    where = f"{delivery.name} ({delivery.source or 'served by the storefront'})"
    if p95 > env.load_time_p95_seconds:
        raise StorefrontCheckError(
            f"{where}: the widget's load time p95 is {p95:.2f} s over {len(seconds)} first visits, "
            f"above {env.load_time_p95_seconds:g} s"
        )
    row: dict[str, Any] = {"load_p95_seconds": round(p95, 3), "loads": len(seconds), "origin": shop.origin}
    if not shop.searchable:
        row["search"] = f"skipped: gateway.allowed_origins of {env.name} lets no storefront of this check call the API"
        return row
    served, results = _search(driver, where)
    if "ai-discovery" in released and served != version:
        raise StorefrontSearchError(f"{where}: the search was answered by {served}, not {version}")
    row["search"] = f"{results} frames from {served}"
    return row


def _load(driver, page: str, delivery: Delivery) -> float:
    driver.get_log("browser")  # what an earlier page said (its search, say) is not this page's
    driver.get(page)
    said: list[str] = []  # this page's console, read as it goes (reading it empties it)
    deadline = time.monotonic() + PAGE_TIMEOUT_SECONDS
    look_again = time.monotonic()
    while time.monotonic() < deadline:
        ready = driver.execute_script("return window.__varaiReadyAt || null")
        if ready is not None:
            return float(ready) / 1000
        if time.monotonic() >= look_again:
            said += [e["message"] for e in driver.get_log("browser")]
            if refused := [m for m in said if _refuses_script(m)]:
                raise StorefrontCheckError(
                    f"{delivery.name}: the browser refused the widget's script on a storefront loading "
                    f"{delivery.source or 'the package'}: {' '.join(refused)[-600:]}"
                )
            look_again = time.monotonic() + 0.5
        time.sleep(0.05)
    said += [e["message"] for e in driver.get_log("browser")]
    console = " ".join(said)[-600:]
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
        raise StorefrontSearchError(f"{where}: a shopper's search for {SEARCH_WORDS!r} showed {status!r}")
    served = driver.find_element(By.CSS_SELECTOR, ".varai-widget").get_attribute("data-varai-served-version")
    return served, results


def _p95(values: list[float]) -> float:
    return max(values) if len(values) < 20 else statistics.quantiles(values, n=20)[18]


class Storefront:
    """A shop on loopback, showing one delivery's page at a time. Its origin is one the environment's gateway
    lets call the API: ``http://127.0.0.1:<port>`` where loopback pages may (the sandbox), else
    ``https://storefront.varai-release-check.test`` (where only https storefronts may: staging, production),
    served with a certificate made for this check, which the browser reaches by mapping that name to the
    port and trusts by pinning its key (nothing else it would not trust anyway). Neither allowed: the
    pages still load, and ``searchable`` is false."""

    def __init__(self, env: EnvironmentConfig) -> None:
        self._served: dict[str, tuple[bytes, str]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self._served))
        port = self._server.server_address[1]
        self.origin = f"http://127.0.0.1:{port}"
        self.browser_args: tuple[str, ...] = ()
        self.searchable = env.gateway.origin_allowed(self.origin)
        if not self.searchable and env.gateway.origin_allowed(f"https://{TLS_HOST}"):
            self._server.socket, pin = _tls_socket(self._server.socket)
            self.origin = f"https://{TLS_HOST}"
            mapped = f"--host-resolver-rules=MAP {TLS_HOST} 127.0.0.1:{port}"
            self.browser_args = (mapped, f"--ignore-certificate-errors-spki-list={pin}")
            self.searchable = True

    def __enter__(self) -> Storefront:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()  # 404 until a page is shown
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def show(self, delivery: Delivery, key: str, api_base: str) -> str:
        """The shop's page with the widget as ``delivery`` brings it, in place of the one before; its address."""
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>Release check: {html.escape(delivery.name)}</title>{READY_PROBE}</head>"
            f"<body><h1>Frames &amp; Co</h1>\n{delivery.body(key, api_base, self.origin)}\n</body></html>"
        )
        self._served.clear()
        self._served["/"] = (page.encode(), "text/html; charset=utf-8")
        self._served.update({path: (data, _content_type(path)) for path, data in delivery.files.items()})
        return self.origin + "/"


def _handler(served: dict[str, tuple[bytes, str]]) -> type[BaseHTTPRequestHandler]:
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

    return Page


def _tls_socket(plain: socket.socket) -> tuple[ssl.SSLSocket, str]:
    """``plain`` serving TLS with a fresh self-signed certificate for TLS_HOST (its key only ever in a private
    temporary file), and the pin of its public key."""
    import tempfile

    from varai_deploy.self_signed import certificate

    made = certificate(TLS_HOST)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="varai-storefront-") as tmp:
        cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_file.write_bytes(made.cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(made.key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context.wrap_socket(plain, server_side=True), made.spki_sha256


def _content_type(path: str) -> str:
    return {".js": "application/javascript", ".css": "text/css", ".php": "text/plain; charset=utf-8"}.get(
        Path(path).suffix, "application/octet-stream"
    )
