"""A person's path through the ``kdx serve`` pages in a real browser (headless Chromium
through Selenium and Debian's chromedriver): problems, a problem, one of its dumps, the
failed jobs, logging in. The site is the real embedded fleet with real lab dumps.

With ``KDX_SCREENSHOT=FILE`` set, the problems page is also saved there as a PNG (the
screenshot in docs/fleet.md is made so).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from webfleet import TOKEN, shared_site

CHROMEDRIVER = Path("/usr/bin/chromedriver")
NULL_TITLE = "BUG: kernel NULL pointer dereference in hello_init [hello_crash]"


@pytest.fixture(scope="module")
def site(request, tmp_path_factory):  # noqa: ANN001, ANN201 (fixtures)
    return shared_site(request, tmp_path_factory)


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201 (a selenium WebDriver)
    if not CHROMEDRIVER.exists():
        pytest.skip("no /usr/bin/chromedriver (Debian's chromium-driver package)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(
        executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _follow(browser, element) -> None:  # noqa: ANN001
    """Click ``element`` and wait until the browser has left the page it was on (a click
    returns before the next page has loaded)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 60).until(expected_conditions.staleness_of(page))


def _text(browser) -> str:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    return browser.find_element(By.TAG_NAME, "body").text


def test_problems_to_a_dump_to_the_failed_jobs(site, browser) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    browser.get(site.url + "/problems")
    assert browser.title == "Problems · kdx"
    if os.environ.get("KDX_SCREENSHOT"):
        browser.save_screenshot(os.environ["KDX_SCREENSHOT"])
    listed = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#problems td a")]
    assert NULL_TITLE in listed
    assert "WARNING in crashlab_check_budget [crashlab_warn]" in listed

    _follow(browser, browser.find_element(By.LINK_TEXT, NULL_TITLE))
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith(NULL_TITLE)
    page = _text(browser)
    assert "Occurrences per day" in page and "Dumps per kernel" in page
    assert "null-pointer-dereference" in page
    dump_links = browser.find_elements(By.CSS_SELECTOR, "#dumps td a")
    assert dump_links
    dump_id = dump_links[0].text
    _follow(browser, dump_links[0])

    assert browser.find_element(By.TAG_NAME, "h1").text == f"Dump {dump_id}: {NULL_TITLE}"
    assert browser.find_element(By.ID, "state").text == "analysed"
    page = _text(browser)
    assert "hello_init+0x" in page and "Culprit" in page and "[hello_crash]" in page
    assert "bt -a" in page and "Log in to download" in page

    _follow(browser, browser.find_element(By.LINK_TEXT, "Failed jobs"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Failed jobs"
    row = browser.find_element(By.CSS_SELECTOR, "#jobs tbody tr")
    assert "a crash dump kdx knows" in row.text and "log in to retry" in row.text
    _follow(browser, row.find_element(By.LINK_TEXT, "log in to retry"))

    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    _follow(browser, browser.find_element(By.CSS_SELECTOR, "form.stack button"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Failed jobs"
    row = browser.find_element(By.CSS_SELECTOR, "#jobs tbody tr")
    assert row.find_element(By.TAG_NAME, "button").text == "Retry"
    assert "Log out" in _text(browser)
    noise = site.dumps["noise"]["id"]
    _follow(browser, row.find_element(By.LINK_TEXT, f"#{noise}"))
    assert browser.find_element(By.ID, "failure").text.startswith("Failed: ")
    assert browser.find_element(By.LINK_TEXT, "Download the dump").get_attribute(
        "href").endswith(f"/dumps/{noise}/download")
