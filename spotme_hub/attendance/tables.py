"""The attendance part's own tables: stored days with their change sequence, the facts pushed
over the API, the dates whose days are kept, and the queue of days to work out again.

The records the days come from stay in `records`; the ledger's cursor on them lives in the store's
checkpoints under the scope `attendance`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, Table, Text, text
from sqlmodel import Field, SQLModel


class DayRow(SQLModel, table=True):
    __tablename__ = "attendance_days"
    __table_args__ = (
        Index("ix_attendance_days_date_office", "date", "office_id"),
        # only the provisional days (a settled day has none): small, and cheap to keep
        Index(
            "ix_attendance_days_settles_at", "settles_at",
            sqlite_where=text("settles_at IS NOT NULL"),
            postgresql_where=text("settles_at IS NOT NULL"),
        ),
    )  # fmt: skip
    employee_id: str = Field(primary_key=True)
    date: str = Field(primary_key=True)  # YYYY-MM-DD, the working date
    office_id: str
    status: str
    # the change sequence: every write of a day that changed takes the next number
    seq: int = Field(
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), nullable=False, unique=True)
    )
    # a provisional day is worked out again at this time (UTC); NULL once settled
    settles_at: str | None = None
    doc: str = Field(sa_column=Column(Text, nullable=False))  # the day's JSON (`Day.to_dict`)
    updated_at: str


class FactRow(SQLModel, table=True):
    __tablename__ = "attendance_facts"
    id: str = Field(primary_key=True)
    employee_id: str = Field(index=True)
    doc: str = Field(sa_column=Column(Text, nullable=False))  # the fact as given (validated)
    created_at: str
    updated_at: str


class OpenDateRow(SQLModel, table=True):
    """A date whose days are kept for every configured officer (punches or not)."""

    __tablename__ = "attendance_dates"
    date: str = Field(primary_key=True)
    opened_at: str


class DirtyRow(SQLModel, table=True):
    """Days to work out again: a fact changed, the rules changed (`employee_id` NULL: all)."""

    __tablename__ = "attendance_dirty"
    did: int | None = Field(default=None, primary_key=True)
    employee_id: str | None = None
    first: str
    last: str
    reason: str
    created_at: str


DAYS: Table = DayRow.__table__  # type: ignore[attr-defined]
FACTS: Table = FactRow.__table__  # type: ignore[attr-defined]
OPEN_DATES: Table = OpenDateRow.__table__  # type: ignore[attr-defined]
DIRTY: Table = DirtyRow.__table__  # type: ignore[attr-defined]
TABLES = (DAYS, FACTS, OPEN_DATES, DIRTY)
