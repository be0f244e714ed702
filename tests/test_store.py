"""The store, on SQLite and (when SPOTME_TEST_PG_URL is set) PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

from spotme_hub.normalize import Normalizer
from spotme_hub.record import RECORD_FIELDS, RawPunch, Record, Rejection
from spotme_hub.service import tables
from spotme_hub.store import (
    JSON_FIELDS,
    ROWS_PER_INSERT,
    RecordFilter,
    Store,
    dumps,
    record_doc,
)


def make_records(make_config, n: int, start: int = 0, device: str = "dev1") -> list[Record]:  # type: ignore[no-untyped-def]
    cfg = make_config(devices=[{"id": "dev1", "kind": "simulated", "office": "hq"},
                               {"id": "dev2", "kind": "simulated", "office": "kch"}])  # fmt: skip
    norm = Normalizer(cfg)
    dev = cfg.device(device)
    t0 = datetime(2026, 6, 1, 8, 0, 0)
    out = []
    for i in range(start, start + n):
        rec = norm.normalize(dev, RawPunch(device_time=t0 + timedelta(seconds=i), user_id=str(i % 3 + 1),
                                           punch=i % 2, raw={"i": i}, source={"i": i}))  # fmt: skip
        assert isinstance(rec, Record)
        out.append(rec)
    return out


def test_idempotent_insert_reports_new_and_duplicate(store: Store, make_config) -> None:  # type: ignore[no-untyped-def]
    recs = make_records(make_config, 10)
    first = store.commit(recs[:6])
    assert len(first.new) == 6 and first.duplicate == []
    second = store.commit(recs[4:] + recs[4:5])  # overlap, plus a repeat inside the batch
    assert sorted(second.new) == sorted(r.id for r in recs[6:])
    assert sorted(second.duplicate) == sorted([recs[4].id, recs[5].id, recs[4].id])
    assert store.count_records() == 10


def test_bulk_insert_counts_new_and_duplicate_rows_across_its_statements(
    store: Store, make_config
) -> None:  # type: ignore[no-untyped-def]
    recs = make_records(make_config, 2 * ROWS_PER_INSERT + 50)
    store.commit(recs[100:130])
    batch = recs + recs[:7]  # several statements' worth, a short last one, repeats inside
    res = store.bulk_insert(_columns(batch))
    assert (res.new, res.duplicate) == (len(recs) - 30, 30 + 7)
    stored = store.records(after=0, limit=1000)
    assert len(stored) == len(recs)
    by_id = {r["id"]: {k: v for k, v in r.items() if k != "seq"} for r in stored}
    assert all(by_id[r.id] == r.to_dict() for r in recs)


def _columns(records: list[Record]) -> dict[str, list]:
    return {
        name: [
            dumps(getattr(r, name)) if name in JSON_FIELDS else getattr(r, name) for r in records
        ]
        for name in RECORD_FIELDS
    }


def test_bulk_records_are_stored_with_one_shape_and_read_back_exactly(
    store: Store, make_config
) -> None:  # type: ignore[no-untyped-def]
    recs = make_records(make_config, 40)
    awkward = ["a%sb", '"q" \\ \x1f', "100%", "ünï ☃ \u2028", "%(x)s", ""]
    for i, rec in enumerate(recs):  # what a shape or a field text could trip over
        rec.raw = {"v": awkward[i % len(awkward)], "n": i, "f": 0.1 * i}
        rec.source = {"file": "50% off.csv", "line": i}
        rec.source_user_id = awkward[i % len(awkward)] or None
    consts = {"device_id": "dev1", "office_id": "hq", "timezone": 'Asia/"K%L"'}
    for rec in recs:
        rec.timezone = consts["timezone"]
    columns = {k: v for k, v in _columns(recs).items() if k not in consts}
    assert store.bulk_insert(columns, consts).new == len(recs)
    with store.engine.connect() as conn:  # stored as a shape and each record's own fields
        rows = conn.exec_driver_sql("SELECT shape, doc FROM records").all()
        shapes = conn.exec_driver_sql("SELECT count(*) FROM record_shapes").scalar()
    assert shapes == 1 and all(shape is not None for shape, _ in rows)
    assert all("dev1" not in doc and "Asia" not in doc for _, doc in rows)
    assert sum(map(len, (doc for _, doc in rows))) < sum(len(record_doc(r)) for r in recs) / 2
    # every read path gives the canonical text, as a whole stored doc would
    page, _ = store.records_json(0, 1000)
    assert [text for _, _, text in page] == [
        b'{"seq":%d,%s' % (seq, record_doc(r).encode()[1:])
        for (seq, _, _), r in zip(page, recs, strict=True)
    ]
    plain, _ = store.records_json(0, 1000, with_seq=False)
    assert [text for _, _, text in plain] == [record_doc(r).encode() for r in recs]
    got = store.records(0, 1000)
    assert [{k: v for k, v in d.items() if k != "seq"} for d in got] == [r.to_dict() for r in recs]
    assert store.get_record(recs[5].id) == got[5]
    # a second batch with the same constants reuses the shape
    more = make_records(make_config, 3, start=100)
    for rec in more:
        rec.timezone = consts["timezone"]
    store.bulk_insert({k: v for k, v in _columns(more).items() if k not in consts}, consts)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM record_shapes").scalar() == 1


def test_bulk_insert_refuses_ids_a_shape_cannot_quote(store: Store, make_config) -> None:  # type: ignore[no-untyped-def]
    (rec,) = make_records(make_config, 1)
    rec.id = 'not"plain'
    with pytest.raises(ValueError, match="record ids"):
        store.bulk_insert(_columns([rec]))
    assert store.count_records() == 0


def test_an_older_database_gets_the_shape_column(store_url: str, make_config) -> None:  # type: ignore[no-untyped-def]
    old = Store(store_url)
    old.create_all(tables())
    recs = make_records(make_config, 3)
    old.commit(recs[:2])
    with old.engine.begin() as conn:  # the records table as it was before shapes
        conn.exec_driver_sql("ALTER TABLE records DROP COLUMN shape")
    old.close()
    again = Store(store_url)
    again.create_all(tables())
    again.bulk_insert(_columns(recs[2:]))
    got = [{k: v for k, v in d.items() if k != "seq"} for d in again.records(0, 10)]
    assert got == [r.to_dict() for r in recs]
    again.close()


def test_round_trip_and_cursor_order(store: Store, make_config) -> None:  # type: ignore[no-untyped-def]
    recs = make_records(make_config, 25)
    for chunk in (recs[:10], recs[10:20], recs[20:]):
        store.commit(chunk)
    page1 = store.records(after=0, limit=10)
    page2 = store.records(after=page1[-1]["seq"], limit=100)
    got = page1 + page2
    assert [r["id"] for r in got] == [r.id for r in recs]
    seqs = [r["seq"] for r in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 25
    first = {k: v for k, v in got[0].items() if k != "seq"}
    assert first == recs[0].to_dict()
    assert store.get_record(recs[3].id) == got[3]
    assert store.max_seq() == seqs[-1]


def test_filters(store: Store, make_config) -> None:  # type: ignore[no-untyped-def]
    a = make_records(make_config, 6, device="dev1")
    b = make_records(make_config, 4, start=100, device="dev2")
    store.commit(a + b)
    assert store.count_records(RecordFilter(device_id="dev2")) == 4
    assert store.count_records(RecordFilter(office_id="hq")) == 6
    both = a + b
    assert store.count_records(RecordFilter(employee_id="E1")) == sum(
        r.employee_id == "E1" for r in both
    )
    since = a[2].occurred_at
    assert store.count_records(RecordFilter(device_id="dev1", since=since)) == 4
    assert store.count_records(RecordFilter(device_id="dev1", until=since)) == 2
    unmapped = sum("unmapped_employee" in r.flags for r in both)
    assert unmapped > 0 and store.count_records(RecordFilter(flag="unmapped_employee")) == unmapped


def test_quarantine_and_checkpoint_in_one_transaction(store: Store, make_config) -> None:  # type: ignore[no-untyped-def]
    recs = make_records(make_config, 3)
    rej = Rejection(
        reason="bad checksum", raw={"hex": "0231"}, source={"line": 7}, device_id="dev1"
    )
    res = store.commit(recs, [rej], {("dev1", "hwm"): {"n": 3}})
    assert len(res.quarantined) == 1
    items = store.quarantine_items()
    assert items[0]["reason"] == "bad checksum" and items[0]["source"] == {"line": 7}
    assert items[0]["raw"] == {"hex": "0231"} and items[0]["status"] == "open"
    assert store.get_checkpoint("dev1", "hwm") == {"n": 3}
    store.set_checkpoint("dev1", "hwm", {"n": 4})
    assert store.get_checkpoint("dev1", "hwm") == {"n": 4}
    assert store.get_checkpoint("dev1", "missing", 42) == 42
    store.resolve_quarantine(items[0]["qid"], "discarded", "admin: test frame")
    assert store.quarantine_count() == 0 and store.quarantine_items("discarded")[0]["resolution"]


def test_a_file_row_rejected_again_is_the_item_already_there(store: Store) -> None:
    """The same row of a file, rejected again for the same reason (a re-import), is one item
    whatever its status; anything else is new, and so is every live arrival."""

    def rej(raw: str = "00012\tSiti\t31/02/2025", line: int = 7, reason: str = "no such day"):  # type: ignore[no-untyped-def]
        return Rejection(reason=reason, raw={"row": raw}, source={"file": "a.csv", "line": line},
                         device_id="dev1")  # fmt: skip

    first = store.commit([], [rej(), rej(line=8)]).quarantined
    again = store.commit([], [rej(), rej(line=8)]).quarantined
    assert again == first and store.quarantine_count() == 2
    others = store.commit([], [rej(raw="other"), rej(reason="other"), rej(line=9)]).quarantined
    assert len(set(others) | set(first)) == 5 and store.quarantine_count() == 5
    store.resolve_quarantine(first[0], "discarded", "admin: junk row")
    assert store.quarantine([rej()]) == [first[0]]  # stays discarded
    assert store.quarantine_count() == 4
    live = Rejection(reason="bad checksum", raw={"hex": "02"}, source={"kind": "serial"},
                     device_id="dev1")  # fmt: skip
    assert len(set(store.quarantine([live]) + store.quarantine([live]))) == 2
    # a punch read from the row carries its receive time in the source: still the same row
    read = rej()
    read.source["punch"] = {"received_at": "2026-12-02T03:00:00Z"}
    assert store.quarantine([read]) == [first[0]]


def test_an_older_database_gets_the_quarantine_place(store_url: str) -> None:
    from sqlalchemy import inspect

    old = Store(store_url)
    old.create_all(tables())
    with old.engine.begin() as conn:  # the quarantine table as it was before `place`
        conn.exec_driver_sql("DROP INDEX ix_quarantine_device_place")
        conn.exec_driver_sql("ALTER TABLE quarantine DROP COLUMN place")
        conn.exec_driver_sql(
            "INSERT INTO quarantine (created_at, device_id, source, reason, raw, status) "
            "VALUES ('2026-01-01T00:00:00Z', 'd', '{}', 'old', 'null', 'open')"
        )
    old.close()
    again = Store(store_url)
    again.create_all(tables())
    names = {i["name"] for i in inspect(again.engine).get_indexes("quarantine")}
    assert "ix_quarantine_device_place" in names
    row = Rejection(reason="bad", raw={"a": 1}, source={"file": "f.csv", "line": 2}, device_id="d")
    assert again.quarantine([row]) == again.quarantine([row])
    assert again.quarantine_count() == 2
    again.close()


def test_failed_transaction_commits_nothing(store: Store, make_config) -> None:  # type: ignore[no-untyped-def]
    recs = make_records(make_config, 3)
    bad = Rejection(reason="x", raw=None, source={}, device_id=None)
    bad.reason = None  # type: ignore[assignment]  # violates NOT NULL: the whole commit must fail
    try:
        store.commit(recs, [bad], {("dev1", "hwm"): 3})
    except Exception:
        pass
    else:
        raise AssertionError("commit with an invalid quarantine row should fail")
    assert store.count_records() == 0 and store.get_checkpoint("dev1", "hwm") is None


def test_concurrent_writers_keep_seq_in_commit_order(store: Store, make_config) -> None:  # type: ignore[no-untyped-def]
    recs = make_records(make_config, 400)
    chunks = [recs[i : i + 20] for i in range(0, 400, 20)]
    threads = [threading.Thread(target=store.commit, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = store.records(limit=1000)
    assert len(rows) == 400
    # each chunk was one transaction: its rows have consecutive seqs
    by_id = {r["id"]: r["seq"] for r in rows}
    for c in chunks:
        seqs = sorted(by_id[r.id] for r in c)
        assert seqs == list(range(seqs[0], seqs[0] + 20))


def test_health_rows(store: Store) -> None:
    store.save_health(
        [{"device_id": "d1", "kind": "zkteco", "state": "UP", "counters": {"new": 3}}]
    )
    store.save_health(
        [{"device_id": "d1", "kind": "zkteco", "state": "DOWN", "last_error": "timeout"}]
    )
    (row,) = store.health()
    assert (
        row["state"] == "DOWN" and row["last_error"] == "timeout" and row["counters"] == {"new": 3}
    )


def _v1_records_table(metadata):  # type: ignore[no-untyped-def]
    """The first layout of the records table: one column per record field."""
    from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, Table, Text

    cols = [Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                   autoincrement=True), Column("id", Text, nullable=False, unique=True)]  # fmt: skip
    for name in Record.__dataclass_fields__:
        if name == "id":
            continue
        kind = {"clock_skew_s": Float, "latitude": Float, "longitude": Float, "distance_m": Float,
                "within_geofence": Boolean, "schema_version": Integer}.get(name, Text)  # fmt: skip
        cols.append(Column(name, kind))
    cols.append(Column("committed_at", Text))
    return Table("records", metadata, *cols, Index("ix_records_occurred_at", "occurred_at"),
                 sqlite_autoincrement=True)  # fmt: skip


def test_records_of_the_first_layout_are_moved_with_their_seq(store_url: str, make_config) -> None:  # type: ignore[no-untyped-def]
    """A store created by the first release (a column per field) is moved to the current layout
    on start: every record keeps its seq and values, and new commits continue after them."""
    import orjson
    from sqlalchemy import MetaData, create_engine

    recs = make_records(make_config, 12)
    recs[0].latitude, recs[0].within_geofence, recs[1].within_geofence = (
        2.926412345678901,
        True,
        False,
    )
    recs[2].raw = {"t": 'tab\t "q" é'}
    engine = create_engine(store_url)
    table = _v1_records_table(MetaData())
    table.create(engine)
    with engine.begin() as conn:
        for k, rec in enumerate(recs):  # seqs with a gap, as deletes would leave
            row = rec.to_dict()
            for name in ("flags", "source", "raw"):
                row[name] = orjson.dumps(row[name]).decode()
            conn.execute(
                table.insert(), {**row, "seq": k * 2 + 1, "committed_at": "2026-06-01T00:00:00Z"}
            )
    engine.dispose()

    store = Store(store_url)
    store.create_all(tables())
    try:
        got = store.records(0, 100)
        assert [r["seq"] for r in got] == [k * 2 + 1 for k in range(12)]
        assert [{k: v for k, v in r.items() if k != "seq"} for r in got] == [
            r.to_dict() for r in recs
        ]
        more = make_records(make_config, 2, start=100)
        assert len(store.commit(more).new) == 2
        assert [r["seq"] for r in store.records(23, 10)] == [24, 25]  # after the moved ones
        store.create_all(tables())  # a second start changes nothing
        assert store.count_records() == 14
    finally:
        store.close()


def test_records_stored_with_uuid5_ids_are_given_time_ordered_ids(
    store_url: str, make_config
) -> None:  # type: ignore[no-untyped-def]
    """A store of the releases whose ids were the UUIDv5 of the identity key: on start every such
    record gets the id the hub now gives the same punch (seq, doc and dead letters follow), so a
    punch delivered again after the upgrade is still a duplicate; an id of an identity of its
    own (a reader's receipt, an untimed payload) is kept."""
    from sqlalchemy import text

    from spotme_hub.record import credential, identity_key, record_id

    recs = make_records(make_config, 6)
    cfg = make_config(devices=[{"id": "dev1", "kind": "simulated", "office": "hq"}])
    own = Normalizer(cfg).normalize(
        cfg.device("dev1"),
        RawPunch(device_time=datetime(2026, 6, 2, 9, 0, 0), card="8844356", identity="c:x|1"),
    )
    assert isinstance(own, Record) and own.id == record_id("dev1|c:x|1")
    old = []
    for rec in recs:  # as the earlier releases stored them
        d = rec.to_dict()
        who = credential(d["source_user_id"], d["card"])
        d["id"] = record_id(identity_key("dev1", who, d["local_time"][:19], d["punch"]))
        assert d["id"][14] == "5" and d["id"] != rec.id
        old.append(Record.from_dict(d))
    store = Store(store_url)
    store.create_all(tables())
    store.commit([*old, own])
    with store.engine.begin() as conn:  # a database of before: no checkpoint, a dead letter
        conn.execute(text("DELETE FROM checkpoints WHERE scope = 'schema'"))
        conn.execute(
            text(
                "INSERT INTO forward_dead_letters (seq, record_id, reason, status, attempts, "
                "created_at, updated_at) VALUES (3, :rid, 'HTTP 422', 'open', 1, 'x', 'x')"
            ),
            {"rid": old[2].id},
        )
    store.close()

    store = Store(store_url)
    store.create_all(tables())
    try:
        got = store.records(0, 100)
        assert [r["seq"] for r in got] == list(range(1, 8))
        assert [{k: v for k, v in r.items() if k != "seq"} for r in got] == [
            r.to_dict() for r in [*recs, own]
        ]
        assert [store.get_record(r.id)["seq"] for r in recs] == list(range(1, 7))  # type: ignore[index]
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT record_id FROM forward_dead_letters")).scalar() == (
                recs[2].id
            )
        again = store.commit(recs)  # the same punches pulled again after the upgrade
        assert again.new == [] and len(again.duplicate) == 6
        store.create_all(tables())  # a second start changes nothing
        assert [r["id"] for r in store.records(0, 100)] == [r.id for r in [*recs, own]]
    finally:
        store.close()


