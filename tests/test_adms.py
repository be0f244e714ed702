"""ZKTeco ADMS/PUSH: terminals post to a running hub over real HTTP (uvicorn + httpx)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from adms_helpers import DEVICE, SN, Running, gps_extend, running_hub
from click.testing import CliRunner
from ruamel.yaml import YAML

from spotme_hub.adapters.zkteco_adms.adapter import LineError, parse_attlog_line, timezone_option
from spotme_hub.adapters.zkteco_adms.simulator import PushTerminal

BASE = "1\t2026-11-20 08:01:02\t0\t1\t0\t0\t0\n2\t2026-11-20 17:30:00\t1\t15\t0\t0\t0\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str | None:
    """None = the default SQLite file; PostgreSQL when SPOTME_TEST_PG_URL is set."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_database"))  # a throwaway database per test


def lines_of(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines()[1:])


# --- handshake ---------------------------------------------------------------------------------


def test_handshake_options_date_header_and_timezone(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_hub(tmp_path) as h:
            resp = await h.iclock("GET", "cdata", options="all", pushver="2.4.1", DeviceType="att")
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/plain")
            lines = resp.text.splitlines()
            assert lines[0] == f"GET OPTION FROM: {SN}"
            opts = lines_of(resp.text)
            assert opts["TimeZone"] == "8"
            assert opts["Realtime"] == "1" and opts["Delay"] == "10" and opts["ErrorDelay"] == "30"
            assert opts["TransFlag"].startswith("TransData AttLog")
            assert opts["ATTLOGStamp"] == "None" and opts["Encrypt"] == "None"
            dates = resp.headers.get_list("date")
            assert len(dates) == 1
            server_time = parsedate_to_datetime(dates[0])
            assert abs((server_time - datetime.now(UTC)).total_seconds()) < 5
            # half-hour zone: minutes
            resp = await h.iclock("GET", "cdata", sn="IN0001", options="all")
            assert lines_of(resp.text)["TimeZone"] == "330"
            # the committed Stamp comes back in the next handshake
            assert (await h.attlog(BASE, Stamp="4711")).text == "OK:2"
            resp = await h.iclock("GET", "cdata", options="all")
            assert lines_of(resp.text)["ATTLOGStamp"] == "4711"
            health = await h.device_health()
            assert health["state"] == "UP" and health["detail"]["pushver"] == "2.4.1"

    asyncio.run(scenario())


def test_timezone_option_units() -> None:
    assert timezone_option("Asia/Kuala_Lumpur") == "8"
    assert timezone_option("Asia/Kuching") == "8"
    assert timezone_option("Asia/Kathmandu") == "345"
    assert timezone_option("UTC") == "0"


# --- ATTLOG ------------------------------------------------------------------------------------


def test_attlog_base_and_extended_lines(tmp_path: Path) -> None:
    extended = (
        # mask, temperature, converted, TimeOffset +0 (UTC), no GPS
        "1\t2026-11-20 00:05:00\t4\t4\t7\t0\t0\t1\t36.6\t97.9\t+0\t-1\n"
        # TimeOffset +28800: the same wall clock as the device zone
        "2\t2026-11-20 12:00:00\t255\t25\t0\t0\t0\t0\t-1\t-1\t+28800\t-1\n"
    )

    async def scenario() -> None:
        async with running_hub(tmp_path) as h:
            resp = await h.attlog(BASE + extended)
            assert resp.status_code == 200 and resp.text == "OK:4"
            recs = {(r["source_user_id"], r["local_time"]): r for r in await h.records()}
            assert len(recs) == 4
            r = recs[("1", "2026-11-20T08:01:02+08:00")]
            assert (r["punch"], r["verify"], r["employee_id"]) == ("in", "fingerprint", "E1")
            assert r["occurred_at"] == "2026-11-20T00:01:02Z"
            assert r["device_serial"] == SN and r["device_kind"] == "zkteco_adms"
            assert r["location_source"] == "office" and r["raw"].startswith(
                "1\t2026-11-20 08:01:02"
            )
            r = recs[("2", "2026-11-20T17:30:00+08:00")]
            assert (r["punch"], r["verify"]) == ("out", "face")
            r = recs[("1", "2026-11-20T08:05:00+08:00")]  # 00:05 UTC shown in office time
            assert r["occurred_at"] == "2026-11-20T00:05:00Z"
            assert (r["punch"], r["verify"]) == ("overtime_in", "card")
            assert r["source"]["mask"] == 1 and r["source"]["temperature"] == 36.6
            assert r["source"]["workcode"] == "7" and r["source"]["line"] == 3
            r = recs[("2", "2026-11-20T12:00:00+08:00")]
            assert (r["punch"], r["verify"]) == ("unknown", "palm")
            assert r["occurred_at"] == "2026-11-20T04:00:00Z"

    asyncio.run(scenario())


def test_gps_extend_data_gives_payload_location_distance_and_geofence(
    tmp_path: Path, database: str | None
) -> None:
    near = gps_extend(2.9270, 101.6964)  # ~67 m north of the office (geofence 150 m)
    far = gps_extend(2.9364, 101.6964)  # ~1.1 km north
    body = (
        f"1\t2026-11-20 08:00:00\t0\t15\t0\t0\t0\t1\t36.5\t36.5\t+28800\t{near}\n"
        f"2\t2026-11-20 08:10:00\t0\t15\t0\t0\t0\t1\t36.5\t36.5\t+28800\t{far}\n"
    )

    async def scenario() -> None:
        async with running_hub(tmp_path, database) as h:
            assert (await h.attlog(body)).text == "OK:2"
            recs = {r["source_user_id"]: r for r in await h.records()}
            near_rec, far_rec = recs["1"], recs["2"]
            assert near_rec["location_source"] == far_rec["location_source"] == "payload"
            assert (near_rec["latitude"], near_rec["longitude"]) == (2.927, 101.6964)
            assert 60 < near_rec["distance_m"] < 75 and near_rec["within_geofence"] is True
            assert "outside_geofence" not in near_rec["flags"]
            assert 1050 < far_rec["distance_m"] < 1150 and far_rec["within_geofence"] is False
            assert "outside_geofence" in far_rec["flags"]
            # no fix (0,0) or unpadded Base64 from some firmware
            nofix = gps_extend(0.0, 0.0).rstrip("=")  # "...Q==" without its padding
            line = f"1\t2026-11-20 09:00:00\t1\t15\t0\t0\t0\t1\t36.5\t36.5\t+28800\t{nofix}\n"
            assert (await h.attlog(line)).text == "OK:1"
            recs = {r["local_time"]: r for r in await h.records()}
            assert recs["2026-11-20T09:00:00+08:00"]["location_source"] == "office"

    asyncio.run(scenario())


def test_repeated_post_creates_no_duplicates(tmp_path: Path, database: str | None) -> None:
    async def scenario() -> None:
        async with running_hub(tmp_path, database) as h:
            assert (await h.attlog(BASE)).text == "OK:2"
            assert (await h.attlog(BASE)).text == "OK:2"  # the device did not see the first OK
            assert len(await h.records()) == 2
            health = await h.device_health()
            assert health["counters"]["new"] == 2 and health["counters"]["duplicate"] == 2

    asyncio.run(scenario())


def test_malformed_lines_are_quarantined_and_the_rest_accepted(
    tmp_path: Path, database: str | None
) -> None:
    body = (
        b"1\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n"
        b"2\t2026-13-40 08:00:00\t0\t1\t0\t0\t0\n"  # no such date
        b"3\t2026-11-20 08:00:00\tIN\t1\t0\t0\t0\n"  # status not a number
        b"4\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\t1\t36\t36\t+28800\tnot*base64\n"
        b"\xff\xfe\t2026-11-20 08:00:00\n"  # not UTF-8
        b"justonefield\n"
        b"\n"
        b"2\t2026-11-20 09:00:00\t0\t1\t0\t0\t0\n"
    )

    async def scenario() -> None:
        async with running_hub(tmp_path, database) as h:
            resp = await h.attlog(body)
            assert resp.text == "OK:7"
            assert sorted(r["source_user_id"] for r in await h.records()) == ["1", "2"]
            items = h.hub.store.quarantine_items(device_id=DEVICE)
            got = {it["source"]["line"]: it for it in items}
            assert sorted(got) == [2, 3, 4, 5, 6]
            assert all(
                it["source"]["sn"] == SN and it["source"]["table"] == "ATTLOG" for it in items
            )
            assert "YYYY-MM-DD" in got[2]["reason"]
            assert "status 'IN' is not a number" in got[3]["reason"]
            assert "ExtendData" in got[4]["reason"]
            assert "UTF-8" in got[5]["reason"] and got[5]["raw"] == {
                "hex": "fffe09323032362d31312d32302030383a30303a3030"
            }
            assert got[2]["raw"] == "2\t2026-13-40 08:00:00\t0\t1\t0\t0\t0"

    asyncio.run(scenario())


def test_parser_rejects_bad_extended_fields() -> None:
    for line, reason in [
        ("1\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\t0\t-1\t-1\t+99999\t-1", "TimeOffset"),
        ("1\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\t0\thot\t-1\t+0\t-1", "temperature"),
        ("\t2026-11-20 08:00:00\t0\t1", "empty PIN"),
        (
            f"1\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\t0\t-1\t-1\t+0\t{gps_extend(95, 10)}",
            "out of range",
        ),
    ]:
        try:
            parse_attlog_line(line, SN)
        except LineError as exc:
            assert reason in str(exc)
        else:
            raise AssertionError(f"accepted {line!r}")


def test_unknown_serial_is_refused_and_listed_as_pending(
    tmp_path: Path, database: str | None
) -> None:
    async def scenario() -> None:
        async with running_hub(tmp_path, database) as h:
            resp = await h.iclock("GET", "cdata", sn="STRANGER9", options="all", pushver="2.4.1")
            assert resp.status_code == 403 and "unknown device SN=STRANGER9" in resp.text
            assert len(resp.headers.get_list("date")) == 1  # errors carry the clock too
            resp = await h.attlog(BASE, sn="STRANGER9")
            assert resp.status_code == 403 and "OK" not in resp.text
            resp = await h.iclock("GET", "cdata", sn="bad sn!")
            assert resp.status_code == 400
            assert h.hub.store.count_records() == 0
            assert h.hub.store.quarantine_items() == []
            pending = (await h.client.get("/api/v1/adms/pending")).json()
            assert [(p["serial"], p["requests"]) for p in pending] == [("STRANGER9", 2)]
            assert pending[0]["detail"] == {"pushver": "2.4.1"}

    asyncio.run(scenario())


def test_body_size_limit(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_hub(tmp_path, api={"max_body_bytes": 2048}) as h:
            resp = await h.attlog(BASE * 40)
            assert resp.status_code == 413 and "fewer records" in resp.text
            assert h.hub.store.count_records() == 0

    asyncio.run(scenario())


# --- a failed commit gets no OK ----------------------------------------------------------------


def test_post_whose_commit_fails_gets_no_ok_and_the_resend_is_stored(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_hub(tmp_path) as h:
            db = h.cfg.database_url.split("///", 1)[1]
            with sqlite3.connect(db) as other:  # the store's table vanishes under the hub
                other.execute("ALTER TABLE records RENAME TO records_away")
            resp = await h.attlog(BASE)
            assert resp.status_code == 503 and "OK" not in resp.text
            with sqlite3.connect(db) as other:
                other.execute("ALTER TABLE records_away RENAME TO records")
            assert h.hub.store.count_records() == 0
            assert (await h.attlog(BASE)).text == "OK:2"  # the device resends
            assert len(await h.records()) == 2
            # the writer stopped (hub shutting down): also no OK
            await h.hub.writer.close()
            resp = await h.attlog("1\t2026-11-21 08:00:00\t0\t1\t0\t0\t0\n")
            assert resp.status_code == 503 and "OK" not in resp.text
            h.hub.writer.start()
            assert h.hub.store.count_records() == 2

    asyncio.run(scenario())


# --- OPERLOG -----------------------------------------------------------------------------------


def test_operlog_user_lines_events_and_ignored_kinds(tmp_path: Path, database: str | None) -> None:
    body = (
        "USER PIN=1\tName=Siti Nurhaliza\tPri=0\tPasswd=1234\tCard=8844356\tGrp=1\tTZ=0\tVerify=0\n"
        "USER PIN=2\tName=Tan Wei Ming\tPri=14\tPasswd=\tCard=\tGrp=1\n"
        "OPLOG 21\t0\t2026-11-20 07:59:00\t0\t0\t0\t0\n"
        "FP PIN=1\tFID=0\tSize=4\tValid=1\tTMP=AAAA\n"
        "USER Name=nobody\n"
        "OPLOG x\t0\t2026-11-20 07:59:00\n"
    )

    async def scenario() -> None:
        async with running_hub(tmp_path, database) as h:
            resp = await h.iclock("POST", "cdata", body, table="OPERLOG", Stamp="12")
            assert resp.text == "OK:6"
            users = (await h.client.get(f"/api/v1/adms/{DEVICE}/users")).json()
            assert [(u["pin"], u["name"], u["card"]) for u in users] == [
                ("1", "Siti Nurhaliza", "8844356"), ("2", "Tan Wei Ming", None)]  # fmt: skip
            assert "Passwd" not in users[0]["fields"]
            # a renamed user updates the directory; the re-sent OPLOG line is kept once
            again = (
                "USER PIN=2\tName=Tan W. M.\tCard=123\n"
                "OPLOG 21\t0\t2026-11-20 07:59:00\t0\t0\t0\t0\n"
            )
            assert (await h.iclock("POST", "cdata", again, table="OPERLOG")).text == "OK:2"
            users = (await h.client.get(f"/api/v1/adms/{DEVICE}/users")).json()
            assert users[1]["name"] == "Tan W. M." and users[1]["card"] == "123"
            events = (await h.client.get(f"/api/v1/adms/{DEVICE}/events")).json()
            assert [(e["op_code"], e["op"], e["op_time"]) for e in events] == [
                (21, "set time", "2026-11-20 07:59:00")
            ]
            bad = {it["source"]["line"]: it["reason"] for it in h.hub.store.quarantine_items()}
            assert bad == {5: "USER line without PIN=", 6: "OPLOG op code 'x' is not a number"}
            assert h.hub.store.count_records() == 0
            resp = await h.iclock("GET", "cdata", options="all")
            assert lines_of(resp.text)["OPERLOGStamp"] == "12"

    asyncio.run(scenario())


# --- commands ----------------------------------------------------------------------------------


async def _queue(h: Running, **body: object) -> dict:
    resp = await h.client.post(f"/api/v1/adms/{DEVICE}/commands", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def _commands(h: Running) -> list[dict]:
    return (await h.client.get(f"/api/v1/adms/{DEVICE}/commands")).json()


def test_command_round_trip(tmp_path: Path, database: str | None) -> None:
    async def scenario() -> None:
        async with running_hub(tmp_path, database) as h:
            assert (await h.iclock("GET", "getrequest")).text == "OK"
            info = await _queue(h, kind="info")
            back = await _queue(
                h, kind="backfill", start="2026-11-20 00:00:00", end="2026-11-20 23:59:59"
            )
            resp = await h.iclock(
                "GET", "getrequest", INFO="Ver 8.0.4,12,30,4021,10.1.2.3,10,7,15,0,111"
            )
            assert resp.text.splitlines() == [
                f"C:{info['cmd_id']}:INFO",
                f"C:{back['cmd_id']}:DATA QUERY ATTLOG "
                "StartTime=2026-11-20 00:00:00\tEndTime=2026-11-20 23:59:59",
            ]
            assert (await h.iclock("GET", "getrequest")).text == "OK"  # sent once, not again
            answer = (f"ID={info['cmd_id']}&Return=0&CMD=INFO\n~DeviceName=MB560\nUserCount=12\n"
                      f"ID={back['cmd_id']}&Return=-1005&CMD=DATA\n")  # fmt: skip
            assert (await h.iclock("POST", "devicecmd", answer)).text == "OK"
            cmds = {c["cmd_id"]: c for c in await _commands(h)}
            assert cmds[info["cmd_id"]]["status"] == "done"
            assert cmds[info["cmd_id"]]["result"]["~DeviceName"] == "MB560"
            assert (cmds[back["cmd_id"]]["status"], cmds[back["cmd_id"]]["return_code"]) == (
                "failed",
                -1005,
            )
            detail = (await h.device_health())["detail"]
            assert detail["firmware"] == "Ver 8.0.4" and detail["punch_count"] == "4021"
            assert detail["device_info"]["DeviceName"] == "MB560"
            bad = await h.client.post(
                f"/api/v1/adms/{DEVICE}/commands", json={"kind": "verify", "start": "x"}
            )
            assert bad.status_code == 422

    asyncio.run(scenario())


def test_verify_sum_match_mismatch_backfill_and_recheck(
    tmp_path: Path, database: str | None
) -> None:
    window = {"start": "2026-11-20 00:00:00", "end": "2026-11-20 23:59:59"}
    missing = "3\t2026-11-20 12:00:00\t2\t1\t0\t0\t0\n4\t2026-11-20 13:00:00\t3\t1\t0\t0\t0\n"

    async def answer(h: Running, sums: int) -> str:
        lines = (await h.iclock("GET", "getrequest")).text.splitlines()
        assert len(lines) == 1 and "VERIFY SUM ATTLOG StartTime=2026-11-20 00:00:00" in lines[0]
        cmd_id = lines[0].split(":")[1]
        await h.iclock(
            "POST", "devicecmd", f"ID={cmd_id}&Return=0&CMD=VERIFY SUM&AttlogSum={sums}\n"
        )
        return cmd_id

    async def scenario() -> None:
        async with running_hub(tmp_path, database) as h:
            assert (await h.attlog(BASE + "1\t2026-11-21 08:00:00\t0\t1\t0\t0\t0\n")).text == "OK:3"
            await _queue(h, kind="verify", **window)
            ok_id = await answer(h, 2)  # the punch of the 21st is outside the window
            assert (await h.device_health())["state"] == "UP"
            await _queue(h, kind="verify", **window)
            bad_id = await answer(h, 4)
            health = await h.device_health()
            assert health["state"] == "DEGRADED"
            assert (health["detail"]["device_sum"], health["detail"]["hub_count"]) == (4, 2)
            assert "terminal has 4 punches, hub has 2" in health["last_error"]
            assert (await h.iclock("GET", "ping")).text == "OK"  # a heartbeat does not hide it
            assert (await h.device_health())["state"] == "DEGRADED"
            cmds = {c["cmd_id"]: c for c in await _commands(h)}
            assert cmds[ok_id]["verdict"] == "match: 2 punch(es)"
            assert cmds[bad_id]["verdict"].startswith(
                "mismatch: terminal has 4, hub has 2; backfill"
            )
            # the backfill goes out; the terminal re-sends the range and reports done
            lines = (await h.iclock("GET", "getrequest")).text.splitlines()
            assert len(lines) == 1 and "DATA QUERY ATTLOG" in lines[0]
            assert (await h.attlog(BASE + missing)).text == "OK:4"
            await h.iclock("POST", "devicecmd", f"ID={lines[0].split(':')[1]}&Return=0&CMD=DATA\n")
            recheck = await answer(h, 4)
            assert (await h.device_health())["state"] == "UP"
            cmds = {c["cmd_id"]: c for c in await _commands(h)}
            assert (
                cmds[recheck]["origin"] == "recheck"
                and cmds[recheck]["verdict"] == "match: 4 punch(es)"
            )
            assert len(await h.records()) == 5

    asyncio.run(scenario())


def test_a_mismatch_survives_a_hub_restart(tmp_path: Path, database: str | None) -> None:
    window = {"start": "2026-11-20 00:00:00", "end": "2026-11-20 23:59:59"}

    async def scenario() -> None:
        async with running_hub(tmp_path, database) as h:
            assert (await h.attlog(BASE)).text == "OK:2"
            await _queue(h, kind="verify", **window)
            cmd_id = (await h.iclock("GET", "getrequest")).text.split(":")[1]
            await h.iclock(
                "POST", "devicecmd", f"ID={cmd_id}&Return=0&CMD=VERIFY SUM&AttlogSum=9\n"
            )
            assert (await h.device_health())["state"] == "DEGRADED"
        async with running_hub(
            tmp_path, database, fresh=False
        ) as h:  # same database, new process state
            assert (await h.iclock("GET", "ping")).text == "OK"
            health = await h.device_health()
            assert (
                health["state"] == "DEGRADED"
                and "terminal has 9, hub has 2" in health["last_error"]
            )
            # the queued backfill is still there for the terminal's next poll
            assert "DATA QUERY ATTLOG" in (await h.iclock("GET", "getrequest")).text

    asyncio.run(scenario())


def test_scheduled_verify_sum(tmp_path: Path) -> None:
    dev = {"id": DEVICE, "kind": "zkteco_adms", "office": "pjy-hq", "serial": SN,
           "verify_sum_every": 3600, "verify_window_h": 2}  # fmt: skip

    async def scenario() -> None:
        async with running_hub(tmp_path, devices=[dev]) as h:
            lines = (await h.iclock("GET", "getrequest")).text.splitlines()
            assert len(lines) == 1 and "VERIFY SUM ATTLOG StartTime=" in lines[0]
            assert (await h.iclock("GET", "getrequest")).text == "OK"  # next one in an hour
            assert [c["origin"] for c in await _commands(h)] == ["schedule"]

    asyncio.run(scenario())


def test_cli_queues_a_backfill_the_running_hub_sends(tmp_path: Path) -> None:
    from spotme_hub.cli import cli

    async def scenario() -> None:
        async with running_hub(tmp_path) as h:
            cfg_file = tmp_path / "hub.yaml"
            from adms_helpers import config

            YAML().dump(config(tmp_path), cfg_file.open("w"))
            runner = CliRunner()
            args = ["adms", "backfill", "-c", str(cfg_file), DEVICE,
                    "--start", "2026-11-20 00:00:00", "--end", "2026-11-20 12:00:00"]  # fmt: skip
            res = await asyncio.to_thread(runner.invoke, cli, args)
            assert res.exit_code == 0, res.output
            assert "queued H1" in res.output
            resp = await h.iclock("GET", "getrequest")
            assert resp.text.startswith("C:H1:DATA QUERY ATTLOG StartTime=2026-11-20 00:00:00")
            res = await asyncio.to_thread(
                runner.invoke, cli, ["adms", "commands", "-c", str(cfg_file), "--format", "json"]
            )
            assert '"status": "sent"' in res.output
            args = ["adms", "verify", "-c", str(cfg_file), DEVICE, "--start", "2026-11-20 00:00:00"]
            res = await asyncio.to_thread(runner.invoke, cli, args)
            assert res.exit_code != 0 and "both a start and an end" in res.output

    asyncio.run(scenario())


# --- the push simulator against the hub ---------------------------------------------------------


def test_push_simulator_full_story_with_gps(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_hub(tmp_path) as h:
            term = PushTerminal(h.url, SN, gps=True, radius_m=400, users=["1", "2", "7"], seed=3)
            try:
                opts = await term.handshake()
                assert opts["TimeZone"] == "8"
                assert (await term.post_users()) == "OK:4"
                term.punch(6, withhold=2)
                assert await term.upload() == 4
                assert len(await h.records()) == 4
                await _queue(h, kind="verify", hours=2)
                assert len(await term.poll()) == 1  # VERIFY SUM: terminal 6, hub 4
                assert (await h.device_health())["state"] == "DEGRADED"
                assert "DATA QUERY" in (await term.poll())[0]  # the backfill re-sends the range
                assert "VERIFY SUM" in (await term.poll())[0]  # the recheck matches
                assert (await h.device_health())["state"] == "UP"
                recs = await h.records()
                assert len(recs) == 6
                assert all(
                    r["location_source"] == "payload" and r["distance_m"] is not None for r in recs
                )
                assert {r["within_geofence"] for r in recs} <= {True, False}
                assert all(r["occurred_at"].endswith("Z") for r in recs)
                assert len((await h.client.get(f"/api/v1/adms/{DEVICE}/users")).json()) == 3
            finally:
                await term.close()

    asyncio.run(scenario())


# --- health: a terminal that stops calling ------------------------------------------------------


def test_silent_terminal_goes_down_and_up_on_its_next_request(tmp_path: Path) -> None:
    dev = {"id": DEVICE, "kind": "zkteco_adms", "office": "pjy-hq", "serial": SN,
           "silent_after_s": 0.2}  # fmt: skip
    hub_section = {"id": "t", "data_dir": str(tmp_path / "data"), "failures_to_down": 1,
                   "restart_min_s": 0.05, "restart_max_s": 0.1}  # fmt: skip

    async def state(h: Running) -> str:
        return h.hub.health[DEVICE].state

    async def scenario() -> None:
        async with running_hub(tmp_path, devices=[dev], hub=hub_section) as h:
            for _ in range(300):
                if await state(h) == "DOWN":
                    break
                await asyncio.sleep(0.05)
            health = await h.device_health()
            assert (
                health["state"] == "DOWN"
                and "no request from terminal ADMS0001" in health["last_error"]
            )
            assert (await h.iclock("GET", "ping")).text == "OK"
            assert (await h.device_health())["state"] == "UP"

    asyncio.run(scenario())


def test_quarantined_line_replay_goes_back_to_the_parser(tmp_path: Path) -> None:
    from spotme_hub.pipeline.replay import replay_item

    async def scenario() -> None:
        async with running_hub(tmp_path) as h:
            assert (await h.attlog("1\t2026-11-20 25:00:00\t0\t1\t0\t0\t0\n")).text == "OK:1"
            (item,) = h.hub.store.quarantine_items()
            outcome = replay_item(h.cfg, h.hub.store, item)
            assert outcome.status == "open" and "still rejected" in outcome.detail
            assert "YYYY-MM-DD" in outcome.detail

    asyncio.run(scenario())


def test_simulate_adms_command_posts_gps_punches(tmp_path: Path) -> None:
    from spotme_hub.cli import cli

    dev = {"id": DEVICE, "kind": "zkteco_adms", "office": "pjy-hq", "serial": SN, "delay": 2,
           "extra_options": {"TransTimes": "12:00"}}  # fmt: skip

    async def scenario() -> None:
        async with running_hub(tmp_path, devices=[dev]) as h:
            opts = lines_of((await h.iclock("GET", "cdata", options="all")).text)
            assert (opts["Delay"], opts["TransTimes"]) == ("2", "12:00")
            args = ["simulate", "adms", "--url", h.url, "--sn", SN, "--records", "5", "--gps",
                    "--polls", "1", "--delay", "0"]  # fmt: skip
            res = await asyncio.to_thread(CliRunner().invoke, cli, args)
            assert res.exit_code == 0, res.output
            assert "handshake OK (TimeZone=8, Delay=2)" in res.output and "posted=5" in res.output
            recs = await h.records()
            assert len(recs) == 5 and {r["location_source"] for r in recs} == {"payload"}

    asyncio.run(scenario())


def test_other_tables_are_accepted_and_ignored(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_hub(tmp_path) as h:
            resp = await h.iclock("POST", "cdata", b"\x89PNG\r\n\x1a\n...", table="ATTPHOTO")
            assert resp.status_code == 200 and resp.text.startswith("OK")
            resp = await h.iclock(
                "POST", "cdata.aspx", "~DeviceName=MB560,MAC=00:17", table="options"
            )
            assert resp.status_code == 200 and resp.text == "OK:1"
            assert h.hub.store.count_records() == 0 and h.hub.store.quarantine_items() == []
            counters = (await h.device_health())["counters"]
            assert counters["ignored_attphoto"] == 1 and counters["ignored_options"] == 1

    asyncio.run(scenario())


def test_unanswered_command_is_resent_then_expires(tmp_path: Path) -> None:
    dev = {"id": DEVICE, "kind": "zkteco_adms", "office": "pjy-hq", "serial": SN,
           "command_timeout_s": 0.05}  # fmt: skip

    async def scenario() -> None:
        async with running_hub(tmp_path, devices=[dev]) as h:
            info = await _queue(h, kind="info")
            for _ in range(3):  # first send and two resends
                await asyncio.sleep(0.1)  # longer than command_timeout_s
                assert (await h.iclock("GET", "getrequest")).text == f"C:{info['cmd_id']}:INFO\n"
            await asyncio.sleep(0.1)
            assert (await h.iclock("GET", "getrequest")).text == "OK"
            (cmd,) = await _commands(h)
            assert (cmd["status"], cmd["attempts"]) == ("expired", 3)

    asyncio.run(scenario())


def test_admin_routes_bound_every_number_and_answer_422_in_one_shape(tmp_path: Path) -> None:
    """Huge or negative limits and hours were 500s (OverflowError); a refusal's `detail` is the
    published list of {loc, msg, type}, whichever route refused."""

    async def scenario() -> None:
        async with running_hub(tmp_path) as h:
            base = f"/api/v1/adms/{DEVICE}"
            for path in ("commands", "events"):
                for limit in ("-99999999999999999999", "0", "99999999999999999999"):
                    resp = await h.client.get(f"{base}/{path}", params={"limit": limit})
                    assert resp.status_code == 422, (path, limit, resp.text)
            for body in ({"kind": "backfill", "hours": 1e40}, {"kind": "verify", "hours": -1},
                         {"kind": "backfill", "start": "2026-11-20 00:00:00"},
                         {"kind": "backfill", "start": "x", "end": "y"}):  # fmt: skip
                resp = await h.client.post(f"{base}/commands", json=body)
                assert resp.status_code == 422, (body, resp.text)
                (problem, *_) = resp.json()["detail"]
                assert set(problem) >= {"loc", "msg", "type"}, resp.text
            resp = await h.client.get("/api/v1/records", params={"until": "null"})
            assert resp.status_code == 422
            assert resp.json()["detail"][0]["msg"].startswith("until: not an RFC 3339 time")

    asyncio.run(scenario())


def test_options_names_every_method_an_iclock_path_serves(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_hub(tmp_path) as h:
            for path, methods in (("cdata", {"GET", "POST"}), ("cdata.aspx", {"GET", "POST"}),
                                  ("getrequest", {"GET"}), ("devicecmd", {"POST"})):  # fmt: skip
                resp = await h.client.options(f"/iclock/{path}")
                assert resp.status_code == 204, (path, resp.text)
                allow = {m.strip() for m in resp.headers["allow"].split(",")}
                assert allow == methods | {"OPTIONS"}, (path, allow)

    asyncio.run(scenario())
