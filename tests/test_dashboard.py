"""The dashboard in a real headless Chromium (Debian chromium + chromium-driver via Selenium)
against a running hub: one device UP, one DOWN. Saves test-artifacts/dashboard.png."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
from api_helpers import TOKENS, auth, config, running_api

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
    reason="needs Debian chromium + chromium-driver (scripts/test installs them)",
)


def browser(profile: str, offline: bool = False, size: str = "1360,900"):  # type: ignore[no-untyped-def]
    """Headless Chromium; `offline`: no name resolves but 127.0.0.1 (as on a cut network)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM  # explicit paths: selenium-manager never downloads anything
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--window-size={size}", f"--user-data-dir={profile}"):  # fmt: skip
        opts.add_argument(flag)
    if offline:
        opts.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
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


def test_today_panel_counts_and_lists_an_offices_days(tmp_path: Path) -> None:
    """Five officers of one office and one of another, punches of today committed over the API,
    the ledger's pass at 10:00 (days not settled: who has no punch is not yet in), a leave and a
    BDR arrangement for today: the panel counts them, its link lists the office's days, and the
    page's polling shows a late arrival."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from spotme_hub.attendance.ledger import DayLedger
    from spotme_hub.schedule import WEEKDAYS

    tz = ZoneInfo("Asia/Kuala_Lumpur")
    today = dt.datetime.now(tz).date()
    at_ten = dt.datetime.combine(today, dt.time(10, 0), tz)
    tomorrow = WEEKDAYS[(today.weekday() + 1) % 7]  # today is a working day, whatever day it is
    data = config(
        tmp_path,
        employees=[
            {"id": "T1", "user_ids": ["11"], "office": "pjy-hq"},
            {"id": "T2", "user_ids": ["12"], "office": "pjy-hq"},
            {"id": "T3", "user_ids": ["13"], "office": "pjy-hq"},
            {"id": "T4", "user_ids": ["14"], "office": "pjy-hq"},
            {"id": "T5", "user_ids": ["15"], "office": "pjy-hq"},
            {"id": "K1", "user_ids": ["21"], "office": "kch"},
        ],
        facts=[
            {"id": "f-leave", "employee": "T4", "kind": "leave", "date": today.isoformat()},
            {"id": "f-bdr", "employee": "T5", "kind": "bdr", "date": today.isoformat()},
        ],
        calendar={
            "public_holidays": False,
            "weekends": [{"from": "2000-01-01", "days": [tomorrow]}],
        },
    )

    def at(hhmm: str) -> str:
        return f"{today.isoformat()}T{hhmm}:00"

    async def scenario() -> None:
        async with running_api(tmp_path, data=data) as api:
            ledger = DayLedger(api.cfg, api.store, clock=lambda: at_ten)

            async def punch(*items: tuple[str, str]) -> None:
                resp = await api.client.post("/api/v1/punches", headers=auth("writer"), json={
                    "device": "hr-api",
                    "punches": [{"user_id": u, "time": at(t), "punch": "in"} for u, t in items],
                })  # fmt: skip
                assert resp.status_code == 200, resp.text
                await asyncio.to_thread(ledger.step)

            await punch(("11", "08:10"), ("12", "09:20"), ("15", "08:30"), ("21", "07:55"))
            profile = tempfile.mkdtemp(prefix="spotme-chromium-")
            loop = asyncio.get_running_loop()

            def late_arrival() -> None:  # from the browser's thread, on the hub's loop
                asyncio.run_coroutine_threadsafe(punch(("13", "09:05")), loop).result(30)

            try:
                await asyncio.to_thread(drive, api.url, profile, late_arrival)
            finally:
                shutil.rmtree(profile, ignore_errors=True)

    def counts(driver, office: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
        # read in one script: the page redraws the table on its poll, and elements found
        # before a redraw are gone after it
        found: dict[str, str] = driver.execute_script(
            "const row = document.querySelector(`#today-offices tr[data-office='${arguments[0]}']`);"
            "if (!row) return {};"
            "return Object.fromEntries([...row.querySelectorAll('td[data-count]')]"
            ".map(c => [c.dataset.count, c.innerText.trim()]));",
            office,
        )
        return found

    def table(driver, rows: str, key: str) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
        """Rows (`rows`, a selector) by their `data-<key>`, each its cells' texts: one script."""
        found: dict[str, list[str]] = driver.execute_script(
            "return Object.fromEntries([...document.querySelectorAll(arguments[0])].map(r => "
            "[r.dataset[arguments[1]], [...r.querySelectorAll('td')].map(c => c.innerText.trim())]"
            "));",
            rows, key,
        )  # fmt: skip
        return found

    def drive(url: str, profile: str, late_arrival) -> None:  # type: ignore[no-untyped-def]
        driver = browser(profile)
        try:
            # the page redraws its tables on every poll: a wait retries a read that met one
            wait = WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,))
            driver.get(url + "/")
            box = wait.until(ec.visibility_of_element_located((By.ID, "token")))
            box.send_keys(TOKENS["admin"])  # admin implies feed:read, which the days need
            driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
            wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "tr[data-office]")))
            assert driver.find_element(By.ID, "today-date").text == today.isoformat()
            offices = table(driver, "#today-offices tr[data-office]", "office")
            assert list(offices) == ["kch", "pjy-hq"]
            row = '#today-offices tr[data-office="pjy-hq"]'
            assert wait.until(lambda d: "Putrajaya HQ" in d.find_element(By.CSS_SELECTOR, row).text)
            assert counts(driver, "pjy-hq") == {
                "officers": "5", "present": "3", "late": "1", "not_yet_in": "1",
                "bdr": "1", "leave": "1", "absent": "0", "off": "0",
            }  # fmt: skip
            assert counts(driver, "kch")["present"] == "1"
            # the office's link: its officers' days today
            link = '#today-offices tr[data-office="pjy-hq"] a.office-days'
            wait.until(lambda d: d.find_element(By.CSS_SELECTOR, link).click() or True)
            wait.until(ec.visibility_of_element_located((By.ID, "today-days")))
            assert driver.current_url.endswith("#today=pjy-hq")
            assert "pjy-hq" in driver.find_element(By.ID, "today-days-title").text
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-employee]"))
            rows = table(driver, "#today-days-list tr[data-employee]", "employee")
            assert list(rows) == ["T1", "T2", "T3", "T4", "T5"]  # not K1: another office
            # employee, status, in, out, due out, late min, tags
            assert rows["T1"] == ["T1", "incomplete", "08:10", "—", "17:10", "0", "provisional"]
            assert rows["T2"][:6] == ["T2", "incomplete lewat · late", "09:20", "—", "18:00", "20"]
            assert rows["T3"][:3] == ["T3", "incomplete", "—"]
            assert rows["T4"][1] == "leave"
            assert rows["T5"][2] == "08:30" and "bdr" in rows["T5"][6]
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "dashboard-today.png"))
            # T3 comes in late; the next poll (every 10 s) shows it, the list too
            late_arrival()
            wait.until(lambda d: counts(d, "pjy-hq").get("not_yet_in") == "0")
            assert counts(driver, "pjy-hq")["present"] == "4"
            assert counts(driver, "pjy-hq")["late"] == "2"
            wait.until(
                lambda d: (
                    "09:05"
                    in table(d, "#today-days-list tr[data-employee]", "employee").get("T3", [])
                )
            )
            # closing the list keeps the panel
            driver.find_element(By.ID, "today-days-close").click()
            wait.until(ec.invisibility_of_element_located((By.ID, "today-days")))
            assert driver.find_element(By.ID, "today-offices").is_displayed()
        finally:
            driver.quit()

    asyncio.run(scenario())


