"""The schema, brought up to date: older layouts of a database move to the current one, batch by
batch and resumable, when the hub starts."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import MetaData, Table, bindparam, inspect, select
from sqlalchemy.schema import CreateIndex

from ..clock import now_z_ms
from ..record import RECORD_FIELDS, Record, credential, identity_key, record_id
from .checkpoints import CheckpointStore
from .pages import RecordPages
from .schema import INSERT_COLUMNS, OWN_TABLES, QUARANTINE, RECORDS, dumps, record_to_tuple
from .shapes import JSON_FIELDS

log = logging.getLogger("spotme_hub.store")

_IDS_CHECKPOINT = ("schema", "time_ordered_ids")
_COUNTS_CHECKPOINT = ("schema", "record_counts")


class Migrations(RecordPages, CheckpointStore):
    def create_all(self, tables: Iterable[Table] = ()) -> None:
        """Create the store's tables and `tables` (those the other parts bring: the composition
        root passes them), and bring an older layout up to date. A table whose rows name records
        by seq and id says so in `Table.info["record_ref"]` (its seq and id columns): when record
        ids move, its ids move with them."""
        extra = list(tables)
        self._record_refs = [t for t in extra if "record_ref" in t.info]
        self._migrate_v1()
        MetaData().create_all(self.engine, tables=[*OWN_TABLES, *extra])
        self._add_quarantine_place()
        self._add_record_shape()
        self._add_record_indexes()
        if self._v1_rows:
            self._copy_v1()
        self._time_ordered_ids()
        self._count_once()

    def _add_quarantine_place(self) -> None:
        """The `place` column and its index, on a quarantine table made before them."""
        columns = {c["name"] for c in inspect(self.engine).get_columns("quarantine")}
        if "place" not in columns:
            with self._write_lock, self.engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE quarantine ADD COLUMN place TEXT")
        for index in QUARANTINE.indexes:
            index.create(self.engine, checkfirst=True)

    def _add_record_shape(self) -> None:
        """The `shape` column, on a records table made before shapes (its records keep whole
        docs: NULL)."""
        columns = {c["name"] for c in inspect(self.engine).get_columns("records")}
        if "shape" not in columns:
            with self._write_lock, self.engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE records ADD COLUMN shape INTEGER")

    def _add_record_indexes(self) -> None:
        """Indexes of `records` added since the table was made, each logged with its duration (it
        reads the whole table once). SQLite: one `CREATE INDEX`, under the write lock (other
        processes wait for it on the database's own lock). PostgreSQL: `CONCURRENTLY`, outside
        any transaction, so the hubs already running on the database go on committing; one left
        invalid by an interrupted build is dropped and built again."""
        have = self._record_index_names()
        invalid = set() if self.is_sqlite else self._invalid_indexes()
        for index in RECORDS.indexes:
            if index.name in have and index.name not in invalid:
                continue
            started = time.perf_counter()
            log.info("adding index %s to records (once; reads the whole table)", index.name)
            if self.is_sqlite:
                with self._write_lock:
                    index.create(self.engine)
            else:
                ddl = str(CreateIndex(index).compile(dialect=self.engine.dialect))
                ddl = ddl.replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)
                with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    if index.name in invalid:
                        conn.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {index.name}")
                    conn.exec_driver_sql(ddl)
            log.info("index %s added in %.1f s", index.name, time.perf_counter() - started)

    def _record_index_names(self) -> set[str]:
        """The names of `records`' indexes, expression indexes too (which SQLAlchemy's
        reflection skips)."""
        sql = (
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records'"
            if self.is_sqlite
            else "SELECT indexname FROM pg_indexes WHERE tablename = 'records' "
            "AND schemaname = current_schema()"
        )
        with self.engine.connect() as conn:
            return {r[0] for r in conn.exec_driver_sql(sql)}

    def _invalid_indexes(self) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = 'records'::regclass AND NOT i.indisvalid"
            ).all()
        return {r[0] for r in rows}

    def _count_once(self) -> None:
        """The record counters (`counts.py`) of a store that held records before them: one
        grouped read of the whole table, under the write lock, logged with its duration; a new
        store's start at zero. Done once (a checkpoint says so)."""
        if (self.get_checkpoint(*_COUNTS_CHECKPOINT) or {}).get("done"):
            return
        with self.write() as conn:
            top = self._top_seq(conn)
            if top:
                started = time.perf_counter()
                log.warning("counting the stored records once, for the dashboard's counters")
                self._count_all_once(conn)
                log.warning("records counted in %.1f s", time.perf_counter() - started)
            self.put_checkpoint(conn, *_COUNTS_CHECKPOINT, {"done": True}, now_z_ms())

    def _migrate_v1(self) -> None:
        """A records table of the first layout (a column per record field, no `doc`) is set
        aside as `records_v1` (a plain copy) in one transaction, so that `create_all` makes the
        current one; `_copy_v1` then moves the records over with their seq, batch by batch (an
        interrupted move resumes where it stopped)."""
        names = inspect(self.engine).get_table_names()
        if "records" in names:
            columns = {c["name"] for c in inspect(self.engine).get_columns("records")}
            if "doc" not in columns:
                log.warning("records table of the first layout: moving it to the current one")
                with self._write_lock, self.engine.begin() as conn:
                    conn.exec_driver_sql("CREATE TABLE records_v1 AS SELECT * FROM records")
                    conn.exec_driver_sql("DROP TABLE records")
                names.append("records_v1")
        self._v1_rows = "records_v1" in names

    def _copy_v1(self) -> None:
        old = Table("records_v1", MetaData(), autoload_with=self.engine)
        fields = [old.c[n] for n in RECORD_FIELDS]
        after = self.max_seq()
        while True:
            with self._write_lock, self.engine.begin() as conn:
                rows = conn.execute(
                    select(old.c.seq, old.c.committed_at, *fields)
                    .where(old.c.seq > after)
                    .order_by(old.c.seq)
                    .limit(5000)
                ).all()
                if not rows:
                    conn.exec_driver_sql("DROP TABLE records_v1")
                    if not self.is_sqlite:  # explicit seqs do not move the serial's sequence
                        conn.exec_driver_sql(
                            "SELECT setval(pg_get_serial_sequence('records', 'seq'), "
                            "(SELECT coalesce(max(seq), 0) + 1 FROM records), false)"
                        )
                    return
                out = []
                for seq, committed_at, *values in rows:
                    rec = dict(zip(RECORD_FIELDS, values, strict=True))
                    for name in JSON_FIELDS:
                        rec[name] = orjson.loads(rec[name])
                    if rec["within_geofence"] is not None:
                        rec["within_geofence"] = bool(rec["within_geofence"])
                    out.append(
                        {"seq": seq, **dict(zip(INSERT_COLUMNS, record_to_tuple(
                            Record.from_dict(rec), committed_at), strict=True))}
                    )  # fmt: skip
                conn.execute(RECORDS.insert(), out)
                after = rows[-1][0]

    def _time_ordered_ids(self) -> None:
        """Records stored before ids were time-ordered (`record_id`) carry the UUIDv5 of their
        identity key: each gets the time-ordered id of the same key (the key's device, credential,
        wall-clock second and punch are all in the record, and its UUIDv5 must be the stored id),
        in `doc` too, keeping its seq. A record whose id is the
        UUIDv5 of an identity of its own (a payload hash, a reader's receipt) keeps it, as such
        punches still get. Batch by batch, resumable; done once (a checkpoint says so)."""
        state = self.get_checkpoint(*_IDS_CHECKPOINT) or {}
        if state.get("done"):
            return
        after = int(state.get("after", 0))
        moved = 0
        while True:
            with self.write() as conn:
                rows = conn.execute(
                    select(RECORDS.c.seq, RECORDS.c.id, RECORDS.c.doc)
                    .where(RECORDS.c.seq > after, RECORDS.c.shape.is_(None))
                    .order_by(RECORDS.c.seq)
                    .limit(5000)
                ).all()
                updates = [u for u in map(_time_ordered_row, rows) if u is not None]
                if updates and not moved:
                    log.warning(
                        "moving stored records to time-ordered ids (once; about 30 s a million "
                        "records on SQLite)"
                    )
                if updates:
                    conn.execute(
                        RECORDS.update()
                        .where(RECORDS.c.seq == bindparam("s"))
                        .values(id=bindparam("i"), doc=bindparam("d")),
                        updates,
                    )
                    for ref in self._record_refs:  # tables that name records by seq and id
                        seq_col, id_col = (ref.c[n] for n in ref.info["record_ref"])
                        conn.execute(
                            ref.update()
                            .where(seq_col == bindparam("s"))
                            .values({id_col: bindparam("i")}),
                            [{"i": u["i"], "s": u["s"]} for u in updates],
                        )
                    moved += len(updates)
                after = rows[-1][0] if rows else after
                value = {"after": after} if rows else {"done": True, "moved": moved}
                self.put_checkpoint(conn, *_IDS_CHECKPOINT, value, now_z_ms())
            if not rows:
                if moved:
                    log.warning("%d stored records moved to time-ordered ids", moved)
                return

    _v1_rows = False
    _record_refs: list[Table] = []


def _time_ordered_row(row: Any) -> dict[str, Any] | None:
    """(seq, id, doc) of a record whose id is the UUIDv5 of its identity key → the UPDATE's
    parameters for its time-ordered id; None for any other record."""
    seq, rid, doc = row
    if len(rid) != 36 or rid[14] != "5":
        return None
    rec = orjson.loads(doc)
    wall = (rec.get("local_time") or "")[:19]
    if len(wall) != 19:
        return None
    who = credential(rec.get("source_user_id"), rec.get("card"))
    key = identity_key(str(rec.get("device_id")), who, wall, str(rec.get("punch")))
    if record_id(key) != rid:
        return None
    new = record_id(key, wall)
    head = '{"id":"' + rid + '"'
    if doc.startswith(head):  # as record_doc renders it: splice, the rest stays byte for byte
        text_ = '{"id":"' + new + doc[len(head) - 1 :]
    else:
        text_ = dumps({**rec, "id": new})
    return {"s": seq, "i": new, "d": text_}
