"""The hub's API over real HTTP: auth, ingest, feed filters, devices, quarantine, operations."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from api_helpers import TOKENS, Api, auth, config, make_records, running_api

from spotme_hub.service import config_from_dict, create_app
from spotme_hub.store import Store


def now_local(minutes: int = 0) -> str:
    return (datetime.now(UTC) + timedelta(hours=8, minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S")


async def wait_state(api: Api, device: str, state: str) -> dict[str, Any]:
    for _ in range(300):
        resp = await api.client.get(f"/api/v1/devices/{device}", headers=auth("reader"))
        if resp.json()["state"] == state:
            return dict(resp.json())
        await asyncio.sleep(0.05)
    raise AssertionError(f"{device} never became {state}: {resp.json()}")


# --- auth ------------------------------------------------------------------------------------

ENDPOINTS = [  # (method, path, scope, body, answer once authorised)
    ("GET", "/api/v1/records", "feed:read", None, 200),
    ("GET", "/api/v1/devices", "feed:read", None, 200),
    ("GET", "/api/v1/devices/hr-api", "feed:read", None, 200),
    ("GET", "/api/v1/offices", "feed:read", None, 200),
    ("GET", "/metrics", "feed:read", None, 200),
    ("POST", "/api/v1/punches", "punches:write",
     {"device": "hr-api", "punches": [{"user_id": "1", "time": "2026-11-20T08:00:00"}]}, 200),
    ("GET", "/api/v1/quarantine", "admin", None, 200),
    ("POST", "/api/v1/quarantine/999/replay", "admin", None, 404),
    ("GET", "/api/v1/forward", "admin", None, 200),  # not configured here: says so
    ("GET", "/api/v1/overview", "admin", None, 200),
    ("GET", "/api/v1/adms/pending", "admin", None, 200),
]  # fmt: skip
WHO = {"feed:read": "reader", "punches:write": "writer", "admin": "admin"}


def test_auth_401_403_and_scopes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_api(tmp_path) as api:
            c = api.client
            for method, path, scope, body, ok in ENDPOINTS:
                resp = await c.request(method, path, json=body)
                assert resp.status_code == 401, (path, resp.text)
                assert resp.headers["www-authenticate"] == "Bearer"
                bad = {"Authorization": "Bearer not-a-token"}
                assert (await c.request(method, path, json=body, headers=bad)).status_code == 401
                basic = {"Authorization": f"Basic {TOKENS['admin']}"}
                assert (await c.request(method, path, json=body, headers=basic)).status_code == 401
                for who in ("reader", "writer"):
                    resp = await c.request(method, path, json=body, headers=auth(who))
                    want = ok if WHO[scope] == who else 403
                    assert resp.status_code == want, (path, who, resp.text)
                    if want == 403:
                        assert scope in resp.json()["detail"]
                # admin implies every scope
                resp = await c.request(method, path, json=body, headers=auth("admin"))
                assert resp.status_code == ok, (path, resp.text)
            # health endpoints and the dashboard page are open; the ADMS device routes too
            for path in ("/healthz", "/readyz", "/", "/static/dashboard.js"):
                assert (await c.get(path)).status_code == 200, path
            assert (await c.get("/iclock/cdata", params={"SN": "SILENT01"})).status_code == 200

    asyncio.run(scenario())


def test_no_tokens_serves_loopback_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_api(tmp_path, tokens=False) as api:
            resp = await api.client.get("/api/v1/quarantine")  # we are a loopback client
            assert resp.status_code == 200
        # the same app seen from another host: refused until tokens are configured
        cfg = config_from_dict(config(tmp_path, tokens=False), base_dir=tmp_path)
        store = Store(cfg.database_url)
        transport = httpx.ASGITransport(create_app(cfg, store, None), client=("10.20.30.40", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as remote:
            resp = await remote.get("/api/v1/records")
            assert resp.status_code == 401 and "loopback" in resp.json()["detail"]
            assert (await remote.get("/healthz")).status_code == 200
        store.close()

    asyncio.run(scenario())


# --- ingest ----------------------------------------------------------------------------------


def test_punches_created_duplicate_quarantined_ignored_and_idempotent(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_api(tmp_path) as api:
            t = now_local(-5)
            items: list[Any] = [
                {"user_id": "1", "time": t, "punch": "in", "verify": "card"},
                {"user_id": "2", "time": t, "punch": 1, "latitude": 2.93, "longitude": 101.7},
                {"card": "0008844356", "time": t},
                {"time": t, "punch": "in"},  # no one: mapping error → quarantine
                {"user_id": "1", "time": t, "punch": "in", "verify": "card"},  # same as item 0
                {"user_id": "3", "time": "1999-01-01T00:00:00", "punch": "in"},
                "",  # empty payload: ignored
                {"user_id": "2", "time": t, "punch": "lunch?"},  # unknown punch word
            ]
            resp = await api.client.post(
                "/api/v1/punches", json={"device": "hr-api", "punches": items},
                headers=auth("writer"),
            )  # fmt: skip
            assert resp.status_code == 200, resp.text
            body = resp.json()
            status = [r["status"] for r in body["results"]]
            assert [r["index"] for r in body["results"]] == list(range(len(items)))
            assert status[:5] == ["created", "created", "created", "quarantined", "duplicate"]
            assert status[6] == "ignored"
            assert body["results"][3]["reason"] == "no user id or card in the payload"
            assert body["results"][4]["record_id"] == body["results"][0]["record_id"]
            q = body["results"][3]["quarantine_id"]
            assert isinstance(q, int)
            assert body["created"] == status.count("created")
            assert body["quarantined"] == status.count("quarantined")
            # 1999: an untrusted device time is replaced by the receive time and flagged
            assert status[5] == "created"
            recs = (await api.client.get("/api/v1/records", params={"device": "hr-api"},
                                         headers=auth("reader"))).json()["records"]  # fmt: skip
            by_id = {r["id"]: r for r in recs}
            first = by_id[body["results"][0]["record_id"]]
            assert first["employee_id"] == "E1" and first["device_kind"] == "http"
            assert first["source"]["kind"] == "http" and first["source"]["client"] == "writer"
            assert "device_time_untrusted" in by_id[body["results"][5]["record_id"]]["flags"]
            # resending the whole batch creates nothing new
            again = await api.client.post(
                "/api/v1/punches", json={"device": "hr-api", "punches": items},
                headers=auth("writer"),
            )  # fmt: skip
            assert again.json()["created"] == 0
            assert again.json()["duplicate"] == body["created"] + body["duplicate"]
            total = len((await api.client.get("/api/v1/records", headers=auth("reader"))).json()[
                "records"])  # fmt: skip
            assert total == body["created"]
            # the quarantined item is listed with its source and reason
            ql = (await api.client.get("/api/v1/quarantine", headers=auth("admin"))).json()
            item = next(i for i in ql["items"] if i["qid"] == q)
            assert item["device_id"] == "hr-api" and item["source"]["index"] == 3
            assert item["raw"] == {"time": t, "punch": "in"}
            # records are idempotent; a resent bad item is quarantined again (each arrival is kept)
            assert ql["open_count"] == len(ql["items"]) == 2 * body["quarantined"]
            # a device's own mapping: the mobile app sends staff.pin / ts / Masuk
            resp = await api.client.post(
                "/api/v1/punches", headers=auth("writer"),
                json={"device": "mobile", "punches": [
                    {"staff": {"pin": "2"}, "ts": now_local(), "type": "Masuk"}]},
            )  # fmt: skip
            assert resp.json()["created"] == 1
            rec = (await api.client.get("/api/v1/records", headers=auth("reader"),
                                        params={"device": "mobile"})).json()["records"][0]  # fmt: skip
            assert rec["employee_id"] == "E2" and rec["punch"] == "in"
            assert rec["office_id"] == "kch" and rec["timezone"] == "Asia/Kuching"

    asyncio.run(scenario())


def test_punches_bad_input_is_4xx_never_500(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_api(tmp_path) as api:
            c, h = api.client, auth("writer")
            post = c.post
            assert (await post("/api/v1/punches", content=b"{", headers={**h, "content-type":
                    "application/json"})).status_code == 422  # fmt: skip
            assert (await post("/api/v1/punches", json={"device": "hr-api", "punches": []},
                               headers=h)).status_code == 422  # fmt: skip
            assert (
                await post("/api/v1/punches", json={"punches": [{}]}, headers=h)
            ).status_code == 422
            resp = await post(
                "/api/v1/punches", json={"device": "nope", "punches": [{}]}, headers=h
            )
            assert resp.status_code == 404 and "nope" in resp.json()["detail"]
            resp = await post("/api/v1/punches", json={"device": "lobby-zk", "punches": [{}]},
                              headers=h)  # fmt: skip
            assert resp.status_code == 404  # not an http device
            resp = await post("/api/v1/punches", headers=h,
                              json={"device": "hr-api", "punches": [1, None, [], {"user_id": ""}, "x"]})  # fmt: skip
            assert resp.status_code == 200
            assert {r["status"] for r in resp.json()["results"]} <= {"quarantined", "ignored"}
            # body size limit: declared and streamed (chunked, no content-length)
            big = b'{"device":"hr-api","punches":[' + b'{"user_id":"1"},' * 20000 + b"{}]}"
            resp = await post("/api/v1/punches", content=big,
                              headers={**h, "content-type": "application/json"})  # fmt: skip
            assert resp.status_code == 413

            async def chunks():  # type: ignore[no-untyped-def]
                for i in range(0, len(big), 8192):
                    yield big[i : i + 8192]

            resp = await post("/api/v1/punches", content=chunks(),
                              headers={**h, "content-type": "application/json"})  # fmt: skip
            assert resp.status_code == 413
            assert (await c.get("/healthz")).status_code == 200
            # JSON has no NaN or Infinity; Python's parser reads them (and 1e999): each such item
            # is quarantined with where it is, the others are stored
            t = now_local(-5)
            ts = json.dumps(t)
            body = (
                '{"device":"hr-api","punches":['
                '{"user_id":"1","time":' + ts + ',"punch":"in","latitude":NaN,"longitude":101.7},'
                '{"user_id":"NaN","time":1e999},'
                '{"user_id":2,"time":' + ts + ',"punch":Infinity},'
                '{"user_id":"2","time":' + ts + ',"punch":"in"}]}'
            )
            resp = await post("/api/v1/punches", content=body.encode(),
                              headers={**h, "content-type": "application/json"})  # fmt: skip
            assert resp.status_code == 200, resp.text
            results = resp.json()["results"]
            assert [r["status"] for r in results] == ["quarantined"] * 3 + ["created"]
            assert [r["reason"] for r in results[:3]] == [
                f"{where}: not a finite number (JSON has no NaN or Infinity)"
                for where in ("item.latitude", "item.time", "item.punch")
            ]

    asyncio.run(scenario())


# --- feed filters ----------------------------------------------------------------------------


def test_records_filters_cursor_and_limits(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_api(tmp_path, with_hub=False, api={"max_page": 50}) as api:
            api.store.commit(make_records(0, 300, device="a", office="pjy-hq"))
            api.store.commit(make_records(0, 200, device="b", office="kch"))
            c, h = api.client, auth("reader")

            async def get(**params: Any) -> httpx.Response:
                return await c.get("/api/v1/records", params=params, headers=h)

            page = (await get(limit=10)).json()
            assert [r["seq"] for r in page["records"]] == list(range(1, 11))
            assert page["next_cursor"] == 10
            assert page["records"][0] == api.store.records(0, 1)[0]  # same record as the store's
            assert len((await get(limit=10_000)).json()["records"]) == 50  # capped at max_page

            async def all_pages(**params: Any) -> list[dict[str, Any]]:
                out, after = [], 0
                while True:
                    body = (await get(after=after, **params)).json()
                    if not body["records"]:
                        return out
                    out += body["records"]
                    after = body["next_cursor"]

            assert {r["device_id"] for r in await all_pages(device="b")} == {"b"}
            assert len(await all_pages(device="b")) == 200
            assert len(await all_pages(office="pjy-hq")) == 300
            emp = await all_pages(employee="E7")
            assert emp and {r["employee_id"] for r in emp} == {"E7"}
            assert len(emp) == api.store.count_records(_flt(employee_id="E7"))
            flagged = await all_pages(flag="clock_skew")
            assert flagged and all("clock_skew" in r["flags"] for r in flagged)
            assert len(flagged) == sum(1 for i in range(300) if i % 7 == 0) + sum(
                1 for i in range(200) if i % 7 == 0)  # fmt: skip
            since, until = "2026-11-20T00:01:00Z", "2026-11-20T08:02:00+08:00"
            ranged = await all_pages(since=since, until=until)
            assert ranged and all(
                "2026-11-20T00:01:00.000Z" <= r["occurred_at"] < "2026-11-20T00:02:00.000Z"
                for r in ranged
            )
            assert len(ranged) == 120  # 60 s × 2 devices
            # inside a second: times are stored to the second, so 00:01:00.5 ≤ t < 00:02:00.5
            # holds 00:01:01 … 00:02:00
            inside = await all_pages(since="2026-11-20T00:01:00.5Z", until="2026-11-20T00:02:00.5Z")
            assert sorted({r["occurred_at"][:19] for r in inside})[::59] == [
                "2026-11-20T00:01:01", "2026-11-20T00:02:00"]  # fmt: skip
            assert len(inside) == 120
            assert (await get(device="nope")).json() == {"records": [], "next_cursor": 0}
            for bad in ({"since": "yesterday"}, {"until": "2026-11-20T08:00:00"}, {"limit": 0},
                        {"after": -1}, {"after": "x"}, {"flag": "DROP TABLE"}):  # fmt: skip
                resp = await get(**bad)
                assert resp.status_code == 422, (bad, resp.text)
                assert resp.json()["detail"]

    asyncio.run(scenario())


def _flt(**kw: Any) -> Any:
    from spotme_hub.store import RecordFilter

    return RecordFilter(**kw)


def test_paging_100k_exactly_once_while_records_commit(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_api(tmp_path, with_hub=False) as api:
            await asyncio.to_thread(api.store.commit, make_records(0, 50_000))
            done = asyncio.Event()

            def writer() -> None:  # 50k more commit while the consumer pages
                for start in range(50_000, 100_000, 5_000):
                    api.store.commit(make_records(start, 5_000))

            async def produce() -> None:
                await asyncio.to_thread(writer)
                done.set()

            producer = asyncio.create_task(produce())
            seen: list[str] = []
            seqs: list[int] = []
            after, finished = 0, False
            while True:
                resp = await api.client.get(
                    "/api/v1/records",
                    params={"after": after, "limit": 5000},
                    headers=auth("reader"),
                )
                body = resp.json()
                seen += [r["id"] for r in body["records"]]
                seqs += [r["seq"] for r in body["records"]]
                after = body["next_cursor"]
                if not body["records"]:
                    if finished:
                        break
                    finished = done.is_set()  # one more empty page after the writer is done
                    await asyncio.sleep(0.01)
            await producer
            assert len(seen) == 100_000
            assert len(set(seen)) == 100_000
            assert seqs == sorted(seqs)

    asyncio.run(scenario())


# --- devices, offices, forwarding, operations ------------------------------------------------


def test_devices_offices_forwarding(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_api(tmp_path) as api:
            down = await wait_state(api, "lobby-zk", "DOWN")
            assert "no request from terminal SILENT01" in down["last_error"]
            assert down["counters"]["failures"] >= 1 and down["name"] == "Lobby terminal"
            resp = await api.client.post(
                "/api/v1/punches", headers=auth("writer"), json={"device": "hr-api", "punches": [
                    {"user_id": "1", "time": now_local(), "punch": "in"},
                    {"user_id": "2", "time": now_local(), "punch": "in"},
                    {"user_id": "2", "time": "2026-01-05T08:00:00", "punch": "in"},  # not today
                    {"time": now_local()}]},
            )  # fmt: skip
            assert resp.json()["created"] == 3
            up = await wait_state(api, "hr-api", "UP")
            assert up["punches_today"] == 2 and up["quarantined_open"] == 1
            assert up["counters"]["new"] == 3 and up["last_seen"]
            devices = (await api.client.get("/api/v1/devices", headers=auth("reader"))).json()
            assert {d["device_id"]: d["state"] for d in devices}["lobby-zk"] == "DOWN"
            assert len(devices) == 3
            resp = await api.client.get("/api/v1/devices/ghost", headers=auth("reader"))
            assert resp.status_code == 404
            offices = (await api.client.get("/api/v1/offices", headers=auth("reader"))).json()
            assert [o["id"] for o in offices] == ["pjy-hq", "kch"]
            assert offices[1]["timezone"] == "Asia/Kuching"
            resp = await api.client.get("/api/v1/forward", headers=auth("admin"))
            assert resp.status_code == 200 and resp.json()["enabled"] is False
            # one forwarding status, the forward part's (/api/v1/forwarding was a second copy)
            assert (
                await api.client.get("/api/v1/forwarding", headers=auth("admin"))
            ).status_code == 404
            ov = (await api.client.get("/api/v1/overview", headers=auth("admin"))).json()
            assert ov["quarantine_open"] == 1 and ov["records_total"] == 3
            assert ov["recent"][0]["seq"] == 3 and ov["forwarding"] is None

    asyncio.run(scenario())


def test_health_and_metrics(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_api(tmp_path) as api:
            c = api.client
            assert (await c.get("/healthz")).json() == {"status": "ok"}
            assert (await c.get("/readyz")).json() == {"status": "ready"}
            await wait_state(api, "lobby-zk", "DOWN")
            await c.post("/api/v1/punches", headers=auth("writer"), json={
                "device": "hr-api", "punches": [{"user_id": "1", "time": now_local()}, {"x": 1}]})  # fmt: skip
            await c.get("/api/v1/records", headers=auth("reader"))
            text = (await c.get("/metrics", headers=auth("reader"))).text
            assert 'spotme_punches_total{device="hr-api",source="http"} 1.0' in text
            assert 'spotme_quarantine_open{device="hr-api"} 1.0' in text
            assert 'spotme_device_state{device="lobby-zk",state="DOWN"} 1.0' in text
            assert 'spotme_device_up{device="hr-api"} 1.0' in text
            assert 'spotme_device_up{device="lobby-zk"} 0.0' in text
            assert (
                'spotme_http_request_duration_seconds_count{method="GET",route="/api/v1/records",'
                'status="200"} 1.0' in text
            )

    asyncio.run(scenario())


def test_quarantine_replay_after_fixing_the_mapping(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_api(tmp_path) as api:
            resp = await api.client.post(
                "/api/v1/punches", headers=auth("writer"),
                json={"device": "hr-api", "punches": [{"pin": "1", "time": now_local()}]},
            )  # fmt: skip
            qid = resp.json()["results"][0]["quarantine_id"]
            # still the generic mapping: replay leaves it open
            out = await api.client.post(f"/api/v1/quarantine/{qid}/replay", headers=auth("admin"))
            assert out.status_code == 200
            assert out.json()["status"] == "open" and "no user id" in out.json()["detail"]
            assert (await api.client.post("/api/v1/quarantine/99999/replay",
                                          headers=auth("admin"))).status_code == 404  # fmt: skip
            assert (await api.client.post("/api/v1/quarantine/0/replay",
                                          headers=auth("admin"))).status_code == 422  # fmt: skip
        # the admin fixes the mapping (pin → user_id) and replays
        data = config(tmp_path)
        data["devices"][0]["mapping"] = {"user_id": "pin", "time": "time"}
        async with running_api(tmp_path, data=data) as api:
            out = await api.client.post(f"/api/v1/quarantine/{qid}/replay", headers=auth("admin"))
            assert out.json()["status"] == "replayed" and out.json()["records"] == 1
            recs = (await api.client.get("/api/v1/records", headers=auth("reader"))).json()
            assert recs["records"][0]["employee_id"] == "E1"
            again = await api.client.post(f"/api/v1/quarantine/{qid}/replay", headers=auth("admin"))
            assert again.status_code == 409
            ql = await api.client.get("/api/v1/quarantine", params={"status": "replayed"},
                                      headers=auth("admin"))  # fmt: skip
            assert [i["qid"] for i in ql.json()["items"]] == [qid]

    asyncio.run(scenario())


def test_stored_pages_give_back_exactly_what_was_committed(store: Store) -> None:
    """Pages (dicts and the JSON texts the API serves) hold exactly the committed records, in
    commit order, filters included: floats, booleans and escapes survive the stored JSON."""
    import orjson

    from spotme_hub.store import RecordFilter

    recs = make_records(0, 600, device="a") + make_records(0, 400, device="b", office="kch")
    for k, r in enumerate(recs[:12]):  # awkward values: floats, booleans, escapes
        r.latitude = [0.1 + 0.2, 1 / 3, 2.926412345678901, None][k % 4]
        r.distance_m = [1e-7, 123456789.125, None][k % 3]
        r.within_geofence = [None, True, False][k % 3]
        r.raw = {"t": 'tab\t\u0001 é 😀 "q" \\', "n": [1, 2.5, None]}
        r.source_user_id = 'a"b\\c\n'
    store.commit(recs)
    committed = [r.to_dict() for r in recs]  # commit order = seq order
    filters = [
        (None, lambda r: True),
        (RecordFilter(device_id="b"), lambda r: r["device_id"] == "b"),
        (RecordFilter(flag="clock_skew"), lambda r: "clock_skew" in r["flags"]),
        (RecordFilter(office_id="pjy-hq", employee_id="E3"),
         lambda r: r["office_id"] == "pjy-hq" and r["employee_id"] == "E3"),
        (RecordFilter(since="2026-11-20T00:05:00.000Z", until="2026-11-20T00:09:00.000Z"),
         lambda r: "2026-11-20T00:05:00.000Z" <= r["occurred_at"] < "2026-11-20T00:09:00.000Z"),
    ]  # fmt: skip
    for flt, keep in filters:
        matching = [(seq, r) for seq, r in enumerate(committed, 1) if keep(r)]
        assert matching, flt
        for after, limit in ((0, 1000), (0, 7), (350, 100), (5000, 10)):
            expect = [{"seq": seq, **r} for seq, r in matching if seq > after][:limit]
            got = store.records(after, limit, flt)
            assert got == expect, (flt, after, limit)
            texts, last = store.records_json(after, limit, flt)
            assert [orjson.loads(t) for _, _, t in texts] == expect, (flt, after, limit)
            assert [(seq, rid) for seq, rid, _ in texts] == [(r["seq"], r["id"]) for r in expect]
            assert last == (expect[-1]["seq"] if expect else after)
            bare, _ = store.records_json(after, limit, flt, with_seq=False)
            assert [orjson.loads(t) for _, _, t in bare] == [
                {k: v for k, v in r.items() if k != "seq"} for r in expect
            ]


def test_forwarding_status_endpoint_overview_and_metrics(tmp_path: Path) -> None:
    """With a core configured (here unreachable, and no forwarder running in this process) the
    committed records wait in the outbox: the endpoint, the overview and the metrics show it."""

    async def scenario() -> None:
        async with running_api(tmp_path, core={"url": "http://127.0.0.1:9"}) as api:
            await api.client.post("/api/v1/punches", headers=auth("writer"), json={
                "device": "hr-api", "punches": [{"user_id": "1", "time": now_local()},
                                                {"user_id": "2", "time": now_local()}]})  # fmt: skip
            resp = await api.client.get("/api/v1/forward", headers=auth("admin"))
            assert resp.status_code == 200
            status = resp.json()
            assert status["enabled"] is True and status["backlog"] == 2
            assert status["url"] == "http://127.0.0.1:9/api/v1/attendance/batch"
            assert status["dead_letters"] == 0 and status["delivered"] == 0
            assert (
                await api.client.get("/api/v1/forward", headers=auth("reader"))
            ).status_code == 403
            ov = (await api.client.get("/api/v1/overview", headers=auth("admin"))).json()
            assert ov["forwarding"]["backlog"] == 2
            text = (await api.client.get("/metrics", headers=auth("reader"))).text
            assert "spotme_forward_backlog 2.0" in text
            assert "spotme_forward_dead_letters 0.0" in text
            assert (await api.client.get("/api/v1/forward")).status_code == 401

    asyncio.run(scenario())


def test_disk_room_is_visible_and_a_full_disk_refuses_new_data(tmp_path: Path) -> None:
    """Store size, free space and the oldest record on /metrics and the overview; under
    hub.disk_alert_mb an alert, under hub.disk_floor_mb every write is a 503 with Retry-After
    (push clients retry) and nothing is stored, while reads go on."""

    async def scenario() -> None:
        async with running_api(tmp_path) as api:
            c = api.client
            await c.post("/api/v1/punches", headers=auth("writer"), json={
                "device": "hr-api", "punches": [{"user_id": "1", "time": now_local(-5)}]})  # fmt: skip
            text = (await c.get("/metrics", headers=auth("reader"))).text
            for name in ("spotme_store_bytes", "spotme_data_free_bytes",
                         "spotme_oldest_record_age_seconds", "spotme_disk_alert 0.0"):  # fmt: skip
                assert name in text, name
            disk = (await c.get("/api/v1/overview", headers=auth("admin"))).json()["disk"]
            assert disk["store_bytes"] > 0 and disk["free_bytes"] > 0 and not disk["alert"]
            # the same hub with more room asked for than this disk has
            api.cfg.hub.disk_alert_mb = api.cfg.hub.disk_floor_mb = 10**12
            disk = (await c.get("/api/v1/overview", headers=auth("admin"))).json()["disk"]
            assert disk["alert"] and disk["refusing_writes"]
            before = api.store.count_records()
            refused = await c.post("/api/v1/punches", headers=auth("writer"), json={
                "device": "hr-api", "punches": [{"user_id": "2", "time": now_local(-4)}]})  # fmt: skip
            assert refused.status_code == 503 and refused.headers["retry-after"] == "60"
            assert "out of disk space" in refused.json()["detail"][0]["msg"]
            assert api.store.count_records() == before
            assert (await c.get("/api/v1/records", headers=auth("reader"))).status_code == 200

    asyncio.run(scenario())
