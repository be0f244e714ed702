"""The durable store: records, quarantine, checkpoints and device health.

SQLite (WAL) by default, PostgreSQL by URL. Writes are serialised, so the records' `seq` is the
commit order: a feed cursor on `seq` never skips a record that committed late, and the forwarder's
outbox is simply "records with seq above the forward cursor" — queued in the same transaction as
the record by construction.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlmodel import Field, SQLModel

from ..record import (
    RECORD_FIELDS,
    Record,
    Rejection,
    credential,
    identity_key,
    plain_strings,
    record_id,
)
from .shapes import JSON_FIELDS, SHAPES, Columns, Shapes, layout, lengths, shape_of, varying_texts

log = logging.getLogger(__name__)

#: The records table keeps the columns the feed filters on next to `doc`: a live record's canonical
#: JSON text, rendered once when it is committed, or a bulk record's own fields for its shape
#: (`shapes.py`). Pages, streams and forwarded batches are spliced from stored text, never
#: encoded again.
INSERT_COLUMNS: tuple[str, ...] = (
    "id", "employee_id", "device_id", "office_id", "occurred_at", "flags", "committed_at", "doc",
)  # fmt: skip
#: The bulk path's: `doc` holds the varying fields of the record's shape (`shapes.py`).
BULK_INSERT_COLUMNS: tuple[str, ...] = (*INSERT_COLUMNS, "shape")


def in_process_memory(url: str) -> bool:
    """An SQLite database only this process can see."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return False
    return u.database in (None, "", ":memory:") or "mode=memory" in str(u)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return str(value)


def dumps(value: Any) -> str:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


# --- tables -----------------------------------------------------------------------------------


class RecordRow(SQLModel, table=True):
    __tablename__ = "records"
    __table_args__ = (
        Index("ix_records_occurred_at", "occurred_at"),
        {"sqlite_autoincrement": True},
    )
    seq: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    id: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    employee_id: str | None = None
    device_id: str
    office_id: str
    occurred_at: str
    flags: str = "[]"
    committed_at: str
    doc: str = Field(sa_column=Column(Text, nullable=False))
    # NULL: `doc` is the whole JSON; else the id of the record's shape (see `shapes.py`)
    shape: int | None = None


class QuarantineRow(SQLModel, table=True):
    __tablename__ = "quarantine"
    # finds the item a file row's rejection repeats (see Store._quarantine); column and index
    # are added to databases created before them too (`create_all`)
    __table_args__ = (Index("ix_quarantine_device_place", "device_id", "place"),)
    qid: int | None = Field(default=None, primary_key=True)
    created_at: str
    device_id: str | None = Field(default=None, index=True)
    source: str = "{}"
    reason: str
    raw: str = "null"
    status: str = Field(default="open", index=True)  # open | replayed | discarded
    resolved_at: str | None = None
    resolution: str | None = None
    place: str | None = None  # a file row's file, sheet and line (None for live input)


class CheckpointRow(SQLModel, table=True):
    __tablename__ = "checkpoints"
    scope: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    value: str
    updated_at: str


class DeviceHealthRow(SQLModel, table=True):
    __tablename__ = "device_health"
    device_id: str = Field(primary_key=True)
    kind: str
    office_id: str | None = None
    state: str = "UNKNOWN"  # UNKNOWN | UP | DEGRADED | DOWN | DISABLED
    last_seen: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    consecutive_failures: int = 0
    counters: str = "{}"
    detail: str = "{}"
    updated_at: str


RECORDS = RecordRow.__table__  # type: ignore[attr-defined]
QUARANTINE = QuarantineRow.__table__  # type: ignore[attr-defined]
CHECKPOINTS = CheckpointRow.__table__  # type: ignore[attr-defined]
HEALTH = DeviceHealthRow.__table__  # type: ignore[attr-defined]
#: The store's own tables (the other parts' come through `create_all`).
OWN_TABLES = (RECORDS, QUARANTINE, CHECKPOINTS, HEALTH, SHAPES)


@dataclass(slots=True)
class CommitResult:
    new: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)


@dataclass(slots=True)
class BulkResult:
    new: int = 0
    duplicate: int = 0
    quarantined: list[int] = field(default_factory=list)


#: Columns `Store.bulk_insert` accepts.
BULK_COLUMNS: tuple[str, ...] = (*RECORD_FIELDS, "committed_at")


