"""Benchmark: one month of 20,000 officers' punches (about 1.3M records) → all their days, against a
floor measured in the same run.

data  = a config of 20,000 officers in four offices of different states (PJY, SGR: Sat–Sun; KDH,
        TRG: Fri–Sat), most on WBF, some on fixed hours, some on a night/day roster, a few facts
        and an added holiday; one attlog.dat a office for July 2025 (an in between 07:15 and 09:30
        and an out about 9 h later on working days, lunch punches, some missing outs, absences,
        duplicates within 2 min, rest days mostly empty), imported the fast way (`import_file`,
        the code behind `spotme-hub import`) into SQLite. Not timed.
hub   = `hub_days`: every officer's day of every date of the month worked out and stored, as the
        hub keeps them (`DayLedger.rebuild`: the days, their change numbers, the opened dates);
        the first run also prints the time without storing (`DayBook.days`).
floor = pandas: the same records' (employee, occurred_at) read from the store, turned into local
        (+08:00) date and time, grouped by (employee, date) → first and last.
Each side runs in its own child process (its peak RSS is its own); `--repeat N` alternates N
hub/floor pairs and prints the spread of the ratio.

    python bench/days.py [--officers 20000] [--repeat 1] [--keep DIR] [--pg URL] [--profile FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from steal import StealMeter  # bench/

MONTH_FIRST = dt.date(2025, 7, 1)
MONTH_LAST = dt.date(2025, 7, 31)
#: (office id, state, the weekday numbers of its weekend: Mon = 0)
OFFICES = [("PJY-HQ", "PJY", (5, 6)), ("SGR-SA", "SGR", (5, 6)), ("KDH-AS", "KDH", (4, 5)),
           ("TRG-KT", "TRG", (4, 5))]  # fmt: skip
SHARE = [0.4, 0.3, 0.15, 0.15]  # of the officers, by office


def config(officers: int, db_url: str, rng: np.random.Generator) -> dict[str, Any]:
    """The hub's config: offices, one csv device each, the officers and their schemes."""
    office_of = rng.choice(len(OFFICES), officers, p=SHARE)
    scheme_draw = rng.random(officers)
    employees = []
    for n in range(officers):
        emp: dict[str, Any] = {"id": f"P{n + 1:05d}", "user_ids": [str(n + 1)],
                               "office": OFFICES[office_of[n]][0]}  # fmt: skip
        if scheme_draw[n] < 0.02:
            emp["scheme"] = "SYIF"
        elif scheme_draw[n] < 0.07:
            emp["scheme"] = "KAUNTER"
        employees.append(emp)
    facts: list[dict[str, Any]] = []
    for k, n in enumerate(rng.choice(officers, 300, replace=False).tolist()):
        emp_id = f"P{n + 1:05d}"
        if k < 50:
            facts.append({"id": f"pel{k}", "employee": emp_id, "kind": "pregnancy_early_leave",
                          "from": "2025-06-01", "to": "2025-10-31"})  # fmt: skip
        elif k < 250:
            start = MONTH_FIRST + dt.timedelta(days=int(rng.integers(0, 27)))
            facts.append({"id": f"cuti{k}", "employee": emp_id, "kind": "leave", "type": "annual",
                          "from": start.isoformat(),
                          "to": (start + dt.timedelta(days=int(rng.integers(0, 4)))).isoformat()})  # fmt: skip
        else:
            day = MONTH_FIRST + dt.timedelta(days=int(rng.integers(0, 31)))
            facts.append({"id": f"to{k}", "employee": emp_id, "kind": "time_off",
                          "date": day.isoformat(), "start": "15:00", "end": "17:00"})  # fmt: skip
    return {
        "hub": {"database": db_url, "sqlite_synchronous": "NORMAL"},
        "offices": [{"id": o, "state": s} for o, s, _ in OFFICES],
        "devices": [
            {"id": f"zk-{o.lower()}", "kind": "csv", "office": o, "preset": "zkteco_attlog"}
            for o, _, _ in OFFICES
        ],
        "employees": employees,
        "schemes": {
            "KAUNTER": {"kind": "fixed", "start": "08:00", "end": "17:00", "grace": 10},
            "SYIF": {
                "kind": "roster",
                "shifts": {
                    "malam": {"start": "22:00", "end": "07:00"},
                    "siang": {"start": "07:00", "end": "15:00"},
                },
                "week": {
                    "MON": "malam",
                    "TUE": "malam",
                    "WED": "malam",
                    "THU": "siang",
                    "FRI": "siang",
                    "SAT": None,
                    "SUN": None,
                },
            },
        },  # fmt: skip
        "calendar": {
            "holidays": {
                "add": [{"date": "2025-07-14", "name": "Cuti peristiwa", "states": ["SGR"]}]
            }
        },  # fmt: skip
        "facts": facts,
        "api": {"enabled": False},
    }


