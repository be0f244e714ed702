"""The store's counters and filtered reads, on SQLite and (when SPOTME_TEST_PG_URL is set)
PostgreSQL: every count, page and tail agrees with the records themselves, and every filtered
query is read over an index (the plans say so), never a scan of `records`."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from spotme_hub.normalize import Normalizer
from spotme_hub.record import RECORD_FIELDS, RawPunch, Record, Rejection
from spotme_hub.service import tables
from spotme_hub.store import JSON_FIELDS, RecordFilter, Store, dumps

DEVICES = [
    {"id": "dev1", "kind": "simulated", "office": "hq"},
    {"id": "dev2", "kind": "simulated", "office": "kch"},
    {"id": "dev3", "kind": "simulated", "office": "hq"},
]


def punches(make_config: Any, n: int, start: int = 0) -> list[Record]:
    """`n` records over three devices and two offices, 97 s apart from 06:00 local (22:00Z the
    day before): about 2.7 an hour per device, across many UTC hours and two UTC days."""
    cfg = make_config(devices=DEVICES)
    norm = Normalizer(cfg)
    t0 = datetime(2026, 6, 1, 6, 0, 0)
    out = []
    for i in range(start, start + n):
        dev = cfg.device(DEVICES[i % 3]["id"])
        raw = RawPunch(device_time=t0 + timedelta(seconds=97 * i), user_id=str(i % 7 + 1),
                       punch=i % 2, raw={"i": i}, source={"i": i})  # fmt: skip
        rec = norm.normalize(dev, raw)
        assert isinstance(rec, Record)
        out.append(rec)
    return out


def columns(records: list[Record]) -> dict[str, list[Any]]:
    return {
        name: [
            dumps(getattr(r, name)) if name in JSON_FIELDS else getattr(r, name) for r in records
        ]
        for name in RECORD_FIELDS
    }


def stored(store: Store) -> list[dict[str, Any]]:
    """Every record as it is stored (the oracle), in seq order."""
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT seq, id, employee_id, device_id, office_id, occurred_at, flags "
            "FROM records ORDER BY seq"
        ).all()
    keys = ("seq", "id", "employee_id", "device_id", "office_id", "occurred_at", "flags")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def selects(f: RecordFilter, r: dict[str, Any]) -> bool:
    return (
        (f.office_id is None or r["office_id"] == f.office_id)
        and (f.employee_id is None or r["employee_id"] == f.employee_id)
        and (f.device_id is None or r["device_id"] == f.device_id)
        and (f.since is None or r["occurred_at"] >= f.since)
        and (f.until is None or r["occurred_at"] < f.until)
        and (f.flag is None or f'"{f.flag}"' in r["flags"])
        and (f.ids is None or r["id"] in f.ids)
    )


FILTERS = [
    RecordFilter(),
    RecordFilter(device_id="dev1"),
    RecordFilter(device_id="dev2"),
    RecordFilter(device_id="nosuch"),
    RecordFilter(office_id="hq"),
    RecordFilter(office_id="kch", device_id="dev2"),
    RecordFilter(office_id="kch", device_id="dev1"),
    RecordFilter(flag="unmapped_employee"),
    RecordFilter(office_id="hq", flag="unmapped_employee"),
    RecordFilter(since="2026-06-01T01:30:00Z"),  # mid-hour
    RecordFilter(since="2026-06-01T02:00:00Z"),  # on the hour
    RecordFilter(until="2026-06-01T03:17:31.5Z"),
    RecordFilter(since="2026-05-31T23:10:00Z", until="2026-06-01T04:45:00Z"),
    RecordFilter(since="2026-06-01T02:05:00Z", until="2026-06-01T02:40:00Z"),  # within one hour
    RecordFilter(since="2026-06-01T05:00:00Z", until="2026-06-01T02:00:00Z"),  # empty
    RecordFilter(since="2026-06", until="2026-06-01T03"),  # not whole times: compared as text
    RecordFilter(since="2026"),
    RecordFilter(until="zzz"),
    RecordFilter(since="2026-06-01T01:30:00Z", device_id="dev3"),
    RecordFilter(since="2026-06-01T00:15:00Z", until="2026-06-01T06:00:00Z", office_id="kch"),
    RecordFilter(since="2027-01-01T00:00:00Z"),
    RecordFilter(until="2026-01-01T00:00:00Z"),
]


def employee_filters(records: list[dict[str, Any]]) -> list[RecordFilter]:
    someone = next(r["employee_id"] for r in records if r["employee_id"])
    return [
        RecordFilter(employee_id=someone),
        RecordFilter(employee_id=someone, device_id="dev2"),
        RecordFilter(employee_id=someone, since="2026-06-01T01:30:00Z", until="2026-06-01T05:00Z"),
        RecordFilter(employee_id="nobody"),
        RecordFilter(ids=tuple(r["id"] for r in records[5:40:3]) + ("no-such-id",)),
        RecordFilter(ids=()),
    ]


def check_reads(store: Store) -> None:
    everything = stored(store)
    for f in FILTERS + employee_filters(everything):
        want = [r["seq"] for r in everything if selects(f, r)]
        assert store.count_records(f) == len(want), f
        got, after = [], 0
        while page := store.records(after, 7, f):
            got += [r["seq"] for r in page]
            after = page[-1]["seq"]
        assert got == want, f
        assert [r["seq"] for r in store.last_records(5, f)] == want[-5:], f
        assert store.records(want[-1] if want else 0, 7, f) == [], f  # the last, empty page
    seqs = [r["seq"] for r in everything]
    for cursor in (0, seqs[0], seqs[len(seqs) // 3], seqs[-2], seqs[-1], seqs[-1] + 5):
        assert store.count_after(cursor) == sum(s > cursor for s in seqs), cursor
    for since in ("2026-06-01T01:30:00Z", "2026-05-31T22:00:00Z", "2026-06-01T09:59:59.9Z"):
        want_by: dict[str, int] = {}
        for r in everything:
            if r["occurred_at"] >= since:
                want_by[r["device_id"]] = want_by.get(r["device_id"], 0) + 1
        assert store.punches_since(since) == want_by, since


def test_counts_pages_and_tails_agree_with_the_records(store: Store, make_config: Any) -> None:
    recs = punches(make_config, 600)
    assert any("unmapped_employee" in r.flags for r in recs)
    store.commit(recs[:100])
    store.commit(recs[50:150] + recs[60:61])  # duplicates, inside the batch too: counted once
    store.bulk_insert(columns(recs[120:400]))  # overlaps the live ones
    store.bulk_insert(columns(recs[450:600]), rejections=[Rejection("dev1", "bad", {"x": 1})])
    store.commit(recs[400:450][::-1])  # an hour already counted, later seqs
    store.bulk_insert(columns(recs[:10]))  # nothing new: no count moves
    check_reads(store)
    assert store.total().n == 600 == len(stored(store))
    assert store.total("day", "2026-05-31").n + store.total("day", "2026-06-01").n == 600


def test_a_store_made_before_the_counters_and_indexes_gets_them_on_start(
    store_url: str, make_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    old = Store(store_url)
    old.create_all(tables())
    old.commit(punches(make_config, 300))
    with old.engine.begin() as conn:  # as an older hub left it
        for name in ("ix_records_hour_employee", "ix_records_office_seq",
                     "ix_records_device_seq", "ix_records_flagged"):  # fmt: skip
            conn.exec_driver_sql(f"DROP INDEX {name}")
        conn.exec_driver_sql("DROP TABLE record_counts")
        conn.exec_driver_sql("DROP TABLE record_totals")
        conn.exec_driver_sql("DELETE FROM checkpoints WHERE key = 'record_counts'")
    old.close()
    caplog.set_level(logging.INFO, logger="spotme_hub.store")
    new = Store(store_url)
    try:
        new.create_all(tables())
        added = [m for m in caplog.messages if m.startswith("index ") and " added in " in m]
        assert len(added) == 4, caplog.messages
        assert any(m.startswith("records counted in ") for m in caplog.messages)
        check_reads(new)
        caplog.clear()
        new.create_all(tables())  # once: the next start neither indexes nor counts
        assert not [m for m in caplog.messages if "added in" in m or "counted in" in m]
    finally:
        new.close()


# --- query plans ---------------------------------------------------------------------------


def fill(store: Store, n: int) -> list[str]:
    """`n` records as a file import stores them: 8 devices, 4 offices, 2,000 officers, one
    every 3 s over the days from 2026-03-02; returns the officers' ids."""
    t0 = datetime(2026, 3, 2, 0, 0, 0)
    officers = [f"J{k:05d}" for k in range(2000)]
    for start in range(0, n, 10_000):
        for d in range(8):
            idx = [i for i in range(start, min(n, start + 10_000)) if i % 8 == d]
            times = [t0 + timedelta(seconds=3 * i) for i in idx]
            store.bulk_insert(
                {
                    "id": [f"scale-{i:08d}" for i in idx],
                    "employee_id": [officers[(i * 7919) % 2000] for i in idx],
                    "occurred_at": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times],
                    "local_time": [(t + timedelta(hours=8)).isoformat() + "+08:00" for t in times],
                    "flags": ['["unmapped_employee"]' if i % 97 == 0 else "[]" for i in idx],
                },
                {
                    "device_id": f"d{d}",
                    "office_id": f"o{d // 2}",
                    "punch": "in",
                    "device_kind": "zkteco_tcp",
                    "timezone": "Asia/Kuala_Lumpur",
                },  # fmt: skip
            )
    return officers


