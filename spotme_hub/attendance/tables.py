"""The attendance part's own tables: stored days with their change sequence, the facts pushed
over the API, the dates whose days are kept, and the queue of days to work out again.

The records the days come from stay in `records`; the ledger's cursor on them lives in the store's
checkpoints under the scope `attendance`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, text

_META = MetaData()

DAYS = Table(
    "attendance_days", _META,
    Column("employee_id", String, primary_key=True),
    Column("date", String, primary_key=True),  # YYYY-MM-DD, the working date
    Column("office_id", String, nullable=False),
    Column("status", String, nullable=False),
    # the change sequence: every write of a day that changed takes the next number
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False, unique=True),
    # a provisional day is worked out again at this time (UTC); NULL once settled
    Column("settles_at", String),
    Column("doc", Text, nullable=False),  # the day's JSON (`Day.to_dict`)
    Column("updated_at", String, nullable=False),
    Index("ix_attendance_days_date_office", "date", "office_id"),
    # only the provisional days (a settled day has none): small, and cheap to keep
    Index(
        "ix_attendance_days_settles_at", "settles_at",
        sqlite_where=text("settles_at IS NOT NULL"),
        postgresql_where=text("settles_at IS NOT NULL"),
    ),
)  # fmt: skip

FACTS = Table(
    "attendance_facts", _META,
    Column("id", String, primary_key=True),
    Column("employee_id", String, nullable=False, index=True),
    Column("doc", Text, nullable=False),  # the fact as given (validated)
    Column("created_at", String, nullable=False),
    Column("updated_at", String, nullable=False),
)  # fmt: skip

#: A date whose days are kept for every configured officer (punches or not).
OPEN_DATES = Table(
    "attendance_dates", _META,
    Column("date", String, primary_key=True),
    Column("opened_at", String, nullable=False),
)  # fmt: skip

#: Days to work out again: a fact changed, the rules changed (`employee_id` NULL: all).
DIRTY = Table(
    "attendance_dirty", _META,
    Column("did", Integer, primary_key=True),
    Column("employee_id", String),
    Column("first", String, nullable=False),
    Column("last", String, nullable=False),
    Column("reason", String, nullable=False),
    Column("created_at", String, nullable=False),
)  # fmt: skip

TABLES = (DAYS, FACTS, OPEN_DATES, DIRTY)
