"""Benchmark: import a 1,000,000-row attlog.dat through the hub vs. a floor measured in the same run.

hub   = `import_file` (the code behind `spotme-hub import`): full canonical records, deduplicated
        by id, committed to SQLite in one transaction per chunk.
floor = pandas `read_csv(dtype=str)` of the same file + sqlite3 `executemany` of one 5-column
        tuple (id, user, time, punch, verify) per row into a WAL table with no index.
Each side runs in its own child process so its peak RSS is its own; the CPU-seconds beside each
wall time count every process it waited for (the hub's writer process too), since a hub that
uses both cores can look fast in wall time while it costs more CPU.

    python bench/csv_import.py [--rows 1000000] [--keep DIR] [--writer auto|thread|process]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from steal import StealMeter  # bench/


def generate(path: Path, rows: int) -> None:
    rng = np.random.default_rng(7)
    users = rng.integers(1, 40_001, rows)
    start = np.datetime64("2025-01-01T07:00:00", "s")
    times = start + np.sort(rng.integers(0, 300 * 86400, rows)).astype("timedelta64[s]")
    status = rng.integers(0, 2, rows)
    verify = rng.choice([1, 15, 4], rows)
    stamps = np.datetime_as_string(times, unit="s")
    with path.open("w", newline="") as fh:
        for k in range(0, rows, 100_000):
            sl = slice(k, k + 100_000)
            lines = [
                f"{u:>9}\t{t[:10]} {t[11:]}\t1\t{s}\t{v}\t0\r\n"
                for u, t, s, v in zip(
                    users[sl].tolist(),
                    stamps[sl].tolist(),
                    status[sl].tolist(),
                    verify[sl].tolist(),
                    strict=True,
                )
            ]
            fh.write("".join(lines))


FLOOR = r"""
import json, sqlite3, sys, time, resource
import pandas as pd
path, db = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
df = pd.read_csv(path, sep="\t", header=None, dtype=str)
conn = sqlite3.connect(db)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("CREATE TABLE IF NOT EXISTS punches (id TEXT, user TEXT, time TEXT, punch TEXT, verify TEXT)")
rows = zip(map(str, range(len(df))), df[0].tolist(), df[1].tolist(), df[3].tolist(), df[4].tolist())
with conn:
    conn.executemany("INSERT INTO punches VALUES (?,?,?,?,?)", rows)
conn.close()
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rows": len(df), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

HUB = r"""
import json, sys, time, resource
from pathlib import Path
from spotme_hub.service import tables
from spotme_hub.service import config_from_dict
from spotme_hub.store import Store
from spotme_hub.adapters.csv.importer import import_file, options_for
path, db, force, chunk, writer = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), sys.argv[5]
employees = int(sys.argv[6]) if len(sys.argv) > 6 else 0
cfg = config_from_dict({
    "hub": {"database": "sqlite:///" + db},
    "offices": [{"id": "hq"}],
    "employees": [{"id": f"E{u}", "user_ids": [str(u)]} for u in range(1, employees + 1)],
    "devices": [{"id": "usb", "kind": "csv", "office": "hq", "preset": "zkteco_attlog",
                 "chunk_rows": chunk}],
})
store = Store(cfg.database_url, cfg.hub.sqlite_synchronous)
store.create_all(tables())
dev = cfg.devices[0]
t0 = time.perf_counter()
s = import_file(cfg, store, Path(path), dev, options_for(dev), force=force, writer=writer)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rows": s.rows_read, "new": s.imported, "dup": s.duplicates,
                  "quarantined": s.quarantined, "already": bool(s.already_imported),
                  "count": store.count_records(), "writer": s.writer,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "writer_rss_mb": s.writer_peak_rss_mb or 0}))
"""


def child(code: str, *args: str) -> dict:
    """Run one side in a process of its own; its result, with `cpu_s`: the CPU-seconds it and
    every process it waited for used (the hub's writer process counts)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def peak_mb(run: dict) -> float:
    """Peak RSS of the import plus its writer process's (0 without one): the sum, an upper bound
    of what both held at once."""
    return run["rss_mb"] + run["writer_rss_mb"]


def rss(run: dict) -> str:
    if run["writer"] != "process":
        return f"{run['rss_mb']:.0f} MB"
    return (
        f"{peak_mb(run):.0f} MB ({run['rss_mb']:.0f} + writer process {run['writer_rss_mb']:.0f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--chunk-rows", type=int, default=50_000, help="rows per transaction")
    ap.add_argument(
        "--writer", choices=("auto", "thread", "process"), default="auto",
        help="where chunks are committed (auto: a process for large files)",
    )  # fmt: skip
    ap.add_argument(
        "--employees", type=int, default=0,
        help="configure this many employees (user ids 1..N: the file's users are 1..40,000), "
        "so records carry an employee id as a real import's do",
    )  # fmt: skip
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench-csv-")
    work = args.keep or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    data = work / "7_attlog.dat"
    t0 = time.perf_counter()
    generate(data, args.rows)
    print(
        f"generated {args.rows:,} rows ({data.stat().st_size / 1e6:.1f} MB) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    for name in ("floor.db", "hub.db"):  # a kept directory's databases from an earlier run
        for suffix in ("", "-wal", "-shm"):
            (work / (name + suffix)).unlink(missing_ok=True)

    def import_once(force: bool) -> dict:
        db, opts = str(work / "hub.db"), (str(args.chunk_rows), args.writer, str(args.employees))
        return child(HUB, str(data), db, "1" if force else "0", *opts)

    with StealMeter() as steal:
        floor = child(FLOOR, str(data), str(work / "floor.db"))
        hub = import_once(force=False)
        again = import_once(force=False)
        forced = import_once(force=True)
    n = args.rows
    f = floor["seconds"]
    fc = floor["cpu_s"]
    print(f"floor  : {f:6.2f} s  {n / f:>10,.0f} rows/s  CPU {fc:6.2f} s  "
          f"peak RSS {floor['rss_mb']:.0f} MB")  # fmt: skip
    print(
        f"hub    : {hub['seconds']:6.2f} s  {n / hub['seconds']:>10,.0f} rows/s  "
        f"CPU {hub['cpu_s']:6.2f} s ({hub['cpu_s'] / fc:.2f}x the floor's)  "
        f"peak RSS {rss(hub)}  ratio {hub['seconds'] / f:.2f}x (target <= 2.5x)  "
        f"new {hub['new']:,} dup {hub['dup']:,} quarantined {hub['quarantined']:,} "
        f"stored {hub['count']:,}"
    )
    print(
        f"re-import, same file (fingerprint): {again['seconds']:6.2f} s  "
        f"ratio {again['seconds'] / f:.2f}x  already imported: {again['already']}"
    )
    print(
        f"re-import, forced (all duplicates): {forced['seconds']:6.2f} s  "
        f"{n / forced['seconds']:>10,.0f} rows/s  CPU {forced['cpu_s']:6.2f} s  "
        f"ratio {forced['seconds'] / f:.2f}x "
        f"(target <= 1.5x)  new {forced['new']:,} dup {forced['dup']:,}  "
        f"peak RSS {rss(forced)}  stored {forced['count']:,}"
    )
    print(f"over the four runs, {steal.text()} (time the VM's host gave to other guests)")
    ok = hub["seconds"] / f <= 2.5 and forced["seconds"] / f <= 1.5 and peak_mb(hub) <= 400
    print("targets met" if ok else "targets NOT all met")


if __name__ == "__main__":
    main()
