"""Forwarding to the reference core over real HTTP on loopback: outages, error storms, dead
letters and replay, ordering, the drain-rate limit and alert caps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from forward_helpers import admin, core_fixture, make_records  # noqa: F401  (fixture)
from hub_helpers import wait_until

from spotme_hub.forward.core_sim import CoreServer, CoreState, free_port
from spotme_hub.forward.forwarder import Forwarder, dead_letters, forward_status
from spotme_hub.record import RECORD_FIELDS
from spotme_hub.service import tables
from spotme_hub.store import JSON_FIELDS, Store, dumps


def core_cfg(make_config: Any, url: str, **extra: Any) -> Any:
    section = {"url": url, "token": "s3cret", "batch_size": 100, "poll_s": 0.05,
               "retry_min_s": 0.05, "retry_max_s": 0.3, **extra}  # fmt: skip
    return make_config(core=section)


@contextlib.asynccontextmanager
async def forwarding(fwd: Forwarder) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def hub_ids(store: Store) -> list[str]:
    return [r["id"] for r in store.iter_records()]


async def test_core_down_backlog_grows_then_drains_all(make_config: Any, store: Store) -> None:
    port = free_port()
    cfg = core_cfg(make_config, f"http://127.0.0.1:{port}")
    fwd = Forwarder(cfg, store)
    store.commit(make_records(250))
    async with forwarding(fwd):
        # nothing listens on the port: connection refused, retried with backoff
        await wait_until(lambda: forward_status(store, cfg)["state"] == "retrying", timeout=20)
        store.commit(make_records(400, start=250))
        fwd.notify()
        st = forward_status(store, cfg)
        assert st["backlog"] == 650 and st["delivered"] == 0
        assert "unreachable" in st["last_error"]
        server = CoreServer(CoreState(token="s3cret"), port=port).start()
        try:
            await wait_until(lambda: forward_status(store, cfg)["backlog"] == 0, timeout=60)
            assert server.state.ids() == hub_ids(store)  # all of them, once, in commit order
        finally:
            server.stop()
    st = forward_status(store, cfg)
    assert st["delivered"] == st["accepted"] == 650
    assert st["dead_letters"] == 0 and st["state"] == "ok"
    # recovered: the outage is history (when it was, when it ended), not a current error
    assert st["last_error"] is None and st["last_error_at"] <= st["recovered_at"]


async def test_5xx_and_429_storm_delivers_everything_in_order(
    make_config: Any, store: Store, core: CoreServer
) -> None:
    cfg = core_cfg(make_config, core.url, token=None)
    store.commit(make_records(1500))
    admin(core, "settings", error_rate=0.4, fail_next=3, fail_status=429, retry_after=1)
    await Forwarder(cfg, store).drain()
    assert forward_status(store, cfg)["backlog"] == 0
    stats: Any = admin(core, "stats")
    assert stats["failed"] >= 3 and stats["stored"] == 1500 == stats["distinct_ids"]
    assert core.state.ids() == hub_ids(store)
    # Retry-After honoured: after each 429 the next request came at least 1 s later (core's clock)
    log: Any = admin(core, "requests")
    gaps = [b["t"] - a["t"] for a, b in zip(log, log[1:], strict=False) if a["status"] == 429]
    assert len(gaps) == 3 and min(gaps) >= 1.0
    # a failing batch is retried whole before the next one leaves: first ids never go backwards
    firsts = [r["first"] for r in log if r["status"] == 200]
    order = {rid: i for i, rid in enumerate(hub_ids(store))}
    assert [order[f] for f in firsts] == sorted(order[f] for f in firsts)


@pytest.mark.parametrize("bulk", [False, True], ids=["committed", "bulk-inserted"])
async def test_rejected_records_become_dead_letters_and_replay(
    make_config: Any, store: Store, core: CoreServer, bulk: bool
) -> None:
    cfg = core_cfg(make_config, core.url, token=None)
    recs = make_records(300)
    if bulk:  # stored with a shape: the batches and the dead letters' replay render them
        store.bulk_insert(
            {
                name: [dumps(getattr(r, name)) if name in JSON_FIELDS else getattr(r, name)
                       for r in recs]
                for name in RECORD_FIELDS
            }
        )  # fmt: skip
    else:
        store.commit(recs)
    bad = [recs[10].id, recs[205].id]
    admin(core, "settings", reject_ids=bad, reject_reason="employee E10 unknown")
    await Forwarder(cfg, store).drain()
    st = forward_status(store, cfg)
    assert st["backlog"] == 0 and st["dead_letters"] == 2 and st["delivered"] == 298
    letters = dead_letters(store)
    assert [d["record_id"] for d in letters] == bad
    assert all(d["reason"] == "employee E10 unknown" for d in letters)
    assert core.state.stored() == 298

    # still refused: stays a dead letter, with the reason and one more attempt
    result = await Forwarder(cfg, store).retry_dead()
    assert result == {"sent": 2, "delivered": 0, "rejected": 2}
    assert [d["attempts"] for d in dead_letters(store)] == [2, 2]

    admin(core, "settings", reject_ids=[])  # the core now knows the employee
    result = await Forwarder(cfg, store).retry_dead()
    assert result == {"sent": 2, "delivered": 2, "rejected": 0}
    assert forward_status(store, cfg)["dead_letters"] == 0
    assert sorted(core.state.ids()) == sorted(hub_ids(store))
    received = {d["record"]["id"]: d["record"] for d in core.state.records(0, 1000)}
    assert received == {r.id: r.to_dict() for r in recs}


async def test_whole_batch_4xx_is_bisected_to_the_culprit(
    make_config: Any, store: Store, core: CoreServer
) -> None:
    cfg = core_cfg(make_config, core.url, token=None)
    recs = make_records(200)
    store.commit(recs)
    admin(core, "settings", reject_ids=[recs[137].id], reject_mode="batch")
    await Forwarder(cfg, store).drain()
    (letter,) = dead_letters(store)
    assert letter["record_id"] == recs[137].id and letter["reason"].startswith("HTTP 422")
    assert core.state.stored() == 199
    assert forward_status(store, cfg)["backlog"] == 0


async def test_wrong_token_blocks_and_never_dead_letters(
    make_config: Any, store: Store, core: CoreServer
) -> None:
    core.state.token = "right"
    cfg = core_cfg(make_config, core.url, token="wrong")
    store.commit(make_records(50))
    async with forwarding(Forwarder(cfg, store)):
        await wait_until(lambda: admin(core, "stats")["unauthorized"] >= 2, timeout=20)  # type: ignore[index]
    st = forward_status(store, cfg)
    assert st["backlog"] == 50 and st["dead_letters"] == 0 and "401" in st["last_error"]


async def test_drain_rate_limits_batches(make_config: Any, store: Store, core: CoreServer) -> None:
    cfg = core_cfg(make_config, core.url, token=None, drain_rate=200)
    store.commit(make_records(600))
    await Forwarder(cfg, store).drain()
    log: Any = admin(core, "requests")
    assert [r["n"] for r in log] == [100] * 6
    # 600 records at 200/s: one batch of 100 every 0.5 s, the sixth leaves at +2.5 s
    assert log[-1]["t"] - log[0]["t"] >= 2.0


async def test_backlog_caps_raise_an_alert_and_drop_nothing(make_config: Any, store: Store) -> None:
    cfg = core_cfg(make_config, f"http://127.0.0.1:{free_port()}", backlog_alert=40,
                   backlog_alert_age_s=3600)  # fmt: skip
    store.commit(make_records(30))
    assert forward_status(store, cfg)["alert"] is False
    store.commit(make_records(30, start=30))
    st = forward_status(store, cfg)
    assert st["alert"] is True and st["backlog"] == 60 and "backlog 60 > 40" in st["alerts"][0]
    assert st["oldest_age_s"] is not None and st["oldest_age_s"] < 3600


async def test_core_receives_the_canonical_record(
    make_config: Any, store: Store, core: CoreServer
) -> None:
    cfg = core_cfg(make_config, core.url, token=None)
    store.commit(make_records(30))
    await Forwarder(cfg, store).drain()
    sent = [item["record"] for item in core.state.records()]
    stored = [{k: v for k, v in r.items() if k != "seq"} for r in store.iter_records()]
    assert sent == stored  # the same dict the API serves: types, JSON fields, booleans, nulls
    assert {r["within_geofence"] for r in sent} == {True, False}


async def test_api_shows_status_and_dead_letters(
    make_config: Any, store: Store, core: CoreServer
) -> None:
    import httpx

    from spotme_hub.api import serve
    from spotme_hub.service import create_app

    cfg = core_cfg(make_config, core.url, token=None, backlog_alert=1)
    recs = make_records(20)
    store.commit(recs)
    admin(core, "settings", reject_ids=[recs[3].id])
    await Forwarder(cfg, store).drain()
    store.commit(make_records(5, start=20))
    port, stop = free_port(), asyncio.Event()
    server = asyncio.create_task(serve(create_app(cfg, store), f"127.0.0.1:{port}", stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def up() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            for _ in range(200):
                if await up():
                    break
                await asyncio.sleep(0.05)
            st = (await client.get("/api/v1/forward")).json()
            dl = (await client.get("/api/v1/forward/dead-letters")).json()
            # a cursor beyond SQLite's 64-bit integers is a 422, not a 500 (found by schemathesis)
            huge = await client.get("/api/v1/forward/dead-letters", params={"after": 2**64})
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)
    assert huge.status_code == 422
    assert st["backlog"] == 5 and st["delivered"] == 19 and st["dead_letters"] == 1
    assert st["alert"] is True
    assert [d["record_id"] for d in dl] == [recs[3].id]


def test_cli_status_dead_and_retry_dead(tmp_path: Any, core: CoreServer) -> None:
    import json

    import yaml
    from click.testing import CliRunner
    from conftest import base_config

    from spotme_hub.cli import cli
    from spotme_hub.service import load_config

    data = base_config(tmp_path, core={"url": core.url, "retry_min_s": 0.05})
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_config(path)
    store = Store(cfg.database_url)
    store.create_all(tables())
    recs = make_records(40)
    store.commit(recs)
    admin(core, "settings", reject_ids=[recs[7].id], reject_reason="no such officer")
    asyncio.run(Forwarder(cfg, store).drain())
    run = CliRunner().invoke
    listed = json.loads(run(cli, ["forward", "dead", "--json", "-c", str(path)]).output)
    assert [(d["record_id"], d["reason"]) for d in listed] == [(recs[7].id, "no such officer")]
    again = run(cli, ["forward", "retry-dead", "-c", str(path)])
    assert again.exit_code == 1 and "1 still rejected" in again.output
    admin(core, "settings", reject_ids=[])
    done = run(cli, ["forward", "retry-dead", "-c", str(path)])
    assert done.exit_code == 0 and "1 delivered" in done.output, done.output
    status = json.loads(run(cli, ["forward", "status", "--json", "-c", str(path)]).output)
    assert status["backlog"] == 0 and status["dead_letters"] == 0
    assert status["dead_letters_delivered"] == 1 and core.state.stored() == 40
