"""The durable store: records, quarantine, checkpoints and device health.

SQLite (WAL) by default, PostgreSQL by URL. Writes are serialised, so the records' `seq` is the
commit order: a feed cursor on `seq` never skips a record that committed late, and the forwarder's
outbox is simply "records with seq above the forward cursor" — queued in the same transaction as
the record by construction.
"""

from __future__ import annotations

import operator
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
    Text,
    and_,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel

from .record import RECORD_FIELDS, Record, Rejection

JSON_FIELDS = ("flags", "source", "raw")
_PAGE_ORDER = ("seq", *RECORD_FIELDS)  # `records_page` keys, in the order `records()` gives


_REAL_FIELDS = ("clock_skew_s", "latitude", "longitude", "distance_m")


def _sqlite_json_value(name: str) -> str:
    if name in JSON_FIELDS:
        return f"json({name})"
    if name in _REAL_FIELDS:  # 17 significant digits: the exact double (json_object keeps 15)
        return f"CASE WHEN {name} IS NULL THEN NULL ELSE json(printf('%!.17g', {name})) END"
    if name == "within_geofence":
        return (
            "CASE WHEN within_geofence IS NULL THEN NULL WHEN within_geofence THEN json('true')"
            " ELSE json('false') END"
        )
    return name


#: SQLite renders a record's canonical JSON itself (json_object), with or without its seq.
_SQLITE_JSON = (
    "json_object(" + ", ".join(f"'{n}', {_sqlite_json_value(n)}" for n in RECORD_FIELDS) + ")"
)
_SQLITE_JSON_WITH_SEQ = (
    "json_object('seq', seq, "
    + ", ".join(f"'{n}', {_sqlite_json_value(n)}" for n in RECORD_FIELDS)
    + ")"
)


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
    source_user_id: str | None = None
    card: str | None = None
    punch: str
    verify: str
    occurred_at: str
    local_time: str
    timezone: str
    received_at: str
    clock_skew_s: float | None = None
    device_id: str
    device_kind: str
    device_serial: str | None = None
    office_id: str
    office_state: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    location_source: str | None = None
    distance_m: float | None = None
    within_geofence: bool | None = None
    flags: str = "[]"
    source: str = "{}"
    raw: str = "null"
    schema_version: int = 1
    committed_at: str


class QuarantineRow(SQLModel, table=True):
    __tablename__ = "quarantine"
    qid: int | None = Field(default=None, primary_key=True)
    created_at: str
    device_id: str | None = Field(default=None, index=True)
    source: str = "{}"
    reason: str
    raw: str = "null"
    status: str = Field(default="open", index=True)  # open | replayed | discarded
    resolved_at: str | None = None
    resolution: str | None = None


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


def _sql_literal(value: Any) -> str:
    """A constant as an SQL literal (only plain values; strings quoted the standard way)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str) and "\0" not in value:
        return "'" + value.replace("'", "''") + "'"
    raise ValueError(f"not a plain SQL constant: {value!r}")


def record_to_row(rec: Record, committed_at: str) -> dict[str, Any]:
    row = {name: getattr(rec, name) for name in RECORD_FIELDS}
    for name in JSON_FIELDS:
        row[name] = dumps(row[name])
    row["committed_at"] = committed_at
    return row


INSERT_COLUMNS: tuple[str, ...] = (*RECORD_FIELDS, "committed_at")
_JSON_AT = tuple(i for i, name in enumerate(RECORD_FIELDS) if name in JSON_FIELDS)


_record_values = operator.attrgetter(*RECORD_FIELDS)


def record_to_tuple(rec: Record, committed_at: str) -> tuple[Any, ...]:
    """A record as the INSERT's parameter tuple (columns in INSERT_COLUMNS order)."""
    values = list(_record_values(rec))
    for i in _JSON_AT:
        values[i] = dumps(values[i])
    values.append(committed_at)
    return tuple(values)


