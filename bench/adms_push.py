"""Benchmark: punches/s through the ADMS push endpoint (HTTP + parsing + commit) against the
same punches handed to `ctx.submit` directly (the baseline, measured in the same run).

The terminal (an httpx client posting ATTLOG batches, waiting for each "OK") runs in a process of
its own, as a real terminal is another machine; baseline and hub alternate round by round, each
round with punches of a day of its own, 50,000 punches a side by default.

    .venv/bin/python bench/adms_push.py [--rounds 5] [--posts 50] [--lines 200] [--gps]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import shutil
import socket
import statistics
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


def terminal(port: int, posts: list[str], lines: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """The push terminal, in its own process: post each batch, wait for its OK; the seconds."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        t0 = time.perf_counter()
        for body in posts:
            params = {"SN": "BENCH1", "table": "ATTLOG"}
            resp = client.post("/iclock/cdata", params=params, content=body.encode())
            assert resp.text == f"OK:{lines}", resp.text
        out.put(time.perf_counter() - t0)


async def main(rounds: int, posts: int, lines: int, gps: bool) -> None:
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
        ctx = hub.contexts["push"]
        spawn = mp.get_context("spawn")
        base_rates, http_rates = [], []
        for r in range(rounds):  # alternate: a noisy minute hits both sides
            # baseline: parsed punches straight into the device context (no HTTP)
            batch = bodies(posts, lines, gps, day=1 + 2 * r)
            t0 = time.perf_counter()
            for body in batch:
                await ctx.submit([parse_attlog_line(ln, "BENCH1") for ln in body.splitlines()])
            base_rates.append(posts * lines / (time.perf_counter() - t0))
            # the real path: POST /iclock/cdata from the terminal's process, OK after commit
            out = spawn.Queue()
            proc = spawn.Process(target=terminal, args=(port, bodies(posts, lines, gps, day=2 + 2 * r),
                                                        lines, out))  # fmt: skip
            proc.start()
            while proc.is_alive() and out.empty():
                await asyncio.sleep(0.05)  # the hub serves it in this loop
            http_rates.append(posts * lines / out.get(timeout=60))
            proc.join(10)
        base, http = statistics.median(base_rates), statistics.median(http_rates)
        ratios = ", ".join(f"{h / b:.2f}" for h, b in zip(http_rates, base_rates, strict=True))
        print(f"baseline ctx.submit : {base:10.0f} punches/s (median of {rounds} rounds)")
        print(f"ADMS HTTP post      : {http:10.0f} punches/s  ({http / base:.2f}× baseline; "
              f"rounds: {ratios})")  # fmt: skip
        print(f"({rounds} rounds × {posts} posts × {lines} lines a side = {rounds * posts * lines:,} "
              f"punches each, gps={gps}, SQLite FULL sync)")  # fmt: skip
    finally:
        server.should_exit = True
        await task
        await hub.stop()
        hub.store.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--posts", type=int, default=50, help="posts a round and side")
    ap.add_argument("--lines", type=int, default=200, help="punches a post")
    ap.add_argument("--gps", action="store_true")
    a = ap.parse_args()
    asyncio.run(main(a.rounds, a.posts, a.lines, a.gps))