def test_background_checkpoints_copy_the_wal_so_commits_do_not(tmp_path, make_config) -> None:  # type: ignore[no-untyped-def]
    """With background checkpoints on, connections do not checkpoint on commit
    (wal_autocheckpoint 0) and a thread copies the WAL into the database file; off restores
    SQLite's automatic checkpoints."""
    import time

    db = tmp_path / "hub.db"
    store = Store(f"sqlite:///{db}")
    store.create_all(tables())
    try:
        assert store.wal_autocheckpoint() == 1000
        store.background_checkpoints(True, every_s=0.05)
        assert store.wal_autocheckpoint() == 0
        before = db.stat().st_size
        store.commit(make_records(make_config, 300))  # well under 1000 WAL pages
        deadline = time.monotonic() + 5
        while db.stat().st_size == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.stat().st_size > before  # the thread moved the pages into the database
        assert store.count_records() == 300
        store.background_checkpoints(False)
        assert store.wal_autocheckpoint() == 1000
    finally:
        store.close()


def test_footprint_is_the_stores_size_and_its_oldest_record(store: Store, make_config) -> None:  # type: ignore[no-untyped-def]
    size, oldest = store.footprint()
    assert size > 0 and oldest is None  # a new store: its tables, no record yet
    store.commit(make_records(make_config, 5))
    size, oldest = store.footprint()
    from spotme_hub.clock import parse_utc

    assert size > 0 and oldest is not None
    assert abs((parse_utc(oldest) - datetime.now(parse_utc(oldest).tzinfo)).total_seconds()) < 60
