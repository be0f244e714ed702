"""Benchmark: a store of millions of records — filtered feed pages, the dashboard's overview, the
CLI, imports and live commits as the store grows.

    python bench/store_scale.py [--sizes 1,5,10] [--db sqlite,pg] [--pg URL] [--reps 30]

Fills a store the fast way (`Store.bulk_insert`, as a file import does: each device's slice of a
100,000-record batch one transaction) with 50,000 officers, 8 devices, 4 offices and a working
week per 1M records, up to each size in millions. At each size it measures, in the same run:

- the unfiltered tail page (1,000 records after `max_seq - 1000`): the baseline every other
  figure is printed beside;
- the first page and the last, empty page (after the filter's last record) of `employee=`,
  `office=`, `device=` and a one-day `since`/`until` window, 1,000-record pages, `--reps` times
  each (a different officer, office, device and day each time);
- `GET /api/v1/overview` over HTTP (uvicorn in a process of its own, a keep-alive connection);
- `spotme-hub records --employee X --limit 0` beside the same command for a device that has no
  records (start-up and nothing read), each a fresh process;
- importing the next 1M (the first 1M into the empty store is the baseline);
- live commits, 10 records a commit as the runtime's writer makes them, beside the same into the
  empty store (measured first).

PostgreSQL runs when `--pg` (or SPOTME_TEST_PG_URL) names a server: a database of its own is made
and dropped. Targets at 10M: every page p99 <= 50 ms, the overview <= 50 ms, the CLI dominated
by start-up, the next 1M <= 1.2x the first, live commits no slower than into the empty store.
The machine is shared: each figure is the p50/p99 of its repetitions, compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import create_engine, text

from spotme_hub.record import Record
from spotme_hub.service import config_from_dict, create_app, tables
from spotme_hub.store import RecordFilter, Store

OFFICERS, DEVICES, PER_WEEK, BATCH = 50_000, 8, 1_000_000, 100_000
TOKEN = "bench-token-store-scale"
FIRST_MONDAY = date(2026, 1, 5)
LIVE_DAY = date(2030, 1, 7)  # the live punches' days: after every imported one
WORK_S = 11 * 3600  # 07:00–18:00 local, 23:00Z–10:00Z
CONSTANTS = {
    "device_kind": "zkteco_tcp", "timezone": "Asia/Kuala_Lumpur", "office_state": "PJY",
    "verify": "fingerprint", "schema_version": 1, "flags": "[]", "location_source": "office",
    "received_at": "2026-03-02T00:00:00Z", "source": '{"kind": "csv", "file": "attlog.dat"}',
}  # fmt: skip


def when(i: int) -> tuple[str, str]:
    """Record i's (occurred_at, local_time): a working week per 1M, Monday to Friday."""
    week, k = divmod(i, PER_WEEK)
    day, rest = divmod(k * 5, PER_WEEK)
    sec = rest * WORK_S // PER_WEEK
    d = FIRST_MONDAY + timedelta(days=7 * week + day)
    h, m, s = 7 + sec // 3600, sec // 60 % 60, sec % 60
    utc_day = d - timedelta(days=1) if h < 8 else d
    local = f"{d.isoformat()}T{h:02d}:{m:02d}:{s:02d}+08:00"
    return f"{utc_day.isoformat()}T{(h - 8) % 24:02d}:{m:02d}:{s:02d}Z", local


def officer(i: int) -> int:
    return (i * 7919) % OFFICERS


def batch(start: int, n: int) -> Iterator[tuple[dict[str, list[Any]], dict[str, Any]]]:
    """Records start..start+n as one bulk insert per device (ids time-ordered, as the hub's)."""
    by_device: dict[int, dict[str, list[Any]]] = {}
    for i in range(start, start + n):
        e = officer(i)
        occurred, local = when(i)
        cols = by_device.setdefault(e % DEVICES, {k: [] for k in (
            "id", "employee_id", "source_user_id", "punch", "occurred_at", "local_time")})  # fmt: skip
        cols["id"].append(f"{i:012x}-{e:04x}-8000-8000-{i:012x}")
        cols["employee_id"].append(f"J{e:05d}")
        cols["source_user_id"].append(str(e))
        cols["punch"].append("in" if i % 2 else "out")
        cols["occurred_at"].append(occurred)
        cols["local_time"].append(local)
    for dev, cols in sorted(by_device.items()):
        yield cols, {**CONSTANTS, "device_id": f"dev{dev}", "office_id": f"off{dev // 2}"}


