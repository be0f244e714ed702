"""The durable store: records, quarantine, checkpoints, device health and record shapes.

SQLite (WAL) by default, PostgreSQL by URL. One module a concern: `schema` (tables, the record's
JSON text), `base` (engine, serialised writes), `migrations` (older layouts brought up to date),
`records` (the live and bulk writes), `pages` (reading), `quarantine`, `checkpoints`, `health`,
`shapes` (what a bulk import's records share, stored once).

It imports nothing above it: other parts' tables are handed to `Store.create_all` by the
composition root.
"""

from __future__ import annotations

from .base import is_database_error
from .health import HealthStore
from .migrations import Migrations
from .pages import RecordFilter, RecordPages
from .quarantine import source_text
from .records import ROWS_PER_INSERT, BulkResult, CommitResult, RecordWrites
from .schema import (
    BULK_COLUMNS,
    CHECKPOINTS,
    HEALTH,
    QUARANTINE,
    RECORDS,
    dumps,
    in_process_memory,
    record_doc,
    row_to_dict,
)
from .shapes import JSON_FIELDS


class Store(Migrations, RecordWrites, RecordPages, HealthStore):
    """The hub's store. Thread-safe: one writer at a time (a lock), readers in parallel."""


__all__ = [
    "BULK_COLUMNS",
    "CHECKPOINTS",
    "is_database_error",
    "HEALTH",
    "JSON_FIELDS",
    "QUARANTINE",
    "RECORDS",
    "ROWS_PER_INSERT",
    "BulkResult",
    "CommitResult",
    "RecordFilter",
    "Store",
    "dumps",
    "in_process_memory",
    "record_doc",
    "row_to_dict",
    "source_text",
]
