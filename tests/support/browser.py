"""Debian's headless Chromium through chromium-driver (``make setup`` installs both), for tests that look at
a page as a person does: the Airflow UI, a storefront with the widget.

Screenshots go to ``$VARAI_SCREENSHOTS`` (default: the test's tmp dir), so a failure shows the page."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def chromium(shots: Path) -> Iterator:
    """The project's headless Chromium (varai_deploy.widgets.browser), waiting up to 10 s for elements, with
    ``driver.shoot(name)`` and a last screenshot however the block ends."""
    from varai_deploy.widgets.browser import headless_chromium

    with headless_chromium() as driver:
        driver.implicitly_wait(10)
        shots = Path(os.environ.get("VARAI_SCREENSHOTS", shots))
        shots.mkdir(parents=True, exist_ok=True)
        driver.shoot = lambda name: driver.save_screenshot(str(shots / f"{name}.png"))
        try:
            yield driver
        finally:
            driver.shoot("last")


def eventually(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Until ``check()`` holds (pages render and fetch on their own time)."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except WebDriverException:
            pass  # an element re-rendered under us: look again
        time.sleep(0.3)
    raise AssertionError(f"not seen within {timeout:.0f} s: {what}")


def visible_text(driver) -> str:
    """What a person sees: Selenium's text is only what is rendered visible (not a collapsed group)."""
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def sees(driver, text: str, timeout: float = 20) -> None:
    eventually(lambda: text in visible_text(driver), repr(text), timeout)
