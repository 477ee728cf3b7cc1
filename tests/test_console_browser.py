"""The console in a real headless Chromium against the real `alertdesk run` (and two `alertdesk store` processes).

People are added with the real CLI; alerts come in through the real Nagios webhook. Each test signs in afresh.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import add_user, api, chromium, fetch_status, post_nagios, sign_in, status_of
from tests.cluster import Pipeline
from tests.process import AlertdeskProcess

pytestmark = pytest.mark.slow

XSS = {
    "HOSTNAME": '"><img src=x onerror=alert(1)>',
    "SERVICEDESC": "javascript:alert(1)",
    "SERVICEOUTPUT": "<script>alert(1)</script>",
}

# Only the hosts named rb-* get a runbook; every other test sees the built-in policy's behaviour.
POLICY = """
routes:
  - match: {host: "rb-*"}
    runbook: "https://wiki.example.com/runbooks/{source}/{host}/{service}"
"""


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertdeskProcess]:
    """`alertdesk run` as shipped, with an operator (alice) and a viewer (vera) added by `alertdesk users add`."""
    workdir = tmp_path_factory.mktemp("console")
    add_user(workdir, {}, "alice", "operator")
    add_user(workdir, {}, "vera", "viewer")
    (workdir / "policy.yaml").write_text(POLICY)
    env = {"ALERTDESK_LOG_LEVEL": "INFO", "ALERTDESK_POLICY": str(workdir / "policy.yaml")}
    proc = AlertdeskProcess(workdir, env).start()
    yield proc
    proc.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def no_dialog(driver: webdriver.Chrome) -> None:
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 - the property raises when no dialog is open


def ticket_id_of(base: str, key: str) -> int:
    page: Any = api(base, "/api/tickets?" + urllib.parse.urlencode({"dedup_key": key}))
    return int(page["tickets"][0]["id"])


def history(driver: webdriver.Chrome) -> list[tuple[str, str]]:
    entries = driver.find_elements(By.CSS_SELECTOR, "#history li")
    return [(e.find_element(By.CLASS_NAME, "kind").text, e.find_element(By.CLASS_NAME, "actor").text) for e in entries]


def press(driver: webdriver.Chrome, label: str) -> None:
    """Click an action button and wait for the page its form posts to: first the old page must be gone (right
    after the click the old page still says readyState "complete"), then the new one loaded."""
    button = driver.find_element(By.XPATH, f"//section[@class='actions']//button[normalize-space()='{label}']")
    button.click()
    WebDriverWait(driver, 10).until(lambda _: gone(button))
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")


def gone(element: WebElement) -> bool:
    """Whether `element`'s page was replaced. Asked while the new page is being attached, chromedriver may answer
    "Node with given id does not belong to the document" (an unknown error, not a stale element): gone too."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc.msg):
            return True
        raise
    return False


def test_a_new_problem_appears_in_the_open_queue_without_a_reload(
    desk: AlertdeskProcess, browser: webdriver.Chrome
) -> None:
    sign_in(browser, desk.url, "alice")
    browser.get(f"{desk.url}/tickets?status=open")
    browser.execute_script("window.notReloaded = true")
    started = time.monotonic()
    key = post_nagios(desk.url, HOSTNAME="db-07", SERVICEDESC="PostgreSQL")
    number = f"INC-{ticket_id_of(desk.url, key):06d}"
    WebDriverWait(browser, 5).until(lambda d: number in d.find_element(By.ID, "queue").text)
    assert time.monotonic() - started < 5
    assert browser.execute_script("return window.notReloaded") is True
    row = browser.find_element(By.XPATH, f"//a[text()='{number}']/ancestor::tr")
    assert "PostgreSQL on db-07 is CRITICAL" in row.text and "open" in row.text