def fill(store: Store, start: int, n: int) -> float:
    """Bulk-insert records start..start+n; returns the seconds spent in `bulk_insert` only."""
    spent = 0.0
    for s in range(start, start + n, BATCH):
        parts = list(batch(s, min(BATCH, start + n - s)))
        t = time.perf_counter()
        for cols, consts in parts:
            store.bulk_insert(cols, consts)
        spent += time.perf_counter() - t
    return spent


def live_records(n: int, seed: int, day: date) -> list[list[Record]]:
    """Live punches of `day` (after the imported ones), in commits of 10."""
    out, commit = [], []
    for k in range(n):
        e = officer(seed + k)
        sec = k % WORK_S
        h, m, s = 7 + sec // 3600, sec // 60 % 60, sec % 60
        commit.append(Record(
            id=f"{seed + k:012x}-{e:04x}-8000-9000-{k:012x}", employee_id=f"J{e:05d}",
            source_user_id=str(e), card=None, punch="in", verify="fingerprint",
            occurred_at=f"{day - timedelta(days=h < 8)}T{(h - 8) % 24:02d}:{m:02d}:{s:02d}Z",
            local_time=f"{day}T{h:02d}:{m:02d}:{s:02d}+08:00", timezone="Asia/Kuala_Lumpur",
            received_at=f"{day}T00:00:00Z", clock_skew_s=None, device_id=f"dev{e % DEVICES}",
            device_kind="zkteco_tcp", device_serial=None, office_id=f"off{e % DEVICES // 2}",
            office_state="PJY", latitude=None, longitude=None, location_source="office",
            distance_m=None, within_geofence=None, flags=[], source={"k": k}, raw={"k": k},
            schema_version=1,
        ))  # fmt: skip
        if len(commit) == 10:
            out.append(commit)
            commit = []
    return out


def live_rate(store: Store, seed: int, day: date, reps: int = 3) -> list[float]:
    """Records/s of `reps` runs of 1,000 live commits of 10, background WAL checkpoints on (as
    the runtime runs them): the punches of `day`, a day of their own (as each day's are)."""
    store.background_checkpoints(True)
    rates = []
    for r in range(reps):
        commits = live_records(10_000, seed + r * 10_000, day)
        t = time.perf_counter()
        for c in commits:
            store.commit(c)
        rates.append(10_000 / (time.perf_counter() - t))
    store.background_checkpoints(False)
    return rates


def rates(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} records/s ({min(values):,.0f}–{max(values):,.0f})"


def timed(fn: Callable[[], Any], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def spread(ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):8.2f} ms  p99 {p99:8.2f} ms"


