"""The ADMS kind's own tables: the command queue with results and verdicts, unknown serial
numbers, each terminal's user directory and its OPLOG events (created beside the store's)."""

from __future__ import annotations

from sqlalchemy import UniqueConstraint
from sqlmodel import Field as Col
from sqlmodel import SQLModel


class AdmsCommandRow(SQLModel, table=True):
    """One command for one terminal: queued → sent → done | failed | expired."""

    __tablename__ = "adms_commands"
    id: int | None = Col(default=None, primary_key=True)
    device_id: str = Col(index=True)
    kind: str  # backfill | verify | info
    command: str
    origin: str = "admin"  # admin | schedule | reconcile | recheck
    window_start: str | None = None  # device-local wall clock, as sent
    window_end: str | None = None
    status: str = Col(default="queued", index=True)
    attempts: int = 0
    created_at: str
    sent_at: str | None = None
    done_at: str | None = None
    return_code: int | None = None
    result: str = "{}"
    verdict: str | None = None


class AdmsPendingRow(SQLModel, table=True):
    """A serial number that called the hub but is not in the configuration."""

    __tablename__ = "adms_pending"
    serial: str = Col(primary_key=True)
    first_seen: str
    last_seen: str
    requests: int = 1
    remote: str | None = None
    last_path: str | None = None
    detail: str = "{}"


class AdmsUserRow(SQLModel, table=True):
    """The terminal's user directory from OPERLOG `USER` lines (PIN ↔ name, card)."""

    __tablename__ = "adms_users"
    device_id: str = Col(primary_key=True)
    pin: str = Col(primary_key=True)
    name: str | None = None
    card: str | None = None
    privilege: str | None = None
    fields: str = "{}"
    updated_at: str


class AdmsEventRow(SQLModel, table=True):
    """An OPLOG line (power on, menu, user deleted, clock set...), kept once."""

    __tablename__ = "adms_events"
    __table_args__ = (UniqueConstraint("device_id", "raw", name="uq_adms_events_line"),)
    id: int | None = Col(default=None, primary_key=True)
    device_id: str = Col(index=True)
    op_code: int
    operator: str | None = None
    op_time: str
    fields: str = "[]"
    raw: str
    received_at: str


COMMANDS = AdmsCommandRow.__table__  # type: ignore[attr-defined]
PENDING = AdmsPendingRow.__table__  # type: ignore[attr-defined]
USERS = AdmsUserRow.__table__  # type: ignore[attr-defined]
EVENTS = AdmsEventRow.__table__  # type: ignore[attr-defined]
