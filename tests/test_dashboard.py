"""The dashboard in a real headless Chromium (Debian chromium + chromium-driver via Selenium)
against a running hub: one device UP, one DOWN. Saves test-artifacts/dashboard.png."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
from api_helpers import TOKENS, auth, running_api

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
    reason="needs Debian chromium + chromium-driver (scripts/test installs them)",
)


def browser(profile: str):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM  # explicit paths: selenium-manager never downloads anything
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1360,900", f"--user-data-dir={profile}"):  # fmt: skip
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)


def test_dashboard_shows_device_states(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    async def scenario() -> None:
        async with running_api(tmp_path) as api:
            for _ in range(200):  # the silent push terminal goes DOWN
                if api.hub and api.hub.health["lobby-zk"].state == "DOWN":
                    break
                await asyncio.sleep(0.05)
            await api.client.post("/api/v1/punches", headers=auth("writer"), json={
                "device": "hr-api", "punches": [
                    {"user_id": "1", "time": "2026-11-20T07:58:12", "punch": "in", "verify": "face"},
                    {"user_id": "2", "time": "2026-11-20T08:01:40", "punch": "in"},
                    {"user_id": "77", "time": "2026-11-20T08:03:05", "punch": "in"},
                    {"time": "2026-11-20T08:04:00"}]})  # fmt: skip
            profile = tempfile.mkdtemp(prefix="spotme-chromium-")
            try:
                await asyncio.to_thread(drive, api.url, profile)
            finally:
                shutil.rmtree(profile, ignore_errors=True)

    def drive(url: str, profile: str) -> None:
        driver = browser(profile)
        try:
            wait = WebDriverWait(driver, 30)
            driver.get(url + "/")
            # tokens are configured: the page asks once for an admin token
            box = wait.until(ec.visibility_of_element_located((By.ID, "token")))
            box.send_keys(TOKENS["reader"])  # a token without the admin scope is refused
            driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
            wait.until(ec.visibility_of_element_located((By.ID, "login-error")))
            assert "admin" in driver.find_element(By.ID, "login-error").text
            box = driver.find_element(By.ID, "token")
            box.send_keys(TOKENS["admin"])
            driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-device]")))
            rows = {
                r.get_attribute("data-device"): r
                for r in driver.find_elements(By.CSS_SELECTOR, "#devices tbody tr[data-device]")
            }
            assert set(rows) == {"hr-api", "mobile", "lobby-zk"}
            state = {d: r.find_element(By.CSS_SELECTOR, ".state").text for d, r in rows.items()}
            assert state["hr-api"] == "UP" and state["lobby-zk"] == "DOWN"
            assert "DOWN" in rows["lobby-zk"].get_attribute("class").split()
            assert "no request from terminal SILENT01" in rows["lobby-zk"].text
            # DOWN sorts first; the tiles count it
            first = driver.find_element(By.CSS_SELECTOR, "#devices tbody tr")
            assert first.get_attribute("data-device") == "lobby-zk"
            assert driver.find_element(By.ID, "v-down").text == "1"
            assert "alert" in driver.find_element(By.ID, "tile-down").get_attribute("class")
            assert driver.find_element(By.ID, "v-quarantine").text == "1"
            recent = driver.find_elements(By.CSS_SELECTOR, "#recent tbody tr")
            assert len(recent) == 3 and "E1" in recent[-1].text
            assert "unmapped_employee" in recent[0].text  # user 77 is not a known officer
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))
            # the token lives in this tab's sessionStorage: a reload stays signed in
            driver.refresh()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-device]")))
            assert not driver.find_element(By.ID, "login").is_displayed()
        finally:
            driver.quit()

    asyncio.run(scenario())
