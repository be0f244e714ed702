"""The forwarder's own table: dead letters (records the core refused, with its reason).

The outbox itself is the `records` table (records with seq above the forward cursor); the cursor
and the delivery counters live in the store's checkpoints under the scope `forwarder`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table

DEAD_LETTERS = Table(
    "forward_dead_letters", MetaData(),
    Column("dlid", Integer, primary_key=True),
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), index=True),
    Column("record_id", String, nullable=False, index=True),
    Column("reason", String, nullable=False),
    Column("status", String, nullable=False, default="open", index=True),  # open | delivered
    Column("attempts", Integer, nullable=False, default=1),
    Column("created_at", String, nullable=False),
    Column("updated_at", String, nullable=False),
    # its rows name records by seq and id: the store keeps the ids in step when it moves them
    info={"record_ref": ("seq", "record_id")},
)  # fmt: skip