def row_to_dict(row: Any) -> dict[str, Any]:
    """A stored row → the canonical record dict (plus `seq`)."""
    out: dict[str, Any] = {"seq": row["seq"]}
    for name in RECORD_FIELDS:
        value = row[name]
        if name in JSON_FIELDS:
            value = orjson.loads(value)
        elif name == "within_geofence" and value is not None:
            value = bool(value)
        out[name] = value
    return out


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
                cur.close()

        self._write_lock = threading.Lock()
        mark = "?" if self.is_sqlite else "%s"
        self._insert_sql = (
            f"INSERT INTO records ({', '.join(INSERT_COLUMNS)}) "
            f"VALUES ({', '.join(mark for _ in INSERT_COLUMNS)}) ON CONFLICT (id) DO NOTHING"
        )
        self._page_sql_cache: dict[tuple[str, ...], str] = {}

    # -- schema ------------------------------------------------------------------------------
    def create_all(self) -> None:
        from .adapters import registry  # adapters may define tables of their own

        registry.load_builtin()
        from .forward import tables as _forward_tables  # noqa: F401  (dead letters)

        SQLModel.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

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
        existing: set[str] = set()
        ids = list(unique)
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            existing.update(
                conn.execute(select(RECORDS.c.id).where(RECORDS.c.id.in_(chunk))).scalars()
            )
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
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        constants: Mapping[str, Any] | None = None,
        rejections: Sequence[Rejection] = (),
        checkpoints: Mapping[tuple[str, str], Any] | None = None,
    ) -> BulkResult:
        """The bulk path (file imports). `rows` are tuples of `columns` (record fields, the JSON
        ones already serialised), best sorted by id; `constants` are columns with one value for
        every row (written as SQL literals, so they are not bound a million times). One
        transaction with the quarantine and the checkpoints, like `commit`. `INSERT ... ON
        CONFLICT (id) DO NOTHING` through the driver's executemany: a duplicate costs one index
        probe and is counted from the driver's change count."""
        result = BulkResult()
        now = _now()
        consts = {"committed_at": now, **(constants or {})}
        unknown = (set(columns) | set(consts)) - set(BULK_COLUMNS)
        if unknown:
            raise ValueError(f"not record columns: {sorted(unknown)}")
        mark = "?" if self.is_sqlite else "%s"
        names = [*columns, *consts]
        values = [mark] * len(columns) + [_sql_literal(v) for v in consts.values()]
        sql = (
            f"INSERT INTO records ({', '.join(names)}) VALUES ({', '.join(values)}) "
            "ON CONFLICT (id) DO NOTHING"
        )
        with self.write() as conn:
            if rows:
                dbapi: Any = conn.connection.driver_connection
                cur = dbapi.cursor()
                try:
                    if self.is_sqlite:
                        # a bigger page cache for this connection: index pages of a large chunk
                        # are not spilled and rewritten mid-transaction
                        cur.execute("PRAGMA cache_size=-32768")
                        before = dbapi.total_changes
                        cur.executemany(sql, rows)
                        result.new = dbapi.total_changes - before
                    else:
                        cur.executemany(sql, rows)
                        result.new = max(cur.rowcount, 0)
                finally:
                    cur.close()
                result.duplicate = len(rows) - result.new
            result.quarantined = self._quarantine_and_checkpoint(conn, rejections, checkpoints, now)
        return result

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are stored already (a re-import skips building those records).
        One query per call: a JSON array of ids on SQLite, an array parameter on PostgreSQL."""
        if not ids:
            return set()
        with self.engine.connect() as conn:
            dbapi: Any = conn.connection.driver_connection
            cur = dbapi.cursor()
            try:
                if self.is_sqlite:
                    cur.execute(
                        "SELECT r.id FROM json_each(?) AS j JOIN records AS r ON r.id = j.value",
                        (orjson.dumps(list(ids)).decode(),),
                    )
                else:
                    cur.execute("SELECT id FROM records WHERE id = ANY(%s)", (list(ids),))
                return {row[0] for row in cur.fetchall()}
            finally:
                cur.close()

    def _quarantine(self, conn: Connection, rejections: Sequence[Rejection], now: str) -> list[int]:
        qids = []
        for rej in rejections:
            res = conn.execute(
                QUARANTINE.insert().values(
                    created_at=now,
                    device_id=rej.device_id,
                    source=dumps(rej.source),
                    reason=rej.reason,
                    raw=dumps(_jsonable_raw(rej.raw)),
                    status="open",
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
        """Records with seq > after, in commit order."""
        stmt = (
            select(RECORDS)
            .where(RECORDS.c.seq > after, *self._filtered(flt))
            .order_by(RECORDS.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [row_to_dict(r) for r in conn.execute(stmt).mappings()]

    def records_page(
        self, after: int = 0, limit: int = 1000, flt: RecordFilter | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """The same page as `records()` for serialising with orjson: the stored JSON text columns
        come back as `orjson.Fragment`s (spliced into the output as stored, never parsed), rows are
        read through the DB-API cursor. Returns (records, last seq or `after`). The API's fast
        path; `records()` stays the reference."""
        sql, params = self._page_sql(after, limit, flt)
        with self.engine.connect() as conn:
            cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cur.execute(sql, params)
                rows = cur.fetchall()
            finally:
                cur.close()
        if not rows:
            return [], after
        fragment = orjson.Fragment
        names = _PAGE_ORDER
        out = []
        for row in rows:
            rec = dict(zip(names, row, strict=True))
            geo = rec["within_geofence"]
            if geo is not None:
                rec["within_geofence"] = bool(geo)
            rec["flags"] = fragment(rec["flags"])
            rec["source"] = fragment(rec["source"])
            rec["raw"] = fragment(rec["raw"])
            out.append(rec)
        return out, int(rows[-1][0])

    def records_json(
        self,
        after: int = 0,
        limit: int = 1000,
        flt: RecordFilter | None = None,
        with_seq: bool = True,
    ) -> tuple[list[tuple[int, str, bytes]], int]:
        """A page as (seq, id, the record's JSON) in commit order, plus the last seq (or `after`).
        The feed, the event stream and the forwarder serve these bytes as they are. On SQLite the
        database renders the JSON itself (`json_object`, in C); elsewhere the stored JSON columns
        are spliced in without being parsed."""
        if not self.is_sqlite:
            rows, last = self.records_page(after, limit, flt)
            if not with_seq:  # the tuple keeps the seq, the JSON does not (left-to-right)
                return [(r.pop("seq"), r["id"], orjson.dumps(r)) for r in rows], last
            return [(r["seq"], r["id"], orjson.dumps(r)) for r in rows], last
        select = _SQLITE_JSON_WITH_SEQ if with_seq else _SQLITE_JSON
        sql, params = self._page_sql(after, limit, flt, f"seq, id, {select}")
        with self.engine.connect() as conn:
            cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cur.execute(sql, params)
                found: list[Any] = list(cur.fetchall())
            finally:
                cur.close()
        out = [(int(seq), rid, text.encode()) for seq, rid, text in found]
        return out, (out[-1][0] if out else after)

    def _page_sql(
        self, after: int, limit: int, f: RecordFilter | None, columns: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Hand-written keyset SQL for `records_page` (cached per filter shape: no per-call
        SQLAlchemy compilation on the hot path)."""
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
        select_list = columns or ", ".join(_PAGE_ORDER)
        shape = (select_list, *sorted(params))
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
                f"SELECT {select_list} FROM records WHERE {' AND '.join(conds)} "
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
            row = conn.execute(select(RECORDS).where(RECORDS.c.id == record_id)).mappings().first()
        return row_to_dict(row) if row else None

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


def _quarantine_dict(r: Any) -> dict[str, Any]:
    d = dict(r)
    d["source"] = orjson.loads(d["source"] or "{}")
    d["raw"] = orjson.loads(d["raw"] or "null")
    return d


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
    "record_to_row",
    "or_",
]