def test_an_operator_works_a_ticket_and_the_history_names_them(
    desk: AlertdeskProcess, browser: webdriver.Chrome
) -> None:
    key = post_nagios(desk.url, HOSTNAME="web-02")
    ticket_id = ticket_id_of(desk.url, key)
    sign_in(browser, desk.url, "alice")
    browser.find_element(By.LINK_TEXT, f"INC-{ticket_id:06d}").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith(f"/tickets/{ticket_id}"))
    press(browser, "Acknowledge")
    assert browser.find_element(By.ID, "acknowledged-by").text == "alice"
    browser.find_element(By.ID, "assign-group").clear()
    browser.find_element(By.ID, "assign-group").send_keys("web-team")
    browser.find_element(By.ID, "assign-person").send_keys("bob")
    press(browser, "Assign")
    assert browser.find_element(By.ID, "group").text == "web-team"
    assert browser.find_element(By.ID, "assignee").text == "bob"
    browser.find_element(By.ID, "comment-text").send_keys("restarted the pool")
    press(browser, "Add comment")
    press(browser, "Resolve")
    assert browser.find_element(By.ID, "status").text == "resolved"
    entries = history(browser)
    for kind in ("acknowledged", "assigned", "comment", "resolved"):
        assert (kind, "alice") in entries, entries
    assert "restarted the pool" in browser.find_element(By.ID, "history").text


def test_a_viewer_sees_no_action_buttons_and_a_forged_action_is_refused(
    desk: AlertdeskProcess, browser: webdriver.Chrome
) -> None:
    ticket_id = ticket_id_of(desk.url, post_nagios(desk.url, HOSTNAME="web-03"))
    sign_in(browser, desk.url, "vera")
    browser.get(f"{desk.url}/tickets/{ticket_id}")
    assert browser.find_elements(By.CSS_SELECTOR, "section.actions") == []
    assert browser.find_elements(By.XPATH, "//main//button") == []
    csrf = browser.find_element(By.NAME, "csrf").get_attribute("value")  # the sign-out form's: a valid token
    assert fetch_status(browser, f"/tickets/{ticket_id}/acknowledge", f"csrf={csrf}") == 403
    ticket: Any = api(desk.url, f"/api/tickets/{ticket_id}")
    assert ticket["acknowledged_by"] is None and ticket["status"] == "open"


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    desk: AlertdeskProcess, browser: webdriver.Chrome
) -> None:
    ticket_id = ticket_id_of(desk.url, post_nagios(desk.url, HOSTNAME="web-04"))
    sign_in(browser, desk.url, "alice")
    browser.get(f"{desk.url}/tickets/{ticket_id}")
    assert fetch_status(browser, f"/tickets/{ticket_id}/resolve", "") == 403
    assert fetch_status(browser, f"/tickets/{ticket_id}/comment", "text=sneaky&csrf=guessed") == 403
    ticket: Any = api(desk.url, f"/api/tickets/{ticket_id}")
    assert ticket["status"] == "open" and [h["kind"] for h in ticket["history"]] == ["opened"]