def record_doc(rec: Record) -> str:
    """The record's canonical JSON text (fields in `RECORD_FIELDS` order), as stored and served
    (orjson serialises the dataclass itself, in field order)."""
    return dumps(rec)


def record_to_tuple(rec: Record, committed_at: str) -> tuple[Any, ...]:
    """A record as the INSERT's parameter tuple (columns in INSERT_COLUMNS order)."""
    return (
        rec.id, rec.employee_id, rec.device_id, rec.office_id, rec.occurred_at, dumps(rec.flags),
        committed_at, record_doc(rec),
    )  # fmt: skip


def row_to_dict(seq: int, doc: str | bytes) -> dict[str, Any]:
    """A stored (seq, doc) → the canonical record dict plus `seq`."""
    return {"seq": int(seq), **orjson.loads(doc)}


def _has_rows(parts: Sequence[Columns]) -> bool:
    return any(n for part in parts for n in lengths(part))


def _bulk_values(
    columns: Columns,
    fields: list[tuple[str, tuple[str, ...] | None]],
    consts: Mapping[str, Any],
    now: str,
    seen: list[int],
    shape: int,
) -> list[Any]:
    """One slice of `bulk_insert` → its rows' BULK_INSERT_COLUMNS values, row after row in one
    flat list (each column set in with one slice assignment), for records of one shape whose
    varying `fields` are the slice's columns; adds the slice's length to `seen[0]`."""
    unknown = set(columns) - set(BULK_COLUMNS)
    if unknown:
        raise ValueError(f"not record columns: {sorted(unknown)}")
    sizes = lengths(columns)
    if len(sizes) > 1:
        raise ValueError(f"columns of different lengths: {sorted(sizes)}")
    n = sizes.pop() if sizes else 0
    if n and "id" not in columns:
        raise ValueError("bulk_insert needs an id column")
    if n and layout(columns) != fields:
        raise ValueError("the slices of one bulk_insert must have the same columns")
    ids = columns.get("id")
    if n and (isinstance(ids, Mapping) or not plain_strings(ids or ())):  # quoted in the shape
        raise ValueError("record ids must be printable ASCII text without quotes")
    seen[0] += n
    width = len(BULK_INSERT_COLUMNS)
    flat: list[Any] = [None] * (n * width)
    for k, name in enumerate(INSERT_COLUMNS[:6]):
        col = columns.get(name)
        if col is not None and not isinstance(col, Mapping):
            flat[k::width] = col
        else:
            flat[k::width] = [consts.get(name, "[]" if name == "flags" else None)] * n
    flat[6::width] = [now] * n
    flat[7::width] = list(varying_texts(columns, n))
    flat[8::width] = [shape] * n
    return flat


#: Rows per statement on the bulk path. One statement per row costs more than the row's own
#: B-tree work: the driver's per-execution overhead, and on SQLite the AUTOINCREMENT bookkeeping
#: that every statement reads and writes back. 100 rows of 9 values stay under the 999 bound
#: parameters of older SQLite builds. A 1M-row import into SQLite measured 21 % faster.
ROWS_PER_INSERT = 100


def _blocks(slices: Iterable[list[Any]], size: int, tail: list[Any]) -> Iterator[tuple[Any, ...]]:
    """Flat value lists → parameter tuples of `size` values each (made as the driver consumes
    them); the last values, fewer than `size`, are left in `tail`."""
    carry: list[Any] = []
    for flat in slices:
        if carry:
            flat = carry + flat
        full = len(flat) - len(flat) % size
        for i in range(0, full, size):
            yield tuple(flat[i : i + size])
        carry = flat[full:]
    tail.extend(carry)


# --- the store --------------------------------------------------------------------------------


@dataclass(slots=True)
class RecordFilter:
    office_id: str | None = None
    employee_id: str | None = None
    device_id: str | None = None
    since: str | None = None  # occurred_at >= (UTC, RFC 3339 Z)
    until: str | None = None  # occurred_at <
    flag: str | None = None


