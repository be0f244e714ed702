"""Benchmark: a ZK terminal's log (the simulator, 40-byte records) pulled to committed records by
the hub, against a linear floor measured in the same run, at 30k, 100k and 300k records.

floor = the same bytes read over the same protocol (the hub's own chunked reader), decoded with
        `struct` and bulk-inserted (sqlite3 `executemany`, one transaction, no index): what any
        pull must at least do.
hub   = `spotme-hub`'s pull: read, reconcile, normalise, deduplicate, commit.
peer  = bare `pyzk.ZK(...).get_attendance()` (parse only, nothing stored). pyzk 0.9 slices its
        buffer once per record, so it is quadratic: a peer to compare with, not a baseline (at
        100k it once happened to measure close to the hub; at 30k the same code was 2.8×).
Also the time of a re-poll when nothing is new. Sides alternate, `--repeat` times each.

    .venv/bin/python bench/zk_pull.py [--records 30000,100000,300000] [--repeat 2] [--no-peer]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from zk import ZK

from spotme_hub.adapters.zkteco import wire
from spotme_hub.adapters.zkteco.client import ZKClient
from spotme_hub.adapters.zkteco.simulator import ZKSimulator
from spotme_hub.service import config_from_dict, open_hub
from spotme_hub.store import RecordFilter


def bare_pyzk(sim: ZKSimulator) -> tuple[float, int]:
    t0 = time.perf_counter()
    conn = ZK("127.0.0.1", port=sim.port, timeout=60, force_udp=sim.udp, ommit_ping=True).connect()
    try:
        n = len(conn.get_attendance())
    finally:
        conn.disconnect()
    return time.perf_counter() - t0, n


def floor(sim: ZKSimulator, data_dir: Path, size: int) -> tuple[float, int]:
    """Read the log over the protocol, decode it with struct, insert it in one transaction."""
    t0 = time.perf_counter()
    c = ZKClient("127.0.0.1", sim.port, 60, 0, sim.udp).open()
    try:
        data = c.read_attlog()
    finally:
        c.close()
    rows = wire.decode_attendance(size, data[4:])
    db = sqlite3.connect(data_dir / "floor.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE punches (uid INTEGER, user TEXT, time INTEGER, a INTEGER, b INTEGER)")
    with db:
        db.executemany("INSERT INTO punches VALUES (?, ?, ?, ?, ?)", rows)
    db.close()
    return time.perf_counter() - t0, len(rows)


async def hub_pull(sim: ZKSimulator, data_dir: Path, n: int) -> tuple[float, float]:
    cfg = config_from_dict(
        {
            "hub": {"data_dir": str(data_dir), "sqlite_synchronous": "NORMAL"},
            "offices": [{"id": "hq", "state": "PJY"}],
            "employees": [{"id": f"E{i}", "user_ids": [str(i)]} for i in range(1, 7)],
            "devices": [{"id": "zk", "kind": "zkteco", "office": "hq", "host": "127.0.0.1",
                         "port": sim.port, "transport": "udp" if sim.udp else "tcp",
                         "poll_every": 3600, "timeout": 30}],
        },
        data_dir,
    )  # fmt: skip
    hub = open_hub(cfg)
    t0 = time.perf_counter()
    await hub.start()
    try:
        # wait on the in-memory commit counter (a count(*) every few ms would load the hub itself)
        while hub.health["zk"].counters["new"] + hub.health["zk"].counters["duplicate"] < n:
            h = hub.health["zk"]
            if h.state == "DOWN":
                raise SystemExit(f"device DOWN: {h.last_error}")
            await asyncio.sleep(0.02)
        first = time.perf_counter() - t0
        assert hub.store.count_records(RecordFilter(device_id="zk")) == n
    finally:
        await hub.stop()
    # a re-poll with nothing new: one more pull on a fresh hub over the same store
    from spotme_hub.adapters.zkteco.adapter import ZKTecoAdapter

    hub = open_hub(cfg)
    hub.writer.start()
    try:
        dev = cfg.device("zk")
        t1 = time.perf_counter()
        stats = await ZKTecoAdapter(dev, dev.options).pull(hub.contexts["zk"])
        repoll = time.perf_counter() - t1
        assert stats.new == 0 and stats.skipped == n, stats
    finally:
        await hub.writer.close()
    return first, repoll


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", default="30000,100000,300000", help="sizes, comma-separated")
    ap.add_argument("--record-size", type=int, default=40)
    ap.add_argument("--udp", action="store_true")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each side; the best counts")
    ap.add_argument("--no-peer", action="store_true", help="leave out pyzk (slow at 300k)")
    args = ap.parse_args()
    for n in [int(x) for x in args.records.split(",")]:
        with ZKSimulator(records=n, record_size=args.record_size, udp=args.udp, users=6) as sim:
            sim.attlog()  # encode the log once so no side pays for it
            floors, hubs, repolls, peers = [], [], [], []
            for _ in range(args.repeat):  # alternate (shared, noisy machine)
                with tempfile.TemporaryDirectory(prefix="zk-bench-") as tmp:
                    f, got = floor(sim, Path(tmp), args.record_size)
                    assert got == n, got
                    floors.append(f)
                with tempfile.TemporaryDirectory(prefix="zk-bench-") as tmp:
                    hub_s, repoll_s = asyncio.run(hub_pull(sim, Path(tmp), n))
                hubs.append(hub_s)
                repolls.append(repoll_s)
                if not args.no_peer:
                    peer, got = bare_pyzk(sim)
                    assert got == n, got
                    peers.append(peer)
        f, hub_s = min(floors), min(hubs)
        runs = ", ".join(f"{h / fl:.2f}" for h, fl in zip(hubs, floors, strict=True))
        print(f"{n:>7,} records × {args.record_size} B over {'udp' if args.udp else 'tcp'}:")
        print(f"  floor (read + struct + insert): {f:7.2f} s  ({n / f:9,.0f} records/s)")
        print(f"  hub pull → committed:           {hub_s:7.2f} s  ({n / hub_s:9,.0f} records/s)  "
              f"{hub_s / f:.2f}x the floor (pairs: {runs})")  # fmt: skip
        if peers:
            peer = min(peers)
            print(f"  peer: pyzk get_attendance():    {peer:7.2f} s  ({n / peer:9,.0f} records/s, "
                  f"parse only; the hub is {peer / hub_s:.2f}x as fast)")  # fmt: skip
        print(f"  re-poll, nothing new:           {min(repolls):7.2f} s")


if __name__ == "__main__":
    main()
