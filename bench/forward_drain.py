"""Drain a large forward backlog into the reference core over loopback.

    python bench/forward_drain.py [--records 1000000] [--batch-size 500]

Builds a SQLite store holding N committed records (bulk-inserted rows, the forward cursor at 0),
starts `spotme-hub simulate core` as a separate process, then times `Forwarder.drain()` until the
backlog is empty and the core stores all N. Baseline, same run, same core: posting equivalent
pre-encoded batches with bare httpx (no store, no cursor) — the ceiling the core and HTTP allow.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from spotme_hub.forward.core_sim import free_port  # noqa: E402
from spotme_hub.forward.forwarder import Forwarder, forward_status  # noqa: E402
from spotme_hub.record import RECORD_FIELDS, record_id  # noqa: E402
from spotme_hub.service import config_from_dict, tables  # noqa: E402
from spotme_hub.store import Store  # noqa: E402

TEMPLATE: dict[str, Any] = {
    "employee_id": "J0001", "source_user_id": "1", "card": None, "punch": "in",
    "verify": "fingerprint", "occurred_at": "2026-03-02T00:30:00Z",
    "local_time": "2026-03-02T08:30:00+08:00", "timezone": "Asia/Kuala_Lumpur",
    "received_at": "2026-03-02T00:30:01Z", "clock_skew_s": None, "device_id": "pjy-lobby",
    "device_kind": "zkteco_tcp", "device_serial": "CKJA201960123", "office_id": "pjy-hq",
    "office_state": "PJY", "latitude": 2.9264, "longitude": 101.6964,
    "location_source": "office", "distance_m": 0.0, "within_geofence": True, "flags": "[]",
    "schema_version": 1, "committed_at": "2026-03-02T00:30:01.002Z",
}  # fmt: skip


def build_backlog(store: Store, n: int, chunk: int = 50_000) -> None:
    for start in range(0, n, chunk):
        varying = ("id", "source_user_id", "source", "raw")
        consts = {k: v for k, v in TEMPLATE.items() if k not in varying and k != "committed_at"}
        rows = [
            (record_id(f"bench|{i}"), str(i % 5000), f'{{"kind":"zkteco_tcp","log_index":{i}}}',
             f'{{"uid":{i},"user_id":"{i % 5000}","status":0,"punch":0}}')
            for i in range(start, min(n, start + chunk))
        ]  # fmt: skip
        columns = dict(zip(varying, map(list, zip(*rows, strict=True)), strict=True))
        store.bulk_insert(columns, consts)


def baseline_bodies(n: int, batch: int) -> list[bytes]:
    bodies = []
    for start in range(0, n, batch):
        recs = []
        for i in range(start, min(n, start + batch)):
            rec = {k: TEMPLATE.get(k) for k in RECORD_FIELDS}
            rec.update(id=record_id(f"baseline|{i}"), flags=[], raw={"uid": i},
                       source={"kind": "zkteco_tcp", "log_index": i})  # fmt: skip
            recs.append(rec)
        bodies.append(orjson.dumps({"hub_id": "bench-hub", "records": recs}))
    return bodies


async def post_all(url: str, bodies: list[bytes]) -> float:
    async with httpx.AsyncClient(timeout=60) as client:
        t0 = time.perf_counter()
        for k, body in enumerate(bodies):
            headers = {"Content-Type": "application/json", "Idempotency-Key": f"baseline:{k}"}
            resp = await client.post(url, content=body, headers=headers)
            resp.raise_for_status()
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--baseline-records", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=500)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="spotme-fwd-bench-"))
    port = free_port()
    core_url = f"http://127.0.0.1:{port}"
    cfg = config_from_dict(
        {"hub": {"id": "bench-hub", "data_dir": str(tmp)}, "offices": [{"id": "pjy-hq"}],
         "core": {"url": core_url, "batch_size": args.batch_size}},
        base_dir=tmp,
    )  # fmt: skip
    store = Store(cfg.database_url, cfg.hub.sqlite_synchronous)
    store.create_all(tables())
    t0 = time.perf_counter()
    build_backlog(store, args.records)
    print(f"backlog: {args.records:,} records built in {time.perf_counter() - t0:.1f}s")

    core = subprocess.Popen(
        [sys.executable, "-m", "spotme_hub.cli", "simulate", "core", "--port", str(port)],
        cwd=ROOT,
    )
    try:
        for _ in range(200):
            try:
                httpx.get(f"{core_url}/healthz").raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        bodies = baseline_bodies(args.baseline_records, args.batch_size)
        base_s = asyncio.run(post_all(core_url + cfg.core.path, bodies))
        base_rate = args.baseline_records / base_s

        t0 = time.perf_counter()
        sent = asyncio.run(Forwarder(cfg, store).drain())
        drain_s = time.perf_counter() - t0
        rate = sent / drain_s
        print(
            f"baseline (bare httpx, pre-encoded {args.batch_size}-record batches): "
            f"{base_rate:,.0f} records/s"
        )
        print(
            f"forwarder drain: {sent:,} records in {drain_s:.1f}s = {rate:,.0f} records/s "
            f"({rate / base_rate:.2f}x baseline; target >= 20,000/s)",
            flush=True,
        )
        st = forward_status(store, cfg)
        stats = httpx.get(f"{core_url}/admin/stats", timeout=300).json()
    finally:
        core.terminate()
        core.wait()
    assert st["backlog"] == 0, st
    assert stats["stored"] == args.records + args.baseline_records, stats
    print(f"core: stored {stats['stored']:,}, duplicates {stats['duplicates']}; hub backlog 0")


if __name__ == "__main__":
    main()
