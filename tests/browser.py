"""A real headless Chromium (Debian's chromium and chromium-driver) driven through Selenium, and what it needs.

Selenium is given both executables, so selenium-manager never looks anything up or downloads a browser.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
)
PASSWORD = "correct horse battery"


def chromium(profile: Path) -> webdriver.Chrome:
    """A headless Chromium with a fresh profile directory of its own."""
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def add_user(workdir: Path, env: Mapping[str, str], name: str, role: str = "operator") -> None:
    """`alertdesk users add NAME --role ROLE`, the password on stdin, as a script would."""
    done = subprocess.run(
        [sys.executable, "-m", "alertdesk.cli", "users", "add", name, "--role", role],
        input=PASSWORD + "\n",
        cwd=workdir,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def sign_in(driver: webdriver.Chrome, base: str, name: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{base}/login")
    driver.find_element(By.NAME, "username").send_keys(name)
    password = driver.find_element(By.NAME, "password")
    password.send_keys(PASSWORD)
    password.submit()
    WebDriverWait(driver, 10).until(lambda d: d.current_url.startswith(f"{base}/tickets"))


def post_nagios(base: str, **fields: str) -> str:
    """A Nagios service notification as its notification command posts it; the dedup key it got."""
    form = {
        "NOTIFICATIONTYPE": "PROBLEM",
        "HOSTNAME": "web-01",
        "HOSTADDRESS": "10.0.4.21",
        "SERVICEDESC": "HTTP",
        "SERVICESTATE": "CRITICAL",
        "SERVICEOUTPUT": "HTTP CRITICAL - 503 Service Unavailable",
        "pd_nagios_object": "service",
        **fields,
    }
    request = urllib.request.Request(f"{base}/webhooks/nagios", data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(request, timeout=10) as answer:
        body = json.loads(answer.read())
        assert answer.status == 202, body
        return str(body["dedup_key"])


def api(base: str, path: str) -> object:
    with urllib.request.urlopen(f"{base}{path}", timeout=10) as answer:
        return json.loads(answer.read())


def fetch_status(driver: webdriver.Chrome, path: str, body: str) -> int:
    """POST `body` (form-encoded) from inside the page, with the page's cookies: what a forged form would do."""
    status: int = driver.execute_async_script(
        """const [path, body, done] = arguments;
        fetch(path, {method: "POST", body: new URLSearchParams(body), credentials: "same-origin", redirect: "manual"})
          .then(r => done(r.status), () => done(-1));""",
        path,
        body,
    )
    return status


def status_of(base: str, path: str, cookie: str) -> tuple[int, str]:
    """GET with only this cookie, not following redirects: (status, Location)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(f"{base}{path}", headers={"Cookie": cookie})
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, answer.headers.get("Location", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", "")
