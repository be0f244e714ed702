"""Benchmark: punches/s through the ADMS push endpoint (HTTP + parsing + commit) against the
same punches handed to `ctx.submit` directly (the baseline, measured in the same run).

    .venv/bin/python bench/adms_push.py [--posts 20] [--lines 200] [--gps]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import uvicorn

from spotme_hub.adapters.zkteco_adms.adapter import parse_attlog_line
from spotme_hub.adapters.zkteco_adms.simulator import PushTerminal, SimPunch
from spotme_hub.service import config_from_dict, create_app, open_hub


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bodies(posts: int, lines: int, gps: bool, day: int) -> list[str]:
    term = PushTerminal("http://unused", "X", gps=gps, extended=gps, seed=1)
    start = datetime(2026, 11, day, 7, 0, 0)
    out = []
    for p in range(posts):
        punches = []
        for i in range(lines):
            lat, lon = term.near_center() if gps else (None, None)
            when = start + timedelta(seconds=p * lines + i)
            punches.append(SimPunch(str(i % 500), when, i % 2, 1, lat, lon))
        out.append("".join(term.line(x) + "\n" for x in punches))
    return out


async def main(posts: int, lines: int, gps: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-adms-"))
    cfg = config_from_dict({
        "hub": {"data_dir": str(tmp)},
        "offices": [{"id": "o", "latitude": 2.9264, "longitude": 101.6964, "geofence_m": 150}],
        "devices": [{"id": "push", "kind": "zkteco_adms", "office": "o", "serial": "BENCH1"}],
    }, base_dir=tmp)  # fmt: skip
    hub = open_hub(cfg)
    await hub.start()
    port = free_port()
    app = create_app(cfg, hub.store, hub)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        # baseline: parsed punches straight into the device context (no HTTP)
        ctx = hub.contexts["push"]
        base_bodies = bodies(posts, lines, gps, day=18)
        t0 = time.perf_counter()
        for body in base_bodies:
            await ctx.submit([parse_attlog_line(ln, "BENCH1") for ln in body.splitlines()])
        base = posts * lines / (time.perf_counter() - t0)
        # the real path: POST /iclock/cdata, OK only after commit
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            t0 = time.perf_counter()
            for body in bodies(posts, lines, gps, day=19):
                params = {"SN": "BENCH1", "table": "ATTLOG"}
                resp = await client.post("/iclock/cdata", params=params, content=body.encode())
                assert resp.text == f"OK:{lines}", resp.text
            http = posts * lines / (time.perf_counter() - t0)
        print(f"baseline ctx.submit : {base:10.0f} punches/s")
        print(f"ADMS HTTP post      : {http:10.0f} punches/s  ({http / base:.2f}× baseline)")
        print(f"({posts} posts × {lines} lines, gps={gps}, SQLite FULL sync)")
    finally:
        server.should_exit = True
        await task
        await hub.stop()
        hub.store.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=20)
    ap.add_argument("--lines", type=int, default=200)
    ap.add_argument("--gps", action="store_true")
    a = ap.parse_args()
    asyncio.run(main(a.posts, a.lines, a.gps))