def test_sign_out_ends_the_session_on_the_server(desk: AlertdeskProcess, browser: webdriver.Chrome) -> None:
    sign_in(browser, desk.url, "alice")
    cookie = browser.get_cookie("alertdesk_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    jar = f"alertdesk_session={cookie['value']}"
    assert status_of(desk.url, "/tickets", jar)[0] == 200
    browser.find_element(By.XPATH, "//button[text()='Sign out']").click()
    WebDriverWait(browser, 10).until(lambda d: "/login" in d.current_url)
    assert status_of(desk.url, "/tickets", jar) == (303, "/login?next=%2Ftickets")  # the old cookie is worthless


def test_hostile_alert_text_shows_as_text_and_runs_nothing(desk: AlertdeskProcess, browser: webdriver.Chrome) -> None:
    ticket_id = ticket_id_of(desk.url, post_nagios(desk.url, **XSS))
    sign_in(browser, desk.url, "alice")
    for path in ("/tickets", f"/tickets/{ticket_id}", "/dashboard"):
        browser.get(f"{desk.url}{path}")
        no_dialog(browser)
        text = browser.find_element(By.TAG_NAME, "main").text
        assert XSS["HOSTNAME"] in text, path
        assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    text = browser.find_element(By.TAG_NAME, "main").text
    browser.get(f"{desk.url}/tickets/{ticket_id}")
    text = browser.find_element(By.TAG_NAME, "main").text
    assert XSS["SERVICEOUTPUT"] in text and XSS["SERVICEDESC"] in text
    assert browser.find_elements(By.XPATH, "//a[starts-with(@href, 'javascript')]") == []
    no_dialog(browser)


def test_the_dashboard_draws_its_charts_with_the_figures_of_the_api(
    desk: AlertdeskProcess, browser: webdriver.Chrome
) -> None:
    post_nagios(desk.url, HOSTNAME="web-05")
    sign_in(browser, desk.url, "alice")
    browser.get(f"{desk.url}/dashboard")
    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart > svg")
    assert len(charts) == 6
    assert browser.find_elements(By.CSS_SELECTOR, "figure.chart > svg rect")  # bars drawn
    stats: Any = api(desk.url, "/api/stats")
    shown = {
        e.get_attribute("data-stat"): e.text for e in browser.find_elements(By.CSS_SELECTOR, "#totals dd[data-stat]")
    }
    for name in ("total", "acknowledged", "resolved", "sla_breached", "with_sla"):
        assert shown[name] == str(stats[name]), name
    assert shown["open"] == str(stats["by_status"]["open"])


def test_the_pages_fit_a_phone_and_screenshots_are_taken(
    desk: AlertdeskProcess, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    """Screenshots go to a temporary directory; ALERTDESK_SCREENSHOTS=DIR keeps them (tests/screenshots/)."""
    folder = Path(os.environ.get("ALERTDESK_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    for host, service in (("db-01", "Replication lag"), ("lb-02", "HTTPS"), ("app-09", "Heap")):
        post_nagios(desk.url, HOSTNAME=host, SERVICEDESC=service, SERVICEOUTPUT=f"{service} CRITICAL")
    ticket_id = ticket_id_of(desk.url, "nagios:lb-02/HTTPS")
    sign_in(browser, desk.url, "alice")
    pages = {"queue": "/tickets", "ticket": f"/tickets/{ticket_id}", "dashboard": "/dashboard"}
    for name, path in pages.items():
        browser.get(f"{desk.url}{path}")
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(max(height + 100, 800), 1800))  # the whole page, as a README shows it
        assert browser.save_screenshot(str(folder / f"console-{name}.png"))
        browser.set_window_size(1280, 800)
        assert (folder / f"console-{name}.png").stat().st_size > 10_000
    browser.set_window_size(390, 844)
    try:
        for path in pages.values():
            browser.get(f"{desk.url}{path}")
            width = browser.execute_script("return document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
    finally:
        browser.set_window_size(1280, 800)


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_signed_in_through_one_store_process_the_session_works_on_the_other(
    tmp_path: Path, browser: webdriver.Chrome
) -> None:
    pipeline = Pipeline(tmp_path)
    try:
        await pipeline.start(workers=1)
        second = pipeline.process("store")  # a second store of index 0: a hot spare, serving the console too
        await asyncio.to_thread(second.start)
        pipeline.store.append(second)
        first = pipeline.store[0]
        add_user(tmp_path, pipeline.env(), "alice", "operator")
        key = post_nagios(pipeline.url, HOSTNAME="pg-07")
        sign_in(browser, first.url, "alice")
        WebDriverWait(browser, 10).until(lambda d: "pg-07" in d.find_element(By.ID, "queue").text)
        ticket_id = ticket_id_of(first.url, key)
        browser.get(f"{second.url}/tickets/{ticket_id}")  # the same cookie (same host), another process
        assert browser.find_element(By.ID, "who").text.startswith("alice")
        press(browser, "Acknowledge")
        assert browser.find_element(By.ID, "acknowledged-by").text == "alice"
        browser.find_element(By.XPATH, "//button[text()='Sign out']").click()
        WebDriverWait(browser, 10).until(lambda d: "/login" in d.current_url)
        browser.get(f"{first.url}/tickets")
        assert "/login" in browser.current_url  # signed out on one, signed out on both
    finally:
        await pipeline.close()


def test_the_runbook_opens_in_a_new_tab_without_handing_over_the_console(
    desk: AlertdeskProcess, browser: webdriver.Chrome
) -> None:
    ticket_id = ticket_id_of(desk.url, post_nagios(desk.url, HOSTNAME="rb-01", SERVICEDESC="Disk /var"))
    sign_in(browser, desk.url, "vera")
    browser.get(f"{desk.url}/tickets/{ticket_id}")
    link = browser.find_element(By.CSS_SELECTOR, "#runbook a")
    assert link.get_attribute("href") == "https://wiki.example.com/runbooks/nagios/rb-01/Disk%20%2Fvar"
    assert link.get_attribute("target") == "_blank" and link.get_attribute("rel") == "noopener noreferrer"
    console_tab = browser.current_window_handle
    link.click()
    WebDriverWait(browser, 10).until(lambda d: len(d.window_handles) == 2)
    for handle in browser.window_handles:
        if handle != console_tab:
            browser.switch_to.window(handle)
            assert browser.execute_script("return window.opener") is None  # noopener: no way back to the console
            browser.close()
    browser.switch_to.window(console_tab)
    assert browser.find_element(By.ID, "trackers").text == "-"


def test_silencing_a_host_from_its_ticket_suppresses_it_until_the_window_is_ended(
    desk: AlertdeskProcess, browser: webdriver.Chrome
) -> None:
    ticket_id = ticket_id_of(desk.url, post_nagios(desk.url, HOSTNAME="mw-01"))
    sign_in(browser, desk.url, "alice")
    browser.get(f"{desk.url}/tickets/{ticket_id}")
    press(browser, "Silence this host for 2 h")
    assert "/maintenance#window-" in browser.current_url
    window = browser.current_url.rsplit("#", 1)[1]
    row = browser.find_element(By.CSS_SELECTOR, f"#active-windows #{window}")
    assert "host=mw-01" in row.text and "source=nagios" in row.text and "alice" in row.text

    def suppressed(ticket: int) -> bool:
        found: Any = api(desk.url, f"/api/tickets/{ticket}")
        return bool(found["suppressed"])

    new_id = ticket_id_of(desk.url, post_nagios(desk.url, HOSTNAME="mw-01", SERVICEDESC="Disk /var"))
    number = f"INC-{new_id:06d}"

    def badge(driver: webdriver.Chrome) -> bool:
        driver.get(f"{desk.url}/tickets?q=mw-01")
        cells = driver.find_elements(By.XPATH, f"//a[text()='{number}']/ancestor::tr//span[@class='badge']")
        return any(c.text == "suppressed" for c in cells)

    WebDriverWait(browser, 5, poll_frequency=0.5).until(badge)
    WebDriverWait(browser, 5, poll_frequency=0.2).until(lambda _: suppressed(ticket_id))  # the one it came from

    browser.get(f"{desk.url}/maintenance")
    browser.find_element(By.XPATH, f"//tr[@id='{window}']//button[normalize-space()='End now']").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#ended-windows #{window}"))
    assert "alice" in browser.find_element(By.CSS_SELECTOR, f"#ended-windows #{window} .ended-by").text
    started = time.monotonic()  # the store's maintenance chore runs every second
    WebDriverWait(browser, 5, poll_frequency=0.2).until(lambda _: not any(map(suppressed, (ticket_id, new_id))))
    assert time.monotonic() - started < 5
    browser.get(f"{desk.url}/tickets/{new_id}")
    assert "suppressed" not in browser.find_element(By.CSS_SELECTOR, "p.state").text
