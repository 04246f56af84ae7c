"""A release made the way a person makes one: ``make airflow`` and its UI in a real browser (Debian's
headless Chromium through chromium-driver), from the trigger form to what is live.

Screenshots of each step go to ``$VARAI_SCREENSHOTS`` (default: the test's tmp dir), so a failure shows
what the page looked like. Versions are v5.x, this module's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import local_airflow
from tests.support.airflow_cluster import AirflowApi, login
from tests.support.browser import chromium, eventually, sees, visible_text
from tests.support.stack import gateway_versions
from varai_deploy.services import SERVICE_NAMES

pytestmark = pytest.mark.integration

PORT = 19881
BASE = f"http://127.0.0.1:{PORT}"
RELEASE = "ai_discovery_release"


@pytest.fixture(scope="module")
def airflow(stack, sandbox) -> Iterator[str]:
    with local_airflow.running(Path(stack["VARAI_AIRFLOW_HOME"]), PORT) as password:
        yield password


@pytest.fixture
def browser(tmp_path):
    with chromium(tmp_path) as driver:
        yield driver


def click(driver, css: str) -> None:
    """A real click on ``css``, found afresh until it holds still (React re-renders the form)."""
    from selenium.webdriver.common.by import By

    eventually(lambda: driver.find_element(By.CSS_SELECTOR, css).click() is None, f"a click on {css}")


def trigger_button(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, "//*[@role='dialog']//button[normalize-space(.)='Trigger']")


def log_in(driver, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{BASE}/")
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    eventually(lambda: "/auth/login" not in driver.current_url, "logged in")


def test_a_release_from_the_form_says_what_it_is_and_ends_showing_what_is_live(airflow, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    version = "v5.1.0"
    api = AirflowApi(BASE, login(BASE, airflow))
    api.wait_for_dag(RELEASE, timeout=90)
    log_in(browser, airflow)
    browser.get(f"{BASE}/dags/{RELEASE}")
    click(browser, "button[aria-label='Trigger Dag']")

    # The form offers the allowed values; the version's help says in words what it expects.
    sees(browser, "v, then MAJOR.MINOR.PATCH, e.g. v1.4.2")
    for label in ("analytics", "api-gateway", "Shopify app", "Magento 2 module (Composer, Marketplace)"):
        sees(browser, label)

    # A malformed version: the refusal, in words, where the form is.
    browser.find_element(By.ID, "element_version").send_keys("1.0")
    browser.execute_script("arguments[0].scrollIntoView(); arguments[0].click();", trigger_button(browser))
    sees(browser, "Invalid input for param version: '1.0' is not a release tag: v, then MAJOR.MINOR.PATCH")
    assert "Failed validating" not in visible_text(browser) and "[1-9]" not in visible_text(browser)
    browser.shoot("1-refused-in-words")

    # All five services (one taken off and chosen again from the offered values), no marketplace
    # selected: a backend-only release.
    field = browser.find_element(By.ID, "element_version")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(version)

    def chosen_services() -> str:
        return browser.find_element(By.ID, "element_services").text

    def take_analytics_off() -> bool:  # clicked again if a re-render swallowed the click
        if "analytics" in chosen_services():
            browser.find_element(By.CSS_SELECTOR, "#element_services [aria-label='Remove analytics']").click()
        return "analytics" not in chosen_services()

    eventually(take_analytics_off, "analytics taken off")
    services = browser.find_element(
        By.CSS_SELECTOR, "#element_services input[aria-label='Select one or multiple values']"
    )
    services.send_keys("analytics", Keys.ENTER)
    eventually(lambda: "analytics" in chosen_services(), "analytics chosen again")
    click(browser, "#element_marketplaces button[aria-label='Clear selected options']")
    chosen = browser.find_element(By.ID, "element_marketplaces")
    eventually(lambda: "Shopify app" not in chosen.text, "no marketplace chosen")
    assert browser.find_element(By.ID, "element_version").get_attribute("value") == version
    browser.shoot("2-form")
    browser.execute_script("arguments[0].scrollIntoView(); arguments[0].click();", trigger_button(browser))

    # The run is named by what it does, and its header says it.
    run_url = re.compile(rf"/dags/{RELEASE}/runs/(release__{re.escape(version)}__sandbox__\d{{8}}T\d{{6}}\.\d{{3}})$")
    eventually(lambda: run_url.search(browser.current_url), "the new run's page", timeout=30)
    run_id = run_url.search(browser.current_url)[1]
    conf = api.run(RELEASE, run_id)["conf"]
    assert conf["services"] == [*(s for s in SERVICE_NAMES if s != "analytics"), "analytics"], conf
    sees(browser, f"Release {version} to sandbox: {', '.join(conf['services'])}, backend only (no widgets)", 30)
    assert api.wait_for_run(RELEASE, run_id, timeout=300) == "success", api.describe_run(RELEASE, run_id)
    assert {service: served[1] for service, served in gateway_versions().items()} == dict.fromkeys(
        SERVICE_NAMES, version
    )
    assert api.run(RELEASE, run_id)["conf"]["marketplaces"] is None

    browser.refresh()
    sees(browser, "Success")
    browser.shoot("3-run")

    # The runs list tells releases apart by their names.
    browser.get(f"{BASE}/dags/{RELEASE}/runs")
    sees(browser, run_id)
    browser.shoot("4-runs-list")

    # Mapped tasks are labelled by their service.
    browser.get(f"{BASE}/dags/{RELEASE}/runs/{run_id}/tasks/backend.candidates.wait_healthy/mapped")
    sees(browser, "analytics")
    browser.shoot("5-mapped-by-service")

    # The analysis says what it measured against which threshold, outside any collapsed group.
    browser.get(f"{BASE}/dags/{RELEASE}/runs/{run_id}/tasks/backend.analysis")
    sees(browser, "Verdict pass after", timeout=30)
    sees(browser, "error rate ai-discovery ")
    sees(browser, "(threshold 5.0%, over")
    browser.shoot("6-analysis")

    # The outcome: where things are now, as the last lines of the run's finish, in plain view.
    browser.get(f"{BASE}/dags/{RELEASE}/runs/{run_id}/tasks/finish")
    sees(browser, "Where things are now", timeout=30)
    sees(browser, f"analytics: {version}")
    browser.shoot("7-where-things-are-now")

    # ... and as the asset event the finish emitted, one click away (its Asset Events tab).
    browser.find_element(
        By.XPATH, "//*[@role='tab' or self::a or self::button][normalize-space(.)='Asset Events']"
    ).click()
    sees(browser, "varai-release-sandbox")
    browser.shoot("8-asset-event")
