"""Benchmark: how soon a live punch shows in its officer's stored day, at a steady punch rate.

A real hub (`spotme-hub run` in a child process: HTTP ingest, the store, the attendance ledger)
with `--officers` officers; today is opened for all of them first. Then punches arrive through
`POST /api/v1/punches` at `--rate` punches/s, one per officer (so each officer's day changes
once and its `updated_at` is the moment that punch became readable). Latency = the day's
`updated_at` − the record's `committed_at`, both stamped by the hub in the store.

Printed beside it, as the baseline measured in the same run: the ingest's own latency (request
sent → answer, which comes after the commit).

    python bench/days_live.py [--officers 20000] [--rate 1000] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

KL = dt.timezone(dt.timedelta(hours=8))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(root: Path, officers: int, port: int) -> Path:
    cfg = {
        "hub": {"id": "bench", "data_dir": str(root / "data"), "sqlite_synchronous": "NORMAL"},
        "offices": [{"id": "pjy", "state": "PJY"}],
        "devices": [{"id": "phone", "kind": "http", "office": "pjy"}],
        "employees": [
            {"id": f"S{i:06d}", "user_ids": [str(i)], "office": "pjy"} for i in range(officers)
        ],
        "api": {"listen": f"127.0.0.1:{port}"},
        "attendance": {"poll_s": 0.2},
    }
    path = root / "hub.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def wait_for_today(db: Path, officers: int, timeout: float = 300) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    n = conn.execute("SELECT count(*) FROM attendance_days").fetchone()[0]
                if n >= officers:
                    return time.monotonic() - started
            except sqlite3.OperationalError:
                pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"today was not opened for {officers} officers in {timeout:.0f} s")


async def load(base: str, officers: int, rate: float, seconds: float) -> list[float]:
    """Punches at `rate`/s in batches every 50 ms; returns each request's latency."""
    per_tick = max(1, round(rate / 20))
    total = min(officers, int(rate * seconds))
    now = dt.datetime.now(KL).replace(microsecond=0, tzinfo=None)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        pending: set[asyncio.Task[None]] = set()

        async def post(first: int, n: int) -> None:
            items = [{"user_id": str(i), "time": now.isoformat()} for i in range(first, first + n)]
            t0 = time.perf_counter()
            resp = await http.post("/api/v1/punches", json={"device": "phone", "punches": items})
            resp.raise_for_status()
            latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        for k, first in enumerate(range(0, total, per_tick)):
            delay = start + k * 0.05 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(post(first, min(per_tick, total - first)))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        took = time.perf_counter() - start
    print(f"sent {total} punches in {took:.1f} s ({total / took:,.0f}/s)")
    return latencies


def latencies(db: Path, expected: int, timeout: float = 120) -> list[float]:
    sql = (
        "SELECT (julianday(d.updated_at) - julianday(r.committed_at)) * 86400.0 "
        "FROM records r JOIN attendance_days d ON d.employee_id = r.employee_id "
        "AND d.doc LIKE '%' || r.id || '%'"
    )
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(db) as conn:
            rows = [r[0] for r in conn.execute(sql)]
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--officers", type=int, default=20_000)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="days-live-"))
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = write_config(root, args.officers, port)
    db = root / "data" / "hub.db"
    hub = subprocess.Popen(
        [sys.executable, "-m", "spotme_hub.cli", "run", "-c", str(cfg)],
        stdout=subprocess.DEVNULL,
    )
    try:
        opened = asyncio.run(wait_for_today(db, args.officers))
        print(f"today opened for {args.officers:,} officers in {opened:.1f} s (after start-up)")
        sent = asyncio.run(load(f"http://127.0.0.1:{port}", args.officers, args.rate, args.seconds))
        expected = min(args.officers, int(args.rate * args.seconds))
        lat = latencies(db, expected)
    finally:
        hub.terminate()
        hub.wait(timeout=60)
    if len(lat) < expected:
        print(f"only {len(lat)} of {expected} punches reached their day")
    print(
        f"commit → day readable: p50 {statistics.median(lat) * 1000:.0f} ms, "
        f"p99 {pct(lat, 99) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms "
        f"({len(lat)} punches; target p99 ≤ 2000 ms)"
    )
    print(
        f"baseline, the ingest's own request → committed answer: p50 "
        f"{statistics.median(sent) * 1000:.0f} ms, p99 {pct(sent, 99) * 1000:.0f} ms "
        f"({len(sent)} requests)"
    )


if __name__ == "__main__":
    main()
