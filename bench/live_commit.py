"""Benchmark: live commits into a large store — what time-ordered record ids buy.

    python bench/live_commit.py [--records 1000000] [--batches 2000] [--per-commit 10]

Builds a SQLite store of N records the way an import leaves it (`bench/csv_import.py`'s
attlog.dat through `import_file`), and a copy of it in which every id is random (the index
behaviour of the UUIDv5 ids of the first releases). Then, on each store, times `Store.commit` of
the same live punches, `--per-commit` at a time, with background WAL checkpoints as the runtime
runs them: hub = the ids the hub gives (time-ordered), baseline = the same records with random
ids, measured in the same run. Prints records/s, the ratio and the WAL bytes written per record.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from csv_import import generate  # bench/

from spotme_hub.adapters.csv.importer import import_file, options_for
from spotme_hub.normalize import Normalizer
from spotme_hub.record import RawPunch, Record
from spotme_hub.service import config_from_dict, tables
from spotme_hub.store import Store

RANDOM_ID = (  # of `h`, 32 random hex digits
    "substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-' || "
    "substr(h, 17, 4) || '-' || substr(h, 21, 12)"
)


def config(db: Path):  # type: ignore[no-untyped-def]
    return config_from_dict({
        "hub": {"database": f"sqlite:///{db}"},
        "offices": [{"id": "hq"}],
        "devices": [{"id": "usb", "kind": "csv", "office": "hq", "preset": "zkteco_attlog"},
                    {"id": "lobby", "kind": "simulated", "office": "hq"}],
    })  # fmt: skip


def random_copy(src: Path, dst: Path) -> None:
    """`src` with every record id (in the row and in its doc) replaced by a random UUID."""
    conn = sqlite3.connect(dst)
    conn.execute("ATTACH ? AS src", (str(src),))
    for (sql,) in conn.execute(
        "SELECT sql FROM src.sqlite_master WHERE sql IS NOT NULL"
    ).fetchall():
        if "sqlite_sequence" not in sql:
            conn.execute(sql)
    with conn:
        for (name,) in conn.execute(
            "SELECT name FROM src.sqlite_master WHERE type = 'table' AND name NOT IN "
            "('records', 'sqlite_sequence')"
        ).fetchall():
            conn.execute(f"INSERT INTO main.{name} SELECT * FROM src.{name}")
        # random digits drawn once per record (an expression naming randomblob() twice would
        # draw twice), so the row and its doc get the same id
        conn.execute(
            "CREATE TEMP TABLE rids AS SELECT seq, lower(hex(randomblob(16))) AS h FROM src.records"
        )
        conn.execute(
            "INSERT INTO records (seq, id, employee_id, device_id, office_id, occurred_at, flags, "
            f"committed_at, doc) SELECT r.seq, {RANDOM_ID}, employee_id, device_id, office_id, "
            f'occurred_at, flags, committed_at, \'{{"id":"\' || {RANDOM_ID} || substr(doc, 44) '
            "FROM src.records AS r JOIN rids ON rids.seq = r.seq ORDER BY r.seq"
        )
    conn.close()


def live(db: Path, batches: list[list[Record]], random_ids: bool) -> tuple[float, float]:
    """(records/s, WAL bytes written per record) of committing `batches` into the store at `db`."""
    store = Store(config(db).database_url)
    store.create_all(tables())
    store.background_checkpoints(True)
    if random_ids:
        batches = [[_with_id(r, str(uuid.uuid4())) for r in b] for b in batches]
    n = sum(len(b) for b in batches)
    written = _disk_writes()
    t0 = time.perf_counter()
    for b in batches:
        store.commit(b)
    dt = time.perf_counter() - t0
    written = _disk_writes() - written
    store.close()
    return n / dt, written / n


def _with_id(rec: Record, rid: str) -> Record:
    return Record.from_dict({**rec.to_dict(), "id": rid})


def _disk_writes() -> int:
    """Bytes this process has caused to be written to storage so far (Linux)."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--per-commit", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        work = Path(tmp)
        data, ordered, scattered = work / "1_attlog.dat", work / "ordered.db", work / "random.db"
        generate(data, args.records)
        cfg = config(ordered)
        store = Store(cfg.database_url)
        store.create_all(tables())
        t0 = time.perf_counter()
        dev = cfg.devices[0]
        import_file(cfg, store, data, dev, options_for(dev))
        store.close()
        random_copy(ordered, scattered)
        print(f"two stores of {args.records:,} records built in {time.perf_counter() - t0:.1f} s")
        norm = Normalizer(cfg)
        start = datetime.now().replace(microsecond=0) - timedelta(hours=2)
        batches: list[list[Record]] = []
        for b in range(args.batches):
            batch = []
            for j in range(args.per_commit):
                raw = RawPunch(
                    device_time=start + timedelta(seconds=b), user_id=str(b * 97 + j), punch=0
                )
                rec = norm.normalize(cfg.devices[1], raw)
                assert isinstance(rec, Record)
                batch.append(rec)
            batches.append(batch)
        base_rate, base_bytes = live(scattered, batches, random_ids=True)
        hub_rate, hub_bytes = live(ordered, batches, random_ids=False)
        n = args.batches * args.per_commit
        print(
            f"{n:,} live punches, {args.per_commit} a commit, into a {args.records:,}-record store"
        )
        print(
            f"baseline (random ids) : {base_rate:>9,.0f} records/s  {base_bytes / 1024:6.1f} KiB written a record"
        )
        print(
            f"hub (time-ordered ids): {hub_rate:>9,.0f} records/s  {hub_bytes / 1024:6.1f} KiB written a record"
        )
        print(f"ratio hub / baseline  : {hub_rate / base_rate:.2f}x")
        os.sync()


if __name__ == "__main__":
    main()
