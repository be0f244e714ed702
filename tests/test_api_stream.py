"""`GET /api/v1/records/stream`: Server-Sent Events over real HTTP, resumable with Last-Event-ID."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from api_helpers import auth, running_api

from spotme_hub.service import open_hub

_lines: dict[int, AsyncIterator[str]] = {}


async def read_events(resp: httpx.Response, n: int) -> list[dict[str, Any]]:
    """Parse SSE frames until n `record` events arrived (one line iterator per response)."""
    lines = _lines.setdefault(id(resp), resp.aiter_lines())
    events: list[dict[str, Any]] = []
    frame: dict[str, str] = {}
    async for line in lines:
        if line == "":
            if frame.get("event") == "record":
                events.append({**orjson.loads(frame["data"]), "event_id": int(frame["id"])})
                if len(events) == n:
                    return events
            frame = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            frame[key] = value.removeprefix(" ")
    raise AssertionError(f"stream ended after {len(events)} events")


def punches(users: list[str], minute: int) -> dict[str, Any]:
    return {
        "device": "hr-api",
        "punches": [{"user_id": u, "time": f"2026-11-20T08:{minute:02d}:00"} for u in users],
    }


def test_stream_live_and_resume_with_last_event_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_api(tmp_path) as api:
            c = api.client
            await c.post("/api/v1/punches", json=punches(["1", "2"], 1), headers=auth("writer"))
            # from the start (after=0): the two stored records, then live ones as they commit
            async with c.stream("GET", "/api/v1/records/stream", params={"after": 0},
                                headers=auth("reader")) as resp:  # fmt: skip
                assert resp.status_code == 200
                assert resp.headers["content-type"].startswith("text/event-stream")
                first = await read_events(resp, 2)
                assert [e["event_id"] for e in first] == [1, 2]
                assert all(e["event_id"] == e["seq"] for e in first)

                async def later() -> None:
                    await asyncio.sleep(0.2)
                    await c.post("/api/v1/punches", json=punches(["1"], 2), headers=auth("writer"))

                task = asyncio.create_task(later())
                live = await asyncio.wait_for(read_events(resp, 1), 20)
                await task
                assert live[0]["seq"] == 3 and "T08:02:00" in live[0]["local_time"]
            # disconnected: records commit meanwhile; resuming from the last id misses none
            await c.post("/api/v1/punches", json=punches(["1", "2"], 3), headers=auth("writer"))
            await c.post("/api/v1/punches", json=punches(["2"], 4), headers=auth("writer"))
            headers = {**auth("reader"), "Last-Event-ID": "3"}
            async with c.stream("GET", "/api/v1/records/stream", headers=headers) as resp:
                resumed = await asyncio.wait_for(read_events(resp, 3), 20)
            assert [e["seq"] for e in resumed] == [4, 5, 6]
            # without a cursor the stream starts at the newest record: only new ones arrive
            async with c.stream("GET", "/api/v1/records/stream", headers=auth("reader"),
                                params={"employee": "E2"}) as resp:  # fmt: skip

                async def more() -> None:
                    await asyncio.sleep(0.2)
                    await c.post("/api/v1/punches", json=punches(["1", "2"], 5),
                                 headers=auth("writer"))  # fmt: skip

                task = asyncio.create_task(more())
                new = await asyncio.wait_for(read_events(resp, 1), 20)
                await task
            assert new[0]["seq"] == 8 and new[0]["employee_id"] == "E2"  # filtered: not seq 7
            bad = await c.get("/api/v1/records/stream", headers={**auth("reader"),
                              "Last-Event-ID": "abc"})  # fmt: skip
            assert bad.status_code == 422
            assert (await c.get("/api/v1/records/stream")).status_code == 401

    asyncio.run(scenario())


def test_open_streams_end_cleanly_when_the_hub_stops(tmp_path: Path) -> None:
    """`serve()` (what `spotme-hub run` uses) ends event streams, so a connected consumer neither
    holds the shutdown nor sees a broken response."""
    from adms_helpers import free_port
    from api_helpers import config

    from spotme_hub.api import serve
    from spotme_hub.service import config_from_dict, create_app

    async def scenario() -> None:
        cfg = config_from_dict(config(tmp_path), base_dir=tmp_path)
        hub = open_hub(cfg)
        await hub.start()
        stop = asyncio.Event()
        port = free_port()
        server = asyncio.create_task(
            serve(create_app(cfg, hub.store, hub), f"127.0.0.1:{port}", stop)
        )
        lines: list[str] = []
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
                for _ in range(500):
                    try:
                        await c.get("/healthz")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.01)
                async with c.stream("GET", "/api/v1/records/stream", headers=auth("reader")) as r:
                    async for line in r.aiter_lines():
                        lines.append(line)
                        if line.startswith("retry:"):
                            stop.set()  # the hub stops while the consumer is connected
                # the loop ended because the server ended the response, without an error
            await server
        finally:
            stop.set()
            await hub.stop()
            hub.store.close()
        assert lines[0] == "retry: 2000"

    asyncio.run(scenario())
