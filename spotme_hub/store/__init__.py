"""The durable store: records, quarantine, checkpoints, device health and record shapes.

It imports nothing above it: other parts' tables are handed to `Store.create_all` by the
composition root.
"""

from .core import (
    BULK_COLUMNS,
    CHECKPOINTS,
    HEALTH,
    JSON_FIELDS,
    ROWS_PER_INSERT,
    QUARANTINE,
    RECORDS,
    BulkResult,
    CommitResult,
    RecordFilter,
    Store,
    dumps,
    in_process_memory,
    record_doc,
    row_to_dict,
)

__all__ = [
    "BULK_COLUMNS",
    "CHECKPOINTS",
    "HEALTH",
    "JSON_FIELDS",
    "ROWS_PER_INSERT",
    "QUARANTINE",
    "RECORDS",
    "BulkResult",
    "CommitResult",
    "RecordFilter",
    "Store",
    "dumps",
    "in_process_memory",
    "record_doc",
    "row_to_dict",
]
