"""The store's tables and the one JSON text of a record.

The records table keeps the columns the feed filters on next to `doc`: a live record's canonical
JSON text, rendered once when it is committed, or a bulk record's own fields for its shape
(`shapes.py`). Pages, streams and forwarded batches are spliced from stored text, never encoded
again.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, text
from sqlalchemy.engine import make_url

from ..record import RECORD_FIELDS, Record
from .shapes import SHAPES

INSERT_COLUMNS: tuple[str, ...] = (
    "id", "employee_id", "device_id", "office_id", "occurred_at", "flags", "committed_at", "doc",
)  # fmt: skip

#: The bulk path's: `doc` holds the varying fields of the record's shape (`shapes.py`).
BULK_INSERT_COLUMNS: tuple[str, ...] = (*INSERT_COLUMNS, "shape")
#: Columns `Store.bulk_insert` accepts.
BULK_COLUMNS: tuple[str, ...] = (*RECORD_FIELDS, "committed_at")


def in_process_memory(url: str) -> bool:
    """An SQLite database only this process can see."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return False
    return u.database in (None, "", ":memory:") or "mode=memory" in str(u)


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return str(value)


def dumps(value: Any) -> str:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


_META = MetaData()
#: seq: BIGINT on PostgreSQL, the rowid on SQLite
SEQ = BigInteger().with_variant(Integer, "sqlite")

RECORDS = Table(
    "records", _META,
    Column("seq", SEQ, primary_key=True, autoincrement=True),
    Column("id", Text, nullable=False, unique=True),
    Column("employee_id", String),
    Column("device_id", String, nullable=False),
    Column("office_id", String, nullable=False),
    Column("occurred_at", String, nullable=False),
    Column("flags", String, nullable=False, default="[]"),
    Column("committed_at", String, nullable=False),
    Column("doc", Text, nullable=False),
    # NULL: `doc` is the whole JSON; else the id of the record's shape (see `shapes.py`)
    Column("shape", Integer),
    Index("ix_records_occurred_at", "occurred_at"),
    sqlite_autoincrement=True,
)  # fmt: skip

QUARANTINE = Table(
    "quarantine", _META,
    Column("qid", Integer, primary_key=True),
    Column("created_at", String, nullable=False),
    Column("device_id", String, index=True),
    Column("source", String, nullable=False, default="{}"),
    Column("reason", String, nullable=False),
    Column("raw", String, nullable=False, default="null"),
    Column("status", String, nullable=False, default="open", index=True),  # open | replayed | discarded
    Column("resolved_at", String),
    Column("resolution", String),
    Column("place", String),  # a file row's file, sheet and line (None for live input)
    # finds the item a file row's rejection repeats (see Store._quarantine); column and index
    # are added to databases created before them too (`create_all`)
    Index("ix_quarantine_device_place", "device_id", "place"),
)  # fmt: skip

CHECKPOINTS = Table(
    "checkpoints", _META,
    Column("scope", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("value", String, nullable=False),
    Column("updated_at", String, nullable=False),
)  # fmt: skip

HEALTH = Table(
    "device_health", _META,
    Column("device_id", String, primary_key=True),
    Column("kind", String, nullable=False),
    Column("office_id", String),
    Column("state", String, nullable=False, default="UNKNOWN"),  # UNKNOWN | UP | DEGRADED | DOWN | DISABLED
    Column("last_seen", String),
    Column("last_error", String),
    Column("last_error_at", String),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("counters", String, nullable=False, default="{}"),
    Column("detail", String, nullable=False, default="{}"),
    Column("updated_at", String, nullable=False),
)  # fmt: skip

#: How many records each UTC hour of `occurred_at` holds per device and office, and their first
#: and last seq: kept in the transaction that commits them (`counts.py`). The key is the row
#: (one B-tree, not two); the backlog's index.
RECORD_COUNTS = Table(
    "record_counts", _META,
    Column("hour", String, primary_key=True),  # occurred_at's first 13 characters: YYYY-MM-DDTHH
    Column("device_id", String, primary_key=True),
    Column("office_id", String, primary_key=True),
    Column("n", BigInteger, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Index("ix_record_counts_last_seq", "last_seq"),
    sqlite_with_rowid=False,
)  # fmt: skip

#: Totals of the records: scope `all` (key ''), `device`, `office` (their id), `day` and `hour`
#: (occurred_at's UTC date, its first 13 characters), with their first and last seq; kept like
#: `record_counts`.
RECORD_TOTALS = Table(
    "record_totals", _META,
    Column("scope", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("n", BigInteger, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)  # fmt: skip
#: The store's own tables (the other parts' come through `create_all`).
OWN_TABLES = (RECORDS, QUARANTINE, CHECKPOINTS, HEALTH, SHAPES, RECORD_COUNTS, RECORD_TOTALS)

#: `records`' index of an officer's punches: by UTC hour first, so that the punches a commit adds
#: land in a few hours' part of it. An index led by the officer takes each record of a commit on a
#: page of its own, anywhere in the index: a 1M-row import into SQLite took 2.3 times as long as
#: with no index, and importing the second 1M half as long again as the first (growing with the
#: store); led by the UTC day, 1.5 times as long as led by the hour. Read hour by hour over the
#: hours the store holds (`record_totals`, scope `hour`).
HOUR_OF = "substr(occurred_at, 1, 13)"
#: The indexes the filters of the feed, the CLI and the dashboard are served from; each ends in
#: (or, on SQLite, implicitly carries) `seq`, so a filtered page is read in commit order.
RECORD_INDEXES: tuple[Index, ...] = (
    Index("ix_records_hour_employee", text(HOUR_OF), RECORDS.c.employee_id, RECORDS.c.seq),
    Index("ix_records_office_seq", RECORDS.c.office_id, RECORDS.c.seq),
    Index("ix_records_device_seq", RECORDS.c.device_id, RECORDS.c.seq),
    Index(
        "ix_records_flagged",
        RECORDS.c.seq,
        sqlite_where=text("flags <> '[]'"),
        postgresql_where=text("flags <> '[]'"),
    ),
)


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
