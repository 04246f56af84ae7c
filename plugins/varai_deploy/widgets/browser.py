"""Debian's headless Chromium through its chromium-driver (``make setup`` installs both): the browser Phase 4
opens storefronts in, and the tests look at pages with. Selenium never fetches a driver (SE_OFFLINE).

Each session gets a scratch directory of its own, removed when it ends: its profile, and the temp dir
(TMPDIR) Chromium makes its singleton socket directory in. Chromium does not remove that one when the
driver quits, so every storefront check used to leave an ``org.chromium.Chromium.*`` directory in /tmp.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


class BrowserMissingError(RuntimeError):
    pass


@contextmanager
def headless_chromium(*extra_args: str) -> Iterator:
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        raise BrowserMissingError(
            f"{CHROMIUM} and {CHROMEDRIVER} are needed: `make setup` installs chromium and chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    for arg in extra_args:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with tempfile.TemporaryDirectory(prefix="varai-browser-", ignore_cleanup_errors=True) as scratch:
        options.add_argument(f"--user-data-dir={scratch}/profile")
        service = Service(str(CHROMEDRIVER), env={**os.environ, "TMPDIR": scratch})
        driver = webdriver.Chrome(service=service, options=options)
        try:
            yield driver
        finally:
            driver.quit()