def test_api_docs_render_with_the_network_cut(tmp_path: Path) -> None:
    """/docs and /redoc load their scripts from the hub, not a CDN: with every name but the
    hub's own address unresolvable, both pages still draw the API. Saves test-artifacts/docs.png
    and redoc.png."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def drive(url: str, profile: str) -> None:
        driver = browser(profile, offline=True)
        try:
            wait = WebDriverWait(driver, 30)
            driver.get(url + "/docs")
            title = wait.until(
                ec.visibility_of_element_located((By.CSS_SELECTOR, ".swagger-ui .title"))
            )
            assert "spotme-hub" in title.text
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
            assert len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) >= 15
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "docs.png"))
            driver.get(url + "/redoc")
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[role=menuitem], h1")))
            assert "spotme-hub" in driver.find_element(By.TAG_NAME, "h1").text
            driver.save_screenshot(str(ARTIFACTS / "redoc.png"))
            # every script, style and the schema came from the hub (ReDoc's own "powered by"
            # logo is an image from its CDN: it is not drawn, and nothing depends on it)
            sources = driver.execute_script(
                "return performance.getEntriesByType('resource')"
                ".filter(e => e.initiatorType !== 'img').map(e => e.name)")  # fmt: skip
            assert sources and all(s.startswith(url) for s in sources), sources
        finally:
            driver.quit()

    async def scenario() -> None:
        async with running_api(tmp_path) as api:
            profile = tempfile.mkdtemp(prefix="spotme-chromium-")
            try:
                await asyncio.to_thread(drive, api.url, profile)
            finally:
                shutil.rmtree(profile, ignore_errors=True)

    asyncio.run(scenario())


def test_dashboard_on_a_phone_with_the_core_down_quarantine_and_a_waiting_terminal(
    tmp_path: Path,
) -> None:
    """At phone width (390 px) nothing scrolls sideways; the backlog tile turns red with the
    forwarder's error and the oldest record's age while the core is unreachable; open
    quarantine items are listed with their reasons and one is replayed from the page; a push
    terminal with an unknown serial is listed for registration; times are the offices' zone.
    Saves test-artifacts/dashboard-phone.png."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from spotme_hub.forward.forwarder import Forwarder
    from spotme_hub.forward.outbox import forward_status

    def drive(url: str, profile: str) -> None:
        driver = browser(profile, size="390,844")
        try:
            wait = WebDriverWait(driver, 30)
            driver.get(url + "/")
            wait.until(ec.visibility_of_element_located((By.ID, "token"))).send_keys(
                TOKENS["admin"]
            )
            driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
            wait.until(
                lambda d: "alert" in d.find_element(By.ID, "tile-backlog").get_attribute("class")
            )
            tile = driver.find_element(By.ID, "tile-backlog").text
            assert "not delivering" in tile and "oldest waiting" in tile, tile
            assert "Asia/Kuala_Lumpur" in driver.find_element(By.ID, "updated").text
            rows = driver.find_elements(By.CSS_SELECTOR, "#quarantine tbody tr[data-qid]")
            assert len(rows) == 1 and "no user id or card" in rows[0].text
            wait.until(ec.visibility_of_element_located((By.ID, "pending-card")))
            assert "NEWTERM01" in driver.find_element(By.ID, "pending").text
            width = driver.execute_script(
                "return [document.documentElement.scrollWidth, innerWidth]"
            )
            assert width[0] <= width[1], width  # no sideways scrolling of the page
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "dashboard-phone.png"))
            rows[0].find_element(By.CSS_SELECTOR, "button.replay").click()
            wait.until(lambda d: "still rejected" in d.find_element(By.ID, "replay-result").text)
        finally:
            driver.quit()

    async def scenario() -> None:
        core = {"url": "http://127.0.0.1:9", "backlog_alert_age_s": 1, "retry_max_s": 0.5}
        async with running_api(tmp_path, core=core) as api:
            stop = asyncio.Event()
            forwarding = asyncio.create_task(Forwarder(api.cfg, api.store).run(stop))
            await api.client.post("/api/v1/punches", headers=auth("writer"), json={
                "device": "hr-api", "punches": [{"user_id": "1", "time": "2026-11-20T07:58:12"},
                                                {"time": "2026-11-20T08:04:00"}]})  # fmt: skip
            await api.client.get("/iclock/cdata", params={"SN": "NEWTERM01", "options": "all"})
            for _ in range(200):
                if forward_status(api.store, api.cfg)["state"] == "retrying":
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.2)  # the oldest record waits past backlog_alert_age_s
            profile = tempfile.mkdtemp(prefix="spotme-chromium-")
            try:
                await asyncio.to_thread(drive, api.url, profile)
            finally:
                shutil.rmtree(profile, ignore_errors=True)
                stop.set()
                await forwarding

    asyncio.run(scenario())