class Store:
    """Thread-safe: one writer at a time (a lock), readers in parallel."""

    def __init__(
        self, url: str, sqlite_synchronous: str = "FULL", echo: bool = False, cache_mb: int = 32
    ):
        self.url = url
        self.sqlite_synchronous = sqlite_synchronous
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            sync = sqlite_synchronous

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.execute(f"PRAGMA cache_size=-{int(cache_mb) * 1024}")
                if self._checkpointer is not None:
                    cur.execute("PRAGMA wal_autocheckpoint=0")
                cur.close()

        self._checkpointer: threading.Thread | None = None
        self._checkpoint_stop = threading.Event()
        self._write_lock = threading.Lock()
        self._page_sql_cache: dict[tuple[str, ...], str] = {}
        self._rows_sql_cache: dict[tuple[int, tuple[str, ...]], str] = {}
        self._insert_sql = self._insert_rows_sql(1, INSERT_COLUMNS)  # the live path's
        self.shapes = Shapes(self.engine)

    # -- schema ------------------------------------------------------------------------------
    def create_all(self, tables: Iterable[Table] = ()) -> None:
        """Create the store's tables and `tables` (those the other parts bring: the composition
        root passes them), and bring an older layout up to date. A table whose rows name records
        by seq and id says so in `Table.info["record_ref"]` (its seq and id columns): when record
        ids move, its ids move with them."""
        extra = list(tables)
        self._record_refs = [t for t in extra if "record_ref" in t.info]
        self._migrate_v1()
        SQLModel.metadata.create_all(self.engine, tables=[*OWN_TABLES, *extra])
        self._add_quarantine_place()
        self._add_record_shape()
        if self._v1_rows:
            self._copy_v1()
        self._time_ordered_ids()

    _v1_rows = False
    _record_refs: list[Table] = []

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
                self._set_checkpoint(conn, *_IDS_CHECKPOINT, value, _now())
            if not rows:
                if moved:
                    log.warning("%d stored records moved to time-ordered ids", moved)
                return

    def close(self) -> None:
        self.background_checkpoints(False)
        self.engine.dispose()

    def background_checkpoints(self, on: bool = True, every_s: float = 1.0) -> None:
        """SQLite: with `on`, commits no longer copy the WAL back into the database themselves
        (with an fsync, every ~4 MB written: a commit stall of up to hundreds of milliseconds);
        a thread does it every `every_s` instead, PASSIVE (it never blocks readers or writers).
        For the long-running hub, so commit latency stays flat under load; `off` restores
        SQLite's automatic checkpoints."""
        if not self.is_sqlite or on == (self._checkpointer is not None):
            return
        if on:
            self._checkpoint_stop.clear()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, args=(every_s,), daemon=True,
                name="spotme-wal-checkpoint",
            )  # fmt: skip
            self._checkpointer.start()
        elif self._checkpointer is not None:
            self._checkpoint_stop.set()
            self._checkpointer.join(10)
            self._checkpointer = None
        self.engine.dispose()  # pooled connections reconnect with the setting

    def _checkpoint_loop(self, every_s: float) -> None:
        """On a connection of its own with a 256 KB page cache: a checkpoint copies WAL frames to
        the database file and needs no cache (a pooled connection would grow one of `cache_mb`
        in a process that only writes, such as an import's writer)."""
        path = self.engine.url.database
        if not path or in_process_memory(self.url):
            return  # a database of this process only: no WAL to copy back
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        try:
            conn.execute("PRAGMA cache_size=-256")
            while not self._checkpoint_stop.wait(every_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception as exc:  # noqa: BLE001 - keep trying; commits are unaffected
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()

    def wal_autocheckpoint(self) -> int:
        """The setting a new connection gets (0 while background checkpoints run)."""
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True

    # -- writing -----------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One serialised write transaction (commit order = seq order, also on PostgreSQL)."""
        with self._write_lock, self.engine.begin() as conn:
            if not self.is_sqlite:
                conn.execute(text("LOCK TABLE records IN EXCLUSIVE MODE"))
            yield conn

    def _insert(self, table: Any) -> Any:
        return (sqlite_insert if self.is_sqlite else pg_insert)(table)

    def commit(
        self,
        records: Sequence[Record] = (),
        rejections: Sequence[Rejection] = (),
        checkpoints: Mapping[tuple[str, str], Any] | None = None,
    ) -> CommitResult:
        """Insert records idempotently (by id), quarantine rejections and move checkpoints, in one
        transaction. Returns which ids were new and which were already stored."""
        result = CommitResult()
        now = _now()
        with self.write() as conn:
            self._commit_records(conn, records, now, result)
            result.quarantined = self._quarantine_and_checkpoint(conn, rejections, checkpoints, now)
        return result

    def _quarantine_and_checkpoint(
        self,
        conn: Connection,
        rejections: Sequence[Rejection],
        checkpoints: Mapping[tuple[str, str], Any] | None,
        now: str,
    ) -> list[int]:
        """The rest of a commit: quarantine what was rejected (their ids), move the checkpoints."""
        quarantined = self._quarantine(conn, rejections, now) if rejections else []
        for (scope, key), value in (checkpoints or {}).items():
            self._set_checkpoint(conn, scope, key, value, now)
        return quarantined

    def _commit_records(
        self, conn: Connection, records: Sequence[Record], now: str, result: CommitResult
    ) -> None:
        if not records:
            return
        unique: dict[str, Record] = {}
        for rec in records:
            if rec.id in unique:
                result.duplicate.append(rec.id)
            else:
                unique[rec.id] = rec
        existing = self._existing(conn, list(unique))
        rows = []
        for rid, rec in unique.items():
            if rid in existing:
                result.duplicate.append(rid)
            else:
                rows.append(record_to_tuple(rec, now))
                result.new.append(rid)
        if rows:
            # The DBAPI directly: SQLAlchemy's per-row parameter processing costs more than the
            # insert itself. ON CONFLICT is a safety net (another hub on the same PostgreSQL).
            conn.exec_driver_sql(self._insert_sql, rows)

    def bulk_insert(
        self,
        columns: Columns | Iterable[Columns],
        constants: Mapping[str, Any] | None = None,
        rejections: Sequence[Rejection] = (),
        checkpoints: Mapping[tuple[str, str], Any] | None = None,
    ) -> BulkResult:
        """The bulk path (file imports). `columns` maps record fields to their values, one per
        record (the JSON ones already serialised, or an object field as a mapping of its members'
        values), best sorted by id; or it is an iterable of such mappings, slices of one batch
        taken one at a time (only one need be in memory).
        `constants` are fields with one value for every record (JSON ones serialised too); fields
        in neither are null (flags `[]`). The records are stored with one shape (`shapes.py`):
        what the constants make common is stored once. One transaction with the quarantine and
        the checkpoints, like `commit`. `INSERT ... ON CONFLICT (id) DO NOTHING`, 100 rows a
        statement: a duplicate costs one index probe and is counted from the change count."""
        result = BulkResult()
        now = _now()
        consts = dict(constants or {})
        unknown = set(consts) - set(BULK_COLUMNS)
        if unknown:
            raise ValueError(f"not record columns: {sorted(unknown)}")
        consts.pop("committed_at", None)
        parts = iter([columns] if isinstance(columns, Mapping) else columns)
        lead: list[Columns] = []
        for part in parts:  # up to the first slice with rows: its columns are the varying fields
            lead.append(part)
            if _has_rows([part]):
                break
        fields = layout(lead[-1]) if lead else []
        fmt = shape_of(fields, consts)
        seen = [0]
        with self.write() as conn:
            shape = Shapes.id_for(conn, fmt) if _has_rows(lead) else 0
            width = len(BULK_INSERT_COLUMNS)
            tail: list[Any] = []
            blocks = _blocks(
                (
                    _bulk_values(part, fields, consts, now, seen, shape)
                    for part in itertools.chain(lead, parts)
                ),
                ROWS_PER_INSERT * width,
                tail,
            )
            # both drivers count an executemany's inserted rows (a conflict inserts none)
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cur.executemany(self._insert_rows_sql(ROWS_PER_INSERT), blocks)
                result.new = max(cur.rowcount, 0)
                if tail:
                    cur.execute(self._insert_rows_sql(len(tail) // width), tail)
                    result.new += max(cur.rowcount, 0)
            finally:
                cur.close()
            result.duplicate = seen[0] - result.new
            result.quarantined = self._quarantine_and_checkpoint(conn, rejections, checkpoints, now)
        return result

    def _insert_rows_sql(self, n: int, columns: tuple[str, ...] = BULK_INSERT_COLUMNS) -> str:
        """`INSERT … VALUES (…), (…) … ON CONFLICT (id) DO NOTHING` for n rows at once."""
        sql = self._rows_sql_cache.get((n, columns))
        if sql is None:
            mark = "?" if self.is_sqlite else "%s"
            one = f"({', '.join(mark for _ in columns)})"
            sql = self._rows_sql_cache[n, columns] = (
                f"INSERT INTO records ({', '.join(columns)}) "
                f"VALUES {', '.join(itertools.repeat(one, n))} ON CONFLICT (id) DO NOTHING"
            )
        return sql

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are stored already (a re-import skips building those records)."""
        if not ids:
            return set()
        with self.engine.connect() as conn:
            return self._existing(conn, ids)

    def _existing(self, conn: Connection, ids: Sequence[str]) -> set[str]:
        """One query through the DB-API: on SQLite a JSON array of ids in and one of the known
        ones out (one row: fetching a row per id cost two to four times the lookups); on
        PostgreSQL an array parameter."""
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if self.is_sqlite:  # in key order: the index is walked forwards, not at random
                cur.execute(
                    "SELECT json_group_array(r.id) FROM json_each(?) AS j "
                    "JOIN records AS r ON r.id = j.value",
                    (orjson.dumps(sorted(ids)).decode(),),
                )
                return set(orjson.loads(cur.fetchone()[0]))
            cur.execute("SELECT id FROM records WHERE id = ANY(%s)", (list(ids),))
            return {row[0] for row in cur.fetchall()}
        finally:
            cur.close()

    def _quarantine(self, conn: Connection, rejections: Sequence[Rejection], now: str) -> list[int]:
        """Each live arrival is an item of its own (a resent request, a repeated message); a row
        of a file (a source naming its file and line) is one item however often the file is
        read: the same row rejected again for the same reason (an import run again after a crash
        or with `--force`) is the item already there, open or resolved, and its qid is returned,
        so a re-import neither doubles the quarantine nor brings back what an admin discarded."""
        qids = []
        for rej in rejections:
            raw = dumps(_jsonable_raw(rej.raw))
            place = _place(rej.source)
            if place is not None:
                q = QUARANTINE.c
                same = conn.execute(
                    select(q.qid)
                    .where(q.device_id == rej.device_id, q.place == place)
                    .where(q.reason == rej.reason, q.raw == raw)
                    .limit(1)
                ).scalar()
                if same is not None:
                    qids.append(int(same))
                    continue
            res = conn.execute(
                QUARANTINE.insert().values(
                    created_at=now,
                    device_id=rej.device_id,
                    source=dumps(rej.source),
                    reason=rej.reason,
                    raw=raw,
                    status="open",
                    place=place,
                )
            )
            key = res.inserted_primary_key
            assert key is not None
            qids.append(int(key[0]))
        return qids

    def quarantine(self, rejections: Sequence[Rejection]) -> list[int]:
        with self.write() as conn:
            return self._quarantine(conn, rejections, _now())

    # -- checkpoints ---------------------------------------------------------------------------
    def _set_checkpoint(self, conn: Connection, scope: str, key: str, value: Any, now: str) -> None:
        stmt = self._insert(CHECKPOINTS).values(
            scope=scope, key=key, value=dumps(value), updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["scope", "key"], set_={"value": stmt.excluded.value, "updated_at": now}
        )
        conn.execute(stmt)

    def set_checkpoint(self, scope: str, key: str, value: Any) -> None:
        with self.write() as conn:
            self._set_checkpoint(conn, scope, key, value, _now())

    def get_checkpoint(self, scope: str, key: str, default: Any = None) -> Any:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(CHECKPOINTS.c.value).where(
                    and_(CHECKPOINTS.c.scope == scope, CHECKPOINTS.c.key == key)
                )
            ).scalar()
        return default if value is None else orjson.loads(value)

    # -- reading records -----------------------------------------------------------------------
    def _filtered(self, f: RecordFilter | None) -> list[Any]:
        conds: list[Any] = []
        if f is None:
            return conds
        if f.office_id:
            conds.append(RECORDS.c.office_id == f.office_id)
        if f.employee_id:
            conds.append(RECORDS.c.employee_id == f.employee_id)
        if f.device_id:
            conds.append(RECORDS.c.device_id == f.device_id)
        if f.since:
            conds.append(RECORDS.c.occurred_at >= f.since)
        if f.until:
            conds.append(RECORDS.c.occurred_at < f.until)
        if f.flag:
            conds.append(RECORDS.c.flags.like(f'%"{f.flag}"%'))
        return conds

    def records(
        self, after: int = 0, limit: int = 1000, flt: RecordFilter | None = None
    ) -> list[dict[str, Any]]:
        """Records with seq > after, in commit order (dicts, each with its `seq`)."""
        render = self.shapes.render
        rows = self._page(after, limit, flt, "seq, id, doc, shape")
        return [row_to_dict(seq, render(shape, doc, rid)) for seq, rid, doc, shape in rows]

    def records_json(
        self,
        after: int = 0,
        limit: int = 1000,
        flt: RecordFilter | None = None,
        with_seq: bool = True,
    ) -> tuple[list[tuple[int, str, bytes]], int]:
        """A page as (seq, id, the record's JSON) in commit order, plus the last seq (or `after`).
        The feed, the event stream and the forwarder serve these bytes as they are: the stored
        text, with `"seq":N` spliced in front when `with_seq`."""
        rows = self._page(after, limit, flt, "seq, id, doc, shape", raw_text=True)
        render = self.shapes.render_bytes
        if with_seq:
            out = [
                (seq, rid.decode(), b'{"seq":%d,%s' % (seq, render(shape, doc, rid)[1:]))
                for seq, rid, doc, shape in rows
            ]
        else:
            out = [(seq, rid.decode(), render(shape, doc, rid)) for seq, rid, doc, shape in rows]
        return out, (out[-1][0] if out else after)

    def _page(
        self, after: int, limit: int, flt: RecordFilter | None, columns: str, raw_text: bool = False
    ) -> list[Any]:
        """Rows of a page through the DB-API cursor; with `raw_text` text columns come back as
        UTF-8 bytes (served as they are: no decoding and encoding again)."""
        sql, params = self._page_sql(after, limit, flt, columns)
        with self.engine.connect() as conn:
            dbapi: Any = conn.connection.dbapi_connection
            if raw_text and self.is_sqlite:
                dbapi.text_factory = bytes
            cur = dbapi.cursor()
            try:
                cur.execute(sql, params)
                rows = list(cur.fetchall())
            finally:
                cur.close()
                if raw_text and self.is_sqlite:
                    dbapi.text_factory = str
        if raw_text and not self.is_sqlite:
            rows = [(seq, rid.encode(), doc.encode(), *rest) for seq, rid, doc, *rest in rows]
        return rows

    def _page_sql(
        self, after: int, limit: int, f: RecordFilter | None, columns: str
    ) -> tuple[str, dict[str, Any]]:
        """Hand-written keyset SQL for a page (cached per filter shape: no per-call SQLAlchemy
        compilation on the hot path)."""
        params: dict[str, Any] = {"after": after, "limit": limit}
        if f is not None:
            for name, value in (
                ("office_id", f.office_id), ("employee_id", f.employee_id),
                ("device_id", f.device_id), ("since", f.since), ("until", f.until),
            ):  # fmt: skip
                if value:
                    params[name] = value
            if f.flag:
                params["flag"] = f'%"{f.flag}"%'
        shape = (columns, *sorted(params))
        sql = self._page_sql_cache.get(shape)
        if sql is None:
            mark = (lambda n: f":{n}") if self.is_sqlite else (lambda n: f"%({n})s")
            conds = [f"seq > {mark('after')}"]
            ops = {"since": "occurred_at >=", "until": "occurred_at <", "flag": "flags LIKE"}
            for name in shape[1:]:
                if name in ("after", "limit"):
                    continue
                conds.append(f"{ops.get(name, name + ' =')} {mark(name)}")
            sql = (
                f"SELECT {columns} FROM records WHERE {' AND '.join(conds)} "
                f"ORDER BY seq LIMIT {mark('limit')}"
            )
            self._page_sql_cache[shape] = sql
        return sql, params

    def iter_records(
        self, flt: RecordFilter | None = None, page: int = 5000
    ) -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            batch = self.records(after, page, flt)
            if not batch:
                return
            yield from batch
            after = batch[-1]["seq"]

    def count_records(self, flt: RecordFilter | None = None) -> int:
        stmt = select(func.count()).select_from(RECORDS).where(*self._filtered(flt))
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def max_seq(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(RECORDS.c.seq), 0))).scalar_one())

    def get_record(self, record_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(RECORDS.c.seq, RECORDS.c.doc, RECORDS.c.shape).where(
                    RECORDS.c.id == record_id
                )
            ).first()
        return row_to_dict(row[0], self.shapes.render(row[2], row[1], record_id)) if row else None

    def punches_since(self, since_utc: str) -> dict[str, int]:
        """Per-device count of records with occurred_at >= since (for 'punches today')."""
        stmt = (
            select(RECORDS.c.device_id, func.count())
            .where(RECORDS.c.occurred_at >= since_utc)
            .group_by(RECORDS.c.device_id)
        )
        with self.engine.connect() as conn:
            return {d: int(n) for d, n in conn.execute(stmt)}

    # -- quarantine --------------------------------------------------------------------------
    def quarantine_items(
        self,
        status: str | None = "open",
        limit: int = 100,
        device_id: str | None = None,
        after: int = 0,
    ) -> list[dict[str, Any]]:
        conds = [QUARANTINE.c.qid > after]
        if status:
            conds.append(QUARANTINE.c.status == status)
        if device_id:
            conds.append(QUARANTINE.c.device_id == device_id)
        stmt = select(QUARANTINE).where(*conds).order_by(QUARANTINE.c.qid).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_quarantine_dict(r) for r in rows]

    def quarantine_count(self, status: str = "open") -> int:
        stmt = select(func.count()).select_from(QUARANTINE).where(QUARANTINE.c.status == status)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def quarantine_counts_by_device(self) -> dict[str, int]:
        stmt = (
            select(QUARANTINE.c.device_id, func.count())
            .where(QUARANTINE.c.status == "open")
            .group_by(QUARANTINE.c.device_id)
        )
        with self.engine.connect() as conn:
            return {str(d): int(n) for d, n in conn.execute(stmt)}

    def resolve_quarantine(
        self, qid: int, status: str, resolution: str, records: Sequence[Record] = ()
    ) -> CommitResult:
        """Mark an item replayed/discarded, committing the records it produced atomically."""
        result = CommitResult()
        now = _now()
        with self.write() as conn:
            self._commit_records(conn, records, now, result)
            conn.execute(
                QUARANTINE.update()
                .where(QUARANTINE.c.qid == qid)
                .values(status=status, resolution=resolution, resolved_at=now)
            )
        return result

    # -- device health -------------------------------------------------------------------------
    def save_health(self, rows: Iterable[Mapping[str, Any]]) -> None:
        now = _now()
        with self._write_lock, self.engine.begin() as conn:
            for row in rows:
                values = dict(row)
                for name in ("counters", "detail"):
                    if name in values and not isinstance(values[name], str):
                        values[name] = dumps(values[name])
                values["updated_at"] = now
                stmt = self._insert(HEALTH).values(**values)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["device_id"],
                    set_={k: getattr(stmt.excluded, k) for k in values if k != "device_id"},
                )
                conn.execute(stmt)

    def health(self, device_id: str | None = None) -> list[dict[str, Any]]:
        stmt = select(HEALTH).order_by(HEALTH.c.device_id)
        if device_id:
            stmt = stmt.where(HEALTH.c.device_id == device_id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        out = []
        for r in rows:
            d = dict(r)
            d["counters"] = orjson.loads(d["counters"] or "{}")
            d["detail"] = orjson.loads(d["detail"] or "{}")
            out.append(d)
        return out


_IDS_CHECKPOINT = ("schema", "time_ordered_ids")


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


def _quarantine_dict(r: Any) -> dict[str, Any]:
    d = dict(r)
    d.pop("place", None)  # the dedup key, the source says the same
    d["source"] = orjson.loads(d["source"] or "{}")
    d["raw"] = orjson.loads(d["raw"] or "null")
    return d


def _place(source: Mapping[str, Any]) -> str | None:
    """Where a file row is ("file\x1fsheet\x1fline"), which stays the same however often the
    file is read (unlike the rest of its source, e.g. the receive time of a punch read from it)."""
    if "file" not in source or "line" not in source:
        return None
    return "\x1f".join(str(source.get(k, "")) for k in ("file", "sheet", "line"))


def _jsonable_raw(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"hex": bytes(value).hex()}
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        return value
    except TypeError:
        return repr(value)


__all__ = [
    "Store",
    "CommitResult",
    "BulkResult",
    "BULK_COLUMNS",
    "RecordFilter",
    "row_to_dict",
    "record_doc",
    "or_",
]
