"""The ADMS kind's own tables: the command queue with results and verdicts, unknown serial
numbers, each terminal's user directory and its OPLOG events (created beside the store's)."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, UniqueConstraint

_META = MetaData()

#: One command for one terminal: queued → sent → done | failed | expired.
COMMANDS = Table(
    "adms_commands", _META,
    Column("id", Integer, primary_key=True),
    Column("device_id", String, nullable=False, index=True),
    Column("kind", String, nullable=False),  # backfill | verify | info
    Column("command", String, nullable=False),
    Column("origin", String, nullable=False, default="admin"),  # admin | schedule | reconcile | recheck
    Column("window_start", String),  # device-local wall clock, as sent
    Column("window_end", String),
    Column("status", String, nullable=False, default="queued", index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", String, nullable=False),
    Column("sent_at", String),
    Column("done_at", String),
    Column("return_code", Integer),
    Column("result", String, nullable=False, default="{}"),
    Column("verdict", String),
)  # fmt: skip

#: A serial number that called the hub but is not in the configuration.
PENDING = Table(
    "adms_pending", _META,
    Column("serial", String, primary_key=True),
    Column("first_seen", String, nullable=False),
    Column("last_seen", String, nullable=False),
    Column("requests", Integer, nullable=False, default=1),
    Column("remote", String),
    Column("last_path", String),
    Column("detail", String, nullable=False, default="{}"),
)  # fmt: skip

#: The terminal's user directory from OPERLOG `USER` lines (PIN ↔ name, card).
USERS = Table(
    "adms_users", _META,
    Column("device_id", String, primary_key=True),
    Column("pin", String, primary_key=True),
    Column("name", String),
    Column("card", String),
    Column("privilege", String),
    Column("fields", String, nullable=False, default="{}"),
    Column("updated_at", String, nullable=False),
)  # fmt: skip

#: An OPLOG line (power on, menu, user deleted, clock set...), kept once.
EVENTS = Table(
    "adms_events", _META,
    Column("id", Integer, primary_key=True),
    Column("device_id", String, nullable=False, index=True),
    Column("op_code", Integer, nullable=False),
    Column("operator", String),
    Column("op_time", String, nullable=False),
    Column("fields", String, nullable=False, default="[]"),
    Column("raw", String, nullable=False),
    Column("received_at", String, nullable=False),
    UniqueConstraint("device_id", "raw", name="uq_adms_events_line"),
)  # fmt: skip
