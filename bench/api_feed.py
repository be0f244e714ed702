"""Benchmark: paging the record feed over HTTP (`GET /api/v1/records`, 1,000-record pages, a
bearer token, uvicorn, a keep-alive stdlib `http.client` connection over a real socket) against raw
SQL keyset reads of the same pages straight from SQLite (the baseline, measured in the same run).
A page's latency is request sent → last byte received; the client's JSON decoding of each page is
timed apart and reported as the consumer's throughput.

    .venv/bin/python bench/api_feed.py [--records 1000000] [--page 1000] [--db PATH]
                                       [--stored whole|shaped]

`--stored shaped` fills the store as a file import does (`Store.bulk_insert`: each device's
batch stored with one shape, each record's own fields apart), so the feed renders every record
from its shape; `whole` (the default) commits them as live punches are, whole JSON each.

Targets: >= 100,000 records/s and p99 <= 50 ms per 1,000-record page. Pass --db to keep the
generated database between runs (it is only filled up to --records).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import multiprocessing
import shutil
import socket
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from rich.progress import Progress

from spotme_hub.record import RECORD_FIELDS, Record, record_id
from spotme_hub.service import config_from_dict, create_app, tables
from spotme_hub.store import JSON_FIELDS, RECORDS, Store, dumps

TOKEN = "bench-token-0001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def records(start: int, n: int) -> list[Record]:
    """Pre-normalised records with realistic content (GPS, flags, provenance, raw input)."""
    out = []
    for i in range(start, start + n):
        day, sec = 1 + (i // 40_000) % 28, (i * 7) % 36_000
        local = f"2026-11-{day:02d}T{7 + sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"
        utc = f"2026-11-{day:02d}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.000Z"
        out.append(
            Record(
                id=record_id(f"bench-{i % 40}|{i}|{local}|in"),
                employee_id=f"J{i % 40_000:05d}",
                source_user_id=str(i % 40_000),
                card=None,
                punch="in" if i % 2 else "out",
                verify="fingerprint",
                occurred_at=utc,
                local_time=local + "+08:00",
                timezone="Asia/Kuala_Lumpur",
                received_at=utc,
                clock_skew_s=1.5,
                device_id=f"bench-{i % 40}",
                device_kind="zkteco_adms",
                device_serial="CKJD2122",
                office_id="pjy-hq",
                office_state="PJY",
                latitude=2.92641,
                longitude=101.69642,
                location_source="device",
                distance_m=12.4,
                within_geofence=True,
                flags=["clock_skew"] if i % 11 == 0 else [],
                source={"kind": "zkteco_adms", "table": "ATTLOG", "stamp": str(i)},
                raw=f"{i % 40_000}\t{local.replace('T', ' ')}\t0\t1\t0\t0\t0",
            )  # fmt: skip
        )
    return out


def bulk(store: Store, recs: list[Record]) -> None:
    """One bulk insert per device, the fields every record of the device shares as constants."""
    by_device: dict[str, list[Record]] = {}
    for rec in recs:
        by_device.setdefault(rec.device_id, []).append(rec)
    for group in by_device.values():
        columns = {
            name: [dumps(getattr(r, name)) if name in JSON_FIELDS else getattr(r, name)
                   for r in group]
            for name in RECORD_FIELDS
        }  # fmt: skip
        consts = {k: v[0] for k, v in columns.items() if k != "id" and v.count(v[0]) == len(v)}
        store.bulk_insert({k: v for k, v in columns.items() if k not in consts}, consts)


def fill(store: Store, total: int, shaped: bool) -> None:
    have = store.count_records()
    if have >= total:
        return
    with Progress() as progress:
        task = progress.add_task("generating records", total=total, completed=have)
        for start in range(have, total, 50_000):
            n = min(50_000, total - start)
            if shaped:
                bulk(store, records(start, n))
            else:
                store.commit(records(start, n))
            progress.advance(task, n)


def summary(name: str, latencies: list[float], count: int, elapsed: float) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100)
    return {"name": name, "records": count, "rps": count / elapsed, "p50": q[49] * 1000,  # type: ignore[dict-item]
            "p99": q[98] * 1000}  # fmt: skip


def baseline(db: Path, page: int) -> dict[str, float]:
    """Raw SQL keyset reads of the same pages (every column) with the sqlite3 module."""
    cols = ", ".join(c.name for c in RECORDS.columns if c.name != "committed_at")
    sql = f"SELECT {cols} FROM records WHERE seq > ? ORDER BY seq LIMIT ?"
    conn = sqlite3.connect(db)
    lat, count, after = [], 0, 0
    started = time.perf_counter()
    while True:
        t = time.perf_counter()
        rows = conn.execute(sql, (after, page)).fetchall()
        lat.append(time.perf_counter() - t)
        if not rows:
            break
        count += len(rows)
        after = rows[-1][0]
    elapsed = time.perf_counter() - started
    conn.close()
    return summary("raw SQL keyset (baseline)", lat, count, elapsed)


def over_http(port: int, page: int) -> tuple[dict[str, float], dict[str, float]]:
    """Page through the feed with a keep-alive `http.client` connection. A page's latency runs
    from sending the request to the last byte of the body. Each page is then decoded with orjson
    (a consumer's fast parser) and checked (seqs strictly increasing, so no record is repeated;
    the total is compared with the baseline's). Returns the feed's figures (records / summed page
    latencies) and the consumer's (records / wall time, decoding included)."""
    lat, count, after, last_seq, decode = [], 0, 0, 0, 0.0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    while True:
        t = time.perf_counter()
        conn.request("GET", f"/api/v1/records?after={after}&limit={page}", headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        t1 = time.perf_counter()
        lat.append(t1 - t)
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
        body = orjson.loads(data)
        decode += time.perf_counter() - t1
        records = body["records"]
        if not records:
            break
        seqs = [r["seq"] for r in records]
        if seqs[0] <= last_seq or any(b <= a for a, b in zip(seqs, seqs[1:], strict=False)):
            raise RuntimeError(f"records out of order or repeated after seq {last_seq}")
        last_seq = seqs[-1]
        count += len(records)
        after = body["next_cursor"]
    elapsed = time.perf_counter() - started
    conn.close()
    feed = summary("GET /api/v1/records", lat, count, sum(lat))
    consumer = summary("  + consumer decodes (orjson)", lat, count, elapsed)
    consumer["decode_ms"] = decode / max(len(lat), 1) * 1000
    return feed, consumer


def serve(cfg: Any, port: int) -> None:
    store = Store(cfg.database_url, "NORMAL")
    config = uvicorn.Config(create_app(cfg, store, None), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off", access_log=False)  # fmt: skip
    asyncio.run(uvicorn.Server(config).serve())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--page", type=int, default=1000)
    ap.add_argument("--db", type=Path, help="keep the database here between runs")
    ap.add_argument(
        "--stored",
        choices=("whole", "shaped"),
        default="whole",
        help="records committed one by one (whole JSON) or bulk-inserted (shapes)",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spotme-bench-feed-"))
    data = args.db.parent if args.db else tmp
    db = args.db or tmp / "hub.db"
    cfg = config_from_dict(
        {"hub": {"data_dir": str(data), "database": f"sqlite:///{db}"},
         "offices": [{"id": "pjy-hq", "state": "PJY"}],
         "api": {"tokens": [{"name": "bench", "token": TOKEN, "scopes": ["feed:read"]}]}},
        base_dir=data,
    )  # fmt: skip
    store = Store(cfg.database_url, "NORMAL")
    store.create_all(tables())
    try:
        fill(store, args.records, args.stored == "shaped")
        port = free_port()
        # The API runs in a process of its own (as in production), so the client's work does not
        # compete with the server for one interpreter lock.
        server = multiprocessing.get_context("fork").Process(
            target=serve, args=(cfg, port), daemon=True
        )
        server.start()
        url = f"http://127.0.0.1:{port}"
        for _ in range(500):
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.02)
        base = baseline(db, args.page)
        api, consumer = over_http(port, args.page)
        server.terminate()
        server.join(10)
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.records:,} records stored {args.stored}, {args.page:,}-record pages "
          "(shared machine: figures vary)")  # fmt: skip
    for r in (base, api):
        print(f"  {r['name']:<28} {r['records']:>9,} records  {r['rps']:>10,.0f} rec/s  "
              f"p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms")  # fmt: skip
    print(f"  {consumer['name']:<28} {consumer['records']:>9,} records  "
          f"{consumer['rps']:>10,.0f} rec/s  (decoding a page: {consumer['decode_ms']:.2f} ms)")  # fmt: skip
    print(f"  HTTP feed / raw SQL throughput: {api['rps'] / base['rps']:.2f}")
    ok = api["rps"] >= 100_000 and api["p99"] <= 50
    print(f"  targets (>= 100,000 rec/s, p99 <= 50 ms): {'met' if ok else 'NOT met'}")
    assert api["records"] == base["records"] == args.records, "pages lost or repeated records"


if __name__ == "__main__":
    main()