def pages(store: Store, size: int, reps: int) -> list[tuple[str, list[float]]]:
    # as the running hub does at start (`Runtime._tune_gc`): the long-lived heap frozen, so a
    # full collection does not walk it in the middle of a page
    gc.collect()
    gc.freeze()
    top = store.max_seq()
    rows: list[tuple[str, list[float]]] = [
        ("tail page (baseline)", timed(lambda: store.records(top - 1000, 1000), reps))
    ]
    weeks = max(1, size // PER_WEEK)
    kinds: dict[str, Callable[[int], RecordFilter]] = {
        "employee=": lambda k: RecordFilter(employee_id=f"J{officer(k * 104_729):05d}"),
        "office=": lambda k: RecordFilter(office_id=f"off{k % 4}"),
        "device=": lambda k: RecordFilter(device_id=f"dev{k % DEVICES}"),
        "one-day window": lambda k: _day(k % (5 * weeks)),
    }
    for name, make in kinds.items():
        filters = [make(k) for k in range(reps)]
        lasts = [(f, (store.last_records(1, f) or [{"seq": 0}])[0]["seq"]) for f in filters]
        firsts, ends = iter(filters), iter(lasts)

        def first_page(it: Iterator[RecordFilter] = firsts) -> None:
            assert store.records(0, 1000, next(it))

        def last_page(it: Iterator[tuple[RecordFilter, int]] = ends) -> None:
            f, after = next(it)
            assert store.records(after, 1000, f) == []

        rows.append((f"{name} first page", timed(first_page, reps)))
        rows.append((f"{name} last page", timed(last_page, reps)))
    return rows


def _day(k: int) -> RecordFilter:
    week, day = divmod(k, 5)
    d = FIRST_MONDAY + timedelta(days=7 * week + day)
    return RecordFilter(since=f"{d.isoformat()}T00:00:00Z", until=f"{d + timedelta(1)}T00:00:00Z")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hub_config(url: str, data: Path) -> dict[str, Any]:
    return {
        "hub": {"data_dir": str(data), "database": url},
        "offices": [{"id": f"off{k}", "state": "PJY"} for k in range(4)],
        "devices": [{"id": f"dev{d}", "kind": "simulated", "office": f"off{d // 2}"}
                    for d in range(DEVICES)],
        "api": {"tokens": [{"name": "bench", "token": TOKEN, "scopes": ["admin"]}]},
    }  # fmt: skip


def serve(url: str, data: str, port: int) -> None:
    cfg = config_from_dict(hub_config(url, Path(data)), base_dir=data)
    store = Store(cfg.database_url, "NORMAL")
    config = uvicorn.Config(create_app(cfg, store, None), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off", access_log=False)  # fmt: skip
    asyncio.run(uvicorn.Server(config).serve())


def overview(url: str, data: Path, reps: int) -> list[float]:
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(url, str(data), port), daemon=True
    )
    server.start()
    try:
        for _ in range(600):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.05)
        headers = {"Authorization": f"Bearer {TOKEN}"}

        def get() -> None:
            conn.request("GET", "/api/v1/overview", headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body[:300]

        return timed(get, 1) + timed(get, reps)  # the first call (cold caches) too
    finally:
        server.terminate()
        server.join(10)


def cli(cfg_path: Path, *args: str) -> float:
    exe = [sys.executable, "-m", "spotme_hub.cli", "records", "--config", str(cfg_path), *args]
    t = time.perf_counter()
    out = subprocess.run(exe, capture_output=True, check=True, text=True)
    assert out.returncode == 0, out.stderr
    return (time.perf_counter() - t) * 1000


def run(kind: str, url: str, sizes: list[int], reps: int, data: Path) -> None:
    print(f"\n== {kind}: {url.split('@')[-1]}", flush=True)
    store = Store(url, "NORMAL")
    store.create_all(tables())
    cfg_path = data / f"{kind}.yaml"
    cfg_path.write_text(json.dumps(hub_config(url, data)))
    empty_live = live_rate(store, 10**9, LIVE_DAY)
    first = fill(store, 0, PER_WEEK)
    print(f"  empty store: first 1M imported in {first:.1f} s; live commits {rates(empty_live)}",
          flush=True)  # fmt: skip
    have = PER_WEEK
    for size in sizes:
        if size > have:
            fill(store, have, size - have)
            have = size
        print(f"\n  -- {size / 1e6:g}M records", flush=True)
        for name, ms in pages(store, size, reps):
            print(f"  {name:<28} {spread(ms)}", flush=True)
        calls = overview(url, data, reps)
        print(f"  {'GET /api/v1/overview':<28} {spread(calls[1:])}  (first call {calls[0]:.1f} ms)",
              flush=True)  # fmt: skip
        someone = f"J{officer(size // 3):05d}"
        cli_all = [cli(cfg_path, "--employee", someone, "--limit", "0", "--format", "csv")
                   for _ in range(3)]  # fmt: skip
        cli_none = [cli(cfg_path, "--device", "nosuch", "--limit", "0", "--format", "csv")
                    for _ in range(3)]  # fmt: skip
        print(
            f"  records --employee X --limit 0: {min(cli_all):.0f} ms (start-up, nothing read: "
            f"{min(cli_none):.0f} ms, ratio {min(cli_all) / min(cli_none):.2f})",
            flush=True,
        )
        nxt = fill(store, have, PER_WEEK)
        have += PER_WEEK
        live = live_rate(store, 2 * 10**9 + size, LIVE_DAY + timedelta(days=size // PER_WEEK))
        ratio = statistics.median(live) / statistics.median(empty_live)
        print(f"  next 1M imported in {nxt:.1f} s ({nxt / first:.2f}x the first); live commits "
              f"{rates(live)}, {ratio:.2f}x the empty store's", flush=True)  # fmt: skip
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,5,10", help="store sizes in millions")
    ap.add_argument("--db", default="sqlite,pg")
    ap.add_argument("--pg", default=os.environ.get("SPOTME_TEST_PG_URL", ""))
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    sizes = [int(float(s) * 1_000_000) for s in args.sizes.split(",")]
    data = Path(tempfile.mkdtemp(prefix="spotme-bench-scale-"))
    try:
        if "sqlite" in args.db:
            run("sqlite", f"sqlite:///{data / 'hub.db'}", sizes, args.reps, data)
        if "pg" in args.db and args.pg:
            name = f"spotme_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                run("postgresql", f"{args.pg.rpartition('/')[0]}/{name}", sizes, args.reps, data)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        elif "pg" in args.db:
            print("\n(no PostgreSQL: pass --pg URL or set SPOTME_TEST_PG_URL)")
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