#: What each filter must be read over (SQLite's and PostgreSQL's names for it).
PLANNED = [
    (RecordFilter(employee_id="J00042"), "ix_records_hour_employee"),
    (
        RecordFilter(employee_id="J00042", since="2026-03-02T10:00:00Z", until="2026-03-03T00:00Z"),
        "ix_records_hour_employee",
    ),  # fmt: skip
    (RecordFilter(office_id="o1"), "ix_records_office_seq"),
    (RecordFilter(device_id="d5"), "ix_records_device_seq"),
    (RecordFilter(device_id="d5", since="2026-03-02T10:00:00Z"), "ix_records_device_seq"),
    (RecordFilter(flag="unmapped_employee"), "ix_records_flagged"),
    (RecordFilter(ids=("scale-00000010", "scale-00000020")), "records_id_key|autoindex_records"),
    (
        RecordFilter(since="2026-03-02T10:00:00Z", until="2026-03-02T11:00:00Z"),
        "records_pkey|INTEGER PRIMARY KEY|ix_records_occurred_at",
    ),  # fmt: skip
]


def test_no_filtered_query_scans_the_records_table(store: Store) -> None:
    fill(store, 40_000)
    for analysed in (False, True):  # just imported (stale estimates), then as autovacuum leaves it
        if analysed and not store.is_sqlite:
            with store.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        for f, index in PLANNED:
            for count in (False, True):
                plan = "\n".join(store.query_plan(f, count=count))
                assert "SCAN records" not in plan and "Seq Scan on records" not in plan, (f, plan)
                assert any(name in plan for name in index.split("|")), (f, plan)
                if not count:  # a page is read in commit order, not gathered and sorted
                    assert "Bitmap Heap Scan on records" not in plan, (f, plan)
    assert store.query_plan(RecordFilter(device_id="d5", since="2027-01-01T00:00:00Z")) == []


def test_every_filter_reads_the_same_records_whichever_index_serves_it(store: Store) -> None:
    officers = fill(store, 6_000)
    everything = stored(store)
    for f in [f for f, _ in PLANNED] + [RecordFilter(employee_id=officers[1], office_id="o2")]:
        want = [r["seq"] for r in everything if selects(f, r)]
        got = [r["seq"] for r in store.iter_records(f, page=500)]
        assert got == want and store.count_records(f) == len(want), f
        texts, _ = store.records_json(0, 3, f)
        assert [orjson.loads(t)["seq"] for _, _, t in texts] == want[:3], f
