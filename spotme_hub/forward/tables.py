"""The forwarder's own table: dead letters (records the core refused, with its reason).

The outbox itself is the `records` table (records with seq above the forward cursor); the cursor
and the delivery counters live in the store's checkpoints under the scope `forwarder`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer
from sqlmodel import Field, SQLModel


class DeadLetterRow(SQLModel, table=True):
    __tablename__ = "forward_dead_letters"
    dlid: int | None = Field(default=None, primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), index=True))
    record_id: str = Field(index=True)
    reason: str
    status: str = Field(default="open", index=True)  # open | delivered
    attempts: int = 1
    created_at: str
    updated_at: str


DEAD_LETTERS = DeadLetterRow.__table__  # type: ignore[attr-defined]
# its rows name records by seq and id: the store keeps the ids in step when it moves them
DEAD_LETTERS.info["record_ref"] = ("seq", "record_id")