def punches(cfg: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every officer's punches of the month, per device: (pin, local time in s, status)."""
    emps = cfg["employees"]
    n = len(emps)
    office_index = {o: k for k, (o, _, _) in enumerate(OFFICES)}
    office = np.array([office_index[e["office"]] for e in emps])
    scheme = np.array([{"SYIF": 2, "KAUNTER": 1}.get(e.get("scheme", ""), 0) for e in emps])
    days = (MONTH_LAST - MONTH_FIRST).days + 1
    base = np.datetime64(MONTH_FIRST.isoformat(), "s").astype(np.int64)
    weekday = np.array([(MONTH_FIRST + dt.timedelta(days=d)).weekday() for d in range(days)])
    rest = np.zeros((len(OFFICES), days), bool)
    for k, (_, _, weekend) in enumerate(OFFICES):
        rest[k] = np.isin(weekday, weekend)
    pins, times, status = [], [], []

    def add(mask: np.ndarray, seconds: np.ndarray, code: int) -> None:
        e, d = np.nonzero(mask)
        pins.append(e + 1)
        times.append(base + d * 86400 + seconds[e, d].astype(np.int64))
        status.append(np.full(len(e), code))

    shape = (n, days)
    working = ~rest[office]  # officer × day
    night = (scheme == 2)[:, None] & np.isin(weekday, (0, 1, 2))[None, :]
    day_shift = (scheme == 2)[:, None] & np.isin(weekday, (3, 4))[None, :]
    working &= ~((scheme == 2)[:, None]) | night | day_shift
    present = working & (rng.random(shape) > 0.03)
    present |= ~working & (rng.random(shape) < 0.03)  # a worked rest day
    arrive = np.clip(rng.normal(8 * 3600 + 5 * 60, 35 * 60, shape), 7.25 * 3600, 9.5 * 3600)
    arrive = np.where(night, rng.normal(21.9 * 3600, 8 * 60, shape), arrive)
    arrive = np.where(day_shift, rng.normal(6.9 * 3600, 8 * 60, shape), arrive)
    fixed = (scheme == 1)[:, None]
    arrive = np.where(fixed, rng.normal(7.9 * 3600, 8 * 60, shape), arrive)
    stay = rng.normal(9.1 * 3600, 20 * 60, shape)
    stay = np.where(night, rng.normal(9.1 * 3600, 6 * 60, shape), stay)
    stay = np.where(day_shift | fixed, rng.normal(8.1 * 3600, 10 * 60, shape), stay)
    leave = arrive + stay
    add(present, arrive, 0)
    add(present & (rng.random(shape) > 0.04), leave, 1)  # some forget to clock out
    add(present & (rng.random(shape) < 0.04), arrive + rng.integers(5, 110, shape), 0)  # twice
    lunch = present & ~night & (rng.random(shape) < 0.45)
    lunch_out = rng.normal(13 * 3600, 10 * 60, shape)
    add(lunch, lunch_out, 2)
    add(lunch, lunch_out + rng.normal(3600, 8 * 60, shape), 3)
    pin, at, st = np.concatenate(pins), np.concatenate(times), np.concatenate(status)
    flip = rng.random(len(st)) < 0.05  # a terminal left in the wrong state
    st = np.where(flip, 0, st)
    out: dict[str, np.ndarray] = {}
    for k, (o, _, _) in enumerate(OFFICES):
        mine = office[pin - 1] == k
        order = np.argsort(at[mine], kind="stable")
        out[f"zk-{o.lower()}"] = np.stack([pin[mine][order], at[mine][order], st[mine][order]])
    return out


def write_attlog(path: Path, rows: np.ndarray, rng: np.random.Generator) -> None:
    stamps = np.datetime_as_string(rows[1].astype("datetime64[s]"), unit="s")
    verify = rng.choice([1, 15, 4], rows.shape[1])
    with path.open("w", newline="") as fh:
        for k in range(0, rows.shape[1], 100_000):
            sl = slice(k, k + 100_000)
            fh.write("".join(
                f"{u:>9}\t{t[:10]} {t[11:]}\t1\t{s}\t{v}\t0\r\n"
                for u, t, s, v in zip(rows[0, sl].tolist(), stamps[sl].tolist(),
                                      rows[2, sl].tolist(), verify[sl].tolist(), strict=True)
            ))  # fmt: skip


IMPORT = r"""
import json, sys
from pathlib import Path
from spotme_hub.service import load_config, tables
from spotme_hub.store import Store
from spotme_hub.adapters.csv.importer import import_file, options_for
cfg = load_config(sys.argv[1])
store = Store(cfg.database_url, cfg.hub.sqlite_synchronous)
store.create_all(tables())
total = 0
for name in sys.argv[2:]:
    dev = cfg.device(Path(name).name.split("_attlog")[0])
    s = import_file(cfg, store, Path(name), dev, options_for(dev))
    total += s.imported
print(json.dumps({"imported": total, "count": store.count_records()}))
"""

HUB = r"""
import cProfile, datetime as dt, json, resource, sys, time
sys.path.insert(0, sys.argv[4])
from days import clear_days, hub_days
from spotme_hub.service import load_config, open_store
cfg = load_config(sys.argv[1])
first, last = dt.date.fromisoformat(sys.argv[2]), dt.date.fromisoformat(sys.argv[3])
store = open_store(cfg)
clear_days(store)
rows = store.count_records()
stored = sys.argv[5] == "stored"
profile = sys.argv[6] if len(sys.argv) > 6 else ""
prof = cProfile.Profile() if profile else None
t0 = time.perf_counter()
if prof is not None:
    prof.enable()
days = hub_days(cfg, store, first, last, stored)
if prof is not None:
    prof.disable()
    prof.dump_stats(profile)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "rows": rows, "days": days,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

FLOOR = r"""
import json, resource, sys, time
import pandas as pd
url = sys.argv[1]
t0 = time.perf_counter()
if url.startswith("sqlite"):
    import sqlite3
    conn = sqlite3.connect(url.split("///", 1)[1])
    cur = conn.execute("SELECT employee_id, occurred_at FROM records")
    df = pd.DataFrame(cur.fetchall(), columns=["employee_id", "occurred_at"])
    conn.close()
else:
    import sqlalchemy
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        df = pd.read_sql("SELECT employee_id, occurred_at FROM records", conn)
    engine.dispose()
local = pd.to_datetime(df["occurred_at"], format="%Y-%m-%dT%H:%M:%SZ") + pd.Timedelta(hours=8)
df["date"] = local.dt.normalize()
df["time"] = local - df["date"]
days = df.groupby(["employee_id", "date"], sort=True)["time"].agg(["first", "last"])
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "rows": len(df), "days": len(days),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def clear_days(store: Any) -> None:
    """No stored days (each run stores them all anew): not timed."""
    from spotme_hub.attendance.tables import TABLES

    with store.write() as conn:
        for table in TABLES:
            conn.execute(table.delete())
    store.create_all(tables_of_parts())


def tables_of_parts() -> Any:
    from spotme_hub.service import tables

    return tables()


def hub_days(cfg: Any, store: Any, first: dt.date, last: dt.date, stored: bool = True) -> int:
    """The hub's side: every configured officer's day of `first`..`last` worked out and stored
    (`DayLedger.rebuild`, what the hub keeps), or with `stored=False` only worked out."""
    from spotme_hub.attendance.book import DayBook
    from spotme_hub.attendance.ledger import DayLedger

    if not stored:
        return sum(1 for _ in DayBook(cfg, store).days(first, last))
    ledger = DayLedger(cfg, store)
    ledger.rebuild(first, last)
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM attendance_days").scalar_one())


def child(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def prepare(work: Path, officers: int, db_url: str) -> Path:
    """The config and the imported store (kept from an earlier run of the same size)."""
    meta = work / "meta.json"
    cfg_path = work / "hub.yaml"
    wanted = {"officers": officers, "database": db_url}
    if meta.exists() and json.loads(meta.read_text()) == wanted and cfg_path.exists():
        print(f"reusing the store and config in {work}")
        return cfg_path
    if db_url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(db_url.split("///", 1)[1] + suffix).unlink(missing_ok=True)
    else:
        import sqlalchemy

        engine = sqlalchemy.create_engine(db_url)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("DROP TABLE IF EXISTS records, record_shapes, "
                                         "quarantine, checkpoints, device_health CASCADE"))  # fmt: skip
        engine.dispose()
    rng = np.random.default_rng(21)
    t0 = time.perf_counter()
    data = config(officers, db_url, rng)
    cfg_path.write_text(yaml.safe_dump(data, sort_keys=False))
    files = []
    for device, rows in punches(data, rng).items():
        path = work / f"{device}_attlog.dat"
        write_attlog(path, rows, rng)
        files.append(str(path))
    print(f"generated {officers:,} officers' month in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    done = child(IMPORT, str(cfg_path), *files)
    print(f"imported {done['imported']:,} records in {time.perf_counter() - t0:.1f} s")
    meta.write_text(json.dumps(wanted))
    return cfg_path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--officers", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=1, help="hub/floor pairs, alternating")
    ap.add_argument("--keep", type=Path, help="keep (and reuse) the data in this directory")
    ap.add_argument("--pg", help="a PostgreSQL URL instead of SQLite (its tables are replaced)")
    ap.add_argument("--profile", help="write the hub's cProfile stats here (first run)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench-days-")
    work = (args.keep or Path(tmp.name)).resolve()
    work.mkdir(parents=True, exist_ok=True)
    db_url = args.pg or f"sqlite:///{work / 'hub.db'}"
    cfg_path = prepare(work, args.officers, db_url)
    first, last = MONTH_FIRST.isoformat(), MONTH_LAST.isoformat()
    here = str(Path(__file__).resolve().parent)
    ratios = []
    with StealMeter() as steal:
        for k in range(args.repeat):
            extra = [args.profile] if args.profile and k == 0 else []
            hub = child(HUB, str(cfg_path), first, last, here, "stored", *extra)
            floor = child(FLOOR, db_url)
            if k == 0:  # what of it is working the days out, the rest storing them
                only = child(HUB, str(cfg_path), first, last, here, "computed")
                print(f"  (worked out without storing: {only['seconds']:.2f} s)")
            ratio = hub["seconds"] / floor["seconds"]
            ratios.append(ratio)
            print(
                f"run {k + 1}: hub {hub['seconds']:6.2f} s {hub['days'] / hub['seconds']:>9,.0f} "
                f"days/s ({hub['rows']:,} rows, {hub['days']:,} days, peak RSS "
                f"{hub['rss_mb']:.0f} MB) | floor {floor['seconds']:5.2f} s "
                f"({floor['rows']:,} rows, {floor['days']:,} officer-days with punches, peak RSS "
                f"{floor['rss_mb']:.0f} MB) | ratio {ratio:.2f}x (target <= 3x)"
            )
    if len(ratios) > 1:
        print(
            f"ratio over {len(ratios)} runs: min {min(ratios):.2f}x, median "
            f"{statistics.median(ratios):.2f}x, max {max(ratios):.2f}x"
        )
    print(f"{steal.text()} (time the VM's host gave to other guests)")
    print("target met" if statistics.median(ratios) <= 3 else "target NOT met")


if __name__ == "__main__":
    main()
