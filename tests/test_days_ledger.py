"""Stored days: kept up to date as records commit (live, late, imported), as days settle and as
facts and rules change; followed through `GET /api/v1/days` by its change cursor; facts pushed
and withdrawn over the API. SQLite and PostgreSQL (the `store` fixture); the API over real
sockets; one officer's punches from the ZK simulator and the mobile ingest merged into one day."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from api_helpers import serve_app
from hub_helpers import running
from test_days import OFFICES, punch, settings

from spotme_hub.adapters.zkteco.simulator import ZKSimulator
from spotme_hub.attendance.book import DayBook
from spotme_hub.attendance.ledger import DayLedger, days_page, run_ledger, stored_day
from spotme_hub.config import HubConfig
from spotme_hub.service import config_from_dict, create_app, open_store, tables
from spotme_hub.store import Store
from spotme_hub.yamlsource import ConfigError

MORNING = dt.datetime(2025, 7, 16, 2, 0, tzinfo=dt.UTC)  # 10:00 in Putrajaya, a Wednesday
NIGHT = dt.datetime(2025, 7, 16, 14, 0, tzinfo=dt.UTC)  # 22:00: the day has settled


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def make_cfg(tmp_path: Path, store_url: str, **extra: Any) -> HubConfig:
    data = settings(tmp_path, **extra)
    data["hub"]["database"] = store_url
    return config_from_dict(data, base_dir=tmp_path)


def kept(store: Store, emp: str, date: str) -> dict[str, Any]:
    day = stored_day(store, emp, dt.date.fromisoformat(date))
    assert day is not None, f"no stored day for {emp} on {date}"
    return day


def scratch(cfg: HubConfig, store: Store, emp: str, date: str, now: dt.datetime) -> dict[str, Any]:
    d = dt.date.fromisoformat(date)
    (day,) = DayBook(cfg, store).days(d, d, employee=emp, now=now)
    return day.to_dict()


def changes(store: Store, after: int) -> list[tuple[str, str, str]]:
    import orjson

    texts, _ = days_page(store, after, 1000)
    return [(d["employee_id"], d["date"], d["status"]) for d in map(orjson.loads, texts)]


@pytest.fixture
def ledger_cfg(tmp_path: Path, store: Store) -> HubConfig:
    return make_cfg(tmp_path, str(store.engine.url.render_as_string(hide_password=False)))


def test_today_opens_for_every_officer_and_settles_to_absent(
    ledger_cfg: HubConfig, store: Store
) -> None:
    clock = Clock(MORNING)
    ledger = DayLedger(ledger_cfg, store, clock)
    assert ledger.step() == len(OFFICES)  # every officer has a day today, punches or not
    day = kept(store, "S-pjy", "2025-07-16")
    assert (day["status"], day["tags"]) == ("incomplete", ["provisional"])
    assert day["settles_at"] == "2025-07-16T19:00:00+08:00"  # office end 18:00 + 60 min

    punch(ledger_cfg, store, "zk-pjy", "2025-07-16T08:10:00")
    ledger.step()
    assert kept(store, "S-pjy", "2025-07-16")["first_in"] == "2025-07-16T08:10:00+08:00"

    clock.now = NIGHT
    seq_before = kept(store, "S-trg", "2025-07-16")["seq"]
    ledger.step()
    absent = kept(store, "S-trg", "2025-07-16")
    assert (absent["status"], absent["tags"], absent["settles_at"]) == ("absent", [], None)
    assert absent["seq"] > seq_before
    assert kept(store, "S-pjy", "2025-07-16")["status"] == "incomplete"  # an in, no out
    # nothing new: nothing written, no new change numbers
    top = days_page(store, 0, 10_000)[1]
    assert ledger.step() == 0 and days_page(store, 0, 10_000)[1] == top


def test_a_late_catch_up_updates_yesterday_and_shows_in_the_cursor(
    ledger_cfg: HubConfig, store: Store
) -> None:
    clock = Clock(NIGHT)
    ledger = DayLedger(ledger_cfg, store, clock)
    punch(ledger_cfg, store, "zk-pjy", "2025-07-15T08:00:00")
    ledger.step()
    assert kept(store, "S-pjy", "2025-07-15")["status"] == "incomplete"
    cursor = days_page(store, 0, 10_000)[1]
    # the terminal comes back online with yesterday's clock-out
    punch(ledger_cfg, store, "zk-pjy", "2025-07-15T17:30:00")
    ledger.step()
    assert changes(store, cursor) == [("S-pjy", "2025-07-15", "complete")]
    assert kept(store, "S-pjy", "2025-07-15") | {"seq": 0} == scratch(
        ledger_cfg, store, "S-pjy", "2025-07-15", NIGHT
    ) | {"seq": 0}


def test_an_import_of_last_month_opens_its_dates_for_everyone(
    ledger_cfg: HubConfig, store: Store
) -> None:
    ledger = DayLedger(ledger_cfg, store, Clock(NIGHT))
    for hhmm in ("08:00", "17:00"):
        punch(ledger_cfg, store, "zk-kdh", f"2025-06-10T{hhmm}:00")
    ledger.step()
    assert kept(store, "S-kdh", "2025-06-10")["status"] == "complete"
    assert kept(store, "S-sgr", "2025-06-10")["status"] == "absent"  # no punch that day
    assert ledger.step() == 0


def test_a_restart_goes_on_from_the_cursor_and_a_rules_change_recomputes(
    tmp_path: Path, store: Store
) -> None:
    url = str(store.engine.url.render_as_string(hide_password=False))
    cfg = make_cfg(tmp_path, url)
    punch(cfg, store, "zk-pjy", "2025-07-16T08:30:00")
    punch(cfg, store, "zk-pjy", "2025-07-16T17:35:00")
    DayLedger(cfg, store, Clock(NIGHT)).step()
    assert kept(store, "S-pjy", "2025-07-16")["late"] is False
    assert DayLedger(cfg, store, Clock(NIGHT)).step() == 0  # a restart: nothing to redo

    # the agency moves the counter staff to fixed hours 08:00–17:00: the stored day follows
    data = settings(
        tmp_path,
        schemes={"KAUNTER": {"kind": "fixed", "start": "08:00", "end": "17:00", "grace": 10}},
    )
    for emp in data["employees"]:
        if emp["id"] == "S-pjy":
            emp["scheme"] = "KAUNTER"
    data["hub"]["database"] = url
    moved = config_from_dict(data, base_dir=tmp_path)
    ledger = DayLedger(moved, store, Clock(NIGHT))
    while ledger.step():
        pass
    day = kept(store, "S-pjy", "2025-07-16")
    assert (day["scheme"], day["late"], day["late_min"]) == ("KAUNTER", True, 20)


def test_facts_pushed_and_withdrawn_over_the_api(tmp_path: Path, store: Store) -> None:
    url = str(store.engine.url.render_as_string(hide_password=False))
    data = settings(tmp_path)
    data["hub"]["database"] = url
    data["api"] = {
        "tokens": [
            {"name": "core", "token": "core-token-0001", "scopes": ["facts:write", "feed:read"]},
            {"name": "reader", "token": "read-token-0002", "scopes": ["feed:read"]},
        ]
    }
    data["facts"] = [{"id": "cfg1", "employee": "S-sgr", "kind": "leave", "date": "2025-07-16"}]
    cfg = config_from_dict(data, base_dir=tmp_path)
    ledger = DayLedger(cfg, store, Clock(NIGHT))
    ledger.step()
    core = {"Authorization": "Bearer core-token-0001"}
    reader = {"Authorization": "Bearer read-token-0002"}

    async def scenario() -> None:
        async with (
            serve_app(create_app(cfg, store)) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as http,
        ):
            assert (await http.get("/api/v1/days/S-trg/2025-07-16", headers=reader)).json()[
                "status"
            ] == "absent"
            leave = {"id": "L-9", "employee": "S-trg", "kind": "leave", "date": "2025-07-16",
                     "type": "medical", "ref": "MC/77"}  # fmt: skip
            refused = await http.post("/api/v1/facts", json=leave, headers=reader)
            assert refused.status_code == 403
            resp = await http.post("/api/v1/facts", json=leave, headers=core)
            assert resp.status_code == 201, resp.text
            assert resp.json()["replaced"] is False
            await asyncio.to_thread(ledger.step)
            day = (await http.get("/api/v1/days/S-trg/2025-07-16", headers=reader)).json()
            assert (day["status"], day["stored"]) == ("leave", True)
            assert any("L-9" in line for line in day["explain"])
            listed = (await http.get("/api/v1/facts?employee=S-trg", headers=reader)).json()
            assert [(f["id"], f["source"], f["ref"]) for f in listed] == [("L-9", "api", "MC/77")]

            # bad facts: a clear refusal naming the field, nothing stored
            bad = await http.post("/api/v1/facts", json={**leave, "to": "2025-07-01",
                                                          "date": None, "from": "2025-07-16"},
                                  headers=core)  # fmt: skip
            assert bad.status_code == 422 and "before" in bad.text
            typo = await http.post("/api/v1/facts", json={**leave, "emplyee": "x"}, headers=core)
            assert typo.status_code == 422
            assert typo.json()["detail"][0]["loc"] == ["body", "emplyee"]
            who = await http.post("/api/v1/facts", json={**leave, "employee": "X"}, headers=core)
            assert (who.status_code, "unknown employee" in who.text) == (422, True)
            mine = await http.post("/api/v1/facts", json={**leave, "id": "cfg1"}, headers=core)
            assert mine.status_code == 409
            gone = await http.delete("/api/v1/facts/cfg1", headers=core)
            assert gone.status_code == 409

            withdrawn = await http.delete("/api/v1/facts/L-9", headers=core)
            assert withdrawn.status_code == 200
            assert (await http.delete("/api/v1/facts/L-9", headers=core)).status_code == 404
            await asyncio.to_thread(ledger.step)
            day = (await http.get("/api/v1/days/S-trg/2025-07-16", headers=reader)).json()
            assert day["status"] == "absent"
            assert (await http.get("/api/v1/days/S-sgr/2025-07-16", headers=reader)).json()[
                "status"
            ] == "leave"

    asyncio.run(scenario())


def test_the_facts_file_is_checked_and_re_read_when_it_changes(tmp_path: Path) -> None:
    facts = tmp_path / "facts.yaml"
    facts.write_text(yaml.safe_dump({"facts": [
        {"id": "b1", "employee": "S-pjy", "kind": "leave", "date": "2025-07-16"},
    ]}))  # fmt: skip
    data = settings(tmp_path, facts_file="facts.yaml")
    cfg = config_from_dict(data, base_dir=tmp_path)
    store = open_store(cfg)
    ledger = DayLedger(cfg, store, Clock(NIGHT))
    ledger.step()
    assert kept(store, "S-pjy", "2025-07-16")["status"] == "leave"

    # a broken edit is logged and ignored: the facts read before stay
    facts.write_text("facts:\n  - {id: b1, employee: S-pjy, kind: leave, date: 2025-07-40}\n")
    ledger.step()
    assert kept(store, "S-pjy", "2025-07-16")["status"] == "leave"
    # and at load it is an error naming file, line and field
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, base_dir=tmp_path)
    assert f"{facts}:2: facts[0].date" in str(err.value)

    # the leave moves to a CSV file's next day; the day it left is worked out again
    csv_file = tmp_path / "facts.csv"
    csv_file.write_text("id,employee,kind,date,weekdays\nb1,S-pjy,leave,2025-07-17,\n")
    cfg2 = config_from_dict(settings(tmp_path, facts_file="facts.csv"), base_dir=tmp_path)
    assert [f.date for f in cfg2.file_facts] == [dt.date(2025, 7, 17)]
    csv_file.write_text("id,employee,kind,date\nb1,S-pjy,leave,2025-07-1x\n")
    with pytest.raises(ConfigError) as err:
        config_from_dict(settings(tmp_path, facts_file="facts.csv"), base_dir=tmp_path)
    assert f"{csv_file}:2: date" in str(err.value)
    facts.write_text(yaml.safe_dump({"facts": [
        {"id": "b1", "employee": "S-pjy", "kind": "leave", "date": "2025-07-17"},
    ]}))  # fmt: skip
    ledger.step()
    assert kept(store, "S-pjy", "2025-07-16")["status"] == "absent"
    store.close()


def test_the_days_cursor_over_http_follows_changes(tmp_path: Path, store: Store) -> None:
    url = str(store.engine.url.render_as_string(hide_password=False))
    cfg = make_cfg(tmp_path, url)
    ledger = DayLedger(cfg, store, Clock(NIGHT))
    punch(cfg, store, "zk-pjy", "2025-07-16T09:20:00")
    ledger.step()

    async def scenario() -> None:
        async with (
            serve_app(create_app(cfg, store)) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as http,
        ):
            page = (await http.get("/api/v1/days?date=2025-07-16&limit=2")).json()
            assert len(page["days"]) == 2
            rest = await http.get(f"/api/v1/days?date=2025-07-16&after={page['next_cursor']}")
            seen = page["days"] + rest.json()["days"]
            assert sorted(d["employee_id"] for d in seen) == sorted(f"S-{o['id']}" for o in OFFICES)
            cursor = rest.json()["next_cursor"]
            late = (await http.get("/api/v1/days?employee=S-pjy&status=incomplete")).json()
            assert [(d["late"], d["late_min"]) for d in late["days"]] == [(True, 20)]
            punch(cfg, store, "zk-pjy", "2025-07-16T18:05:00")
            await asyncio.to_thread(ledger.step)
            after = (await http.get(f"/api/v1/days?after={cursor}")).json()
            assert [(d["employee_id"], d["status"]) for d in after["days"]] == [
                ("S-pjy", "complete")
            ]
            assert after["next_cursor"] > cursor
            again = (await http.get(f"/api/v1/days?after={after['next_cursor']}")).json()
            assert again == {"days": [], "next_cursor": after["next_cursor"]}
            bad = await http.get("/api/v1/days?date=2025-13-01")
            assert bad.status_code == 422
            assert (await http.get("/api/v1/days/NOBODY/2025-07-16")).status_code == 404
            assert (await http.get("/api/v1/days/S-pjy/yesterday")).status_code == 422
            for edge in ("0001-01-01", "9999-12-31"):  # refused, not a 500
                far = await http.get(f"/api/v1/days/S-pjy/{edge}")
                assert far.status_code == 422 and "outside the dates" in far.text
                assert (await http.get(f"/api/v1/days?date={edge}")).status_code == 422
            # a date the hub does not keep is worked out from the records, and says so
            future = (await http.get("/api/v1/days/S-pjy/2025-07-19")).json()
            assert (future["stored"], future["day_kind"]) == (False, "rest_day")

    asyncio.run(scenario())


def test_zk_terminal_and_mobile_check_out_make_one_day(tmp_path: Path) -> None:
    """A running hub: the officer clocks in at the ZK terminal (pulled by pyzk from the
    simulator over a real socket) and out on the phone (the HTTP ingest); the ledger service
    merges both into one stored day."""

    async def scenario() -> None:
        with ZKSimulator(records=0, record_size=40) as sim:
            sim.add_punch("7", punch=0, verify=1, when=dt.datetime(2025, 7, 16, 8, 20))
            data = {
                "hub": {"data_dir": str(tmp_path), "sqlite_synchronous": "NORMAL"},
                "offices": [{"id": "hq", "state": "PJY"}],
                "employees": [{"id": "S7", "user_ids": ["zk:7", "phone:7"], "office": "hq"}],
                "devices": [
                    {
                        "id": "zk",
                        "kind": "zkteco",
                        "office": "hq",
                        "host": "127.0.0.1",
                        "port": sim.port,
                        "timeout": 2,
                        "poll_every": 0.5,
                    },
                    {"id": "phone", "kind": "http", "office": "hq"},
                ],  # fmt: skip
                "attendance": {"poll_s": 0.2},
            }
            cfg = config_from_dict(data, base_dir=tmp_path)
            stop = asyncio.Event()
            async with running(cfg) as hub:
                service = asyncio.create_task(run_ledger(hub, stop))
                async with (
                    serve_app(create_app(cfg, hub.store, hub)) as base,
                    httpx.AsyncClient(base_url=base, timeout=30) as http,
                ):
                    sent = await http.post("/api/v1/punches", json={"device": "phone", "punches": [
                        {"user_id": "7", "time": "2025-07-16T17:40:00", "punch": "out"}]})  # fmt: skip
                    assert sent.json()["created"] == 1, sent.text

                    async def merged() -> dict[str, Any] | None:
                        r = await http.get("/api/v1/days/S7/2025-07-16")
                        day: dict[str, Any] = r.json()
                        # the stored day (the API works out a day it does not keep yet)
                        done = day.get("status") == "complete" and day.get("stored")
                        return day if done else None

                    day = None
                    for _ in range(300):
                        day = await merged()
                        if day:
                            break
                        await asyncio.sleep(0.1)
                    assert day is not None, "the day never merged both punches"
                    assert day["stored"] is True
                    assert day["sources"] == ["http", "zkteco"]
                    assert (day["first_in"], day["last_out"]) == (
                        "2025-07-16T08:20:00+08:00", "2025-07-16T17:40:00+08:00",
                    )  # fmt: skip
                    assert len(day["punches"]) == 2
                stop.set()
                await service

    asyncio.run(scenario())


def test_the_ledger_tables_are_made_with_the_store(store_url: str) -> None:
    s = Store(store_url)
    s.create_all(tables())
    from sqlalchemy import inspect

    names = set(inspect(s.engine).get_table_names())
    assert {"attendance_days", "attendance_facts", "attendance_dates", "attendance_dirty"} <= names
    s.close()


def test_days_go_to_the_core_through_the_outbox_when_asked(tmp_path: Path, store: Store) -> None:
    from spotme_hub.attendance.part import Attendance
    from spotme_hub.forward.core_sim import CoreServer, CoreState
    from spotme_hub.forward.forwarder import Forwarder

    url = str(store.engine.url.render_as_string(hide_password=False))
    core = CoreServer(CoreState()).start()
    try:
        data = settings(tmp_path)
        data["hub"]["database"] = url
        data["core"] = {"url": core.url, "retry_min_s": 0.05, "retry_max_s": 0.1}
        assert Attendance.outbox(config_from_dict(data, base_dir=tmp_path)) is None  # off
        data["core"]["forward_days"] = True
        cfg = config_from_dict(data, base_dir=tmp_path)
        outbox = Attendance.outbox(cfg)
        assert outbox is not None
        ledger = DayLedger(cfg, store, Clock(NIGHT))
        punch(cfg, store, "zk-pjy", "2025-07-16T08:00:00")
        ledger.step()
        core.state.settings({"fail_next": 1, "fail_status": 503})  # one outage: retried
        assert asyncio.run(Forwarder(cfg, store, outbox).drain()) == len(OFFICES)
        got = {(d["employee_id"], d["date"]): d for d in core.state.days()}
        assert got[("S-pjy", "2025-07-16")]["status"] == "incomplete"
        assert got[("S-kdh", "2025-07-16")]["status"] == "absent"

        punch(cfg, store, "zk-pjy", "2025-07-16T17:10:00")
        ledger.step()
        assert asyncio.run(Forwarder(cfg, store, outbox).drain()) == 1  # only the change
        again = {(d["employee_id"], d["date"]): d for d in core.state.days()}
        pjy = again[("S-pjy", "2025-07-16")]
        assert (pjy["status"], pjy["versions"]) == ("complete", 2)
        assert asyncio.run(Forwarder(cfg, store, outbox).drain()) == 0
        from spotme_hub.forward.outbox import forward_status

        days_out = forward_status(store, cfg)["outboxes"]["days"]
        assert days_out["cursor"] == days_page(store, 0, 10_000)[1]
        assert (days_out["delivered"], days_out["retries"], days_out["state"]) == (
            len(OFFICES) + 1, 1, "ok",
        )  # fmt: skip
        # the records have a cursor of their own: all of them still go, once
        assert asyncio.run(Forwarder(cfg, store).drain()) == 2
        assert core.state.stored() == 2
    finally:
        core.stop()
