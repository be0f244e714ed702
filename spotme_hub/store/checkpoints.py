"""Checkpoints: a scope's key → a JSON value, moved in the same transaction as what it marks."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, and_, select

from ..clock import now_z_ms
from .base import StoreBase
from .schema import CHECKPOINTS, dumps


class CheckpointStore(StoreBase):
    def put_checkpoint(
        self, conn: Connection, scope: str, key: str, value: Any, now: str | None = None
    ) -> None:
        """Set a checkpoint inside the caller's transaction (beside what it marks)."""
        now = now or now_z_ms()
        stmt = self.insert(CHECKPOINTS).values(
            scope=scope, key=key, value=dumps(value), updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["scope", "key"], set_={"value": stmt.excluded.value, "updated_at": now}
        )
        conn.execute(stmt)

    def set_checkpoint(self, scope: str, key: str, value: Any) -> None:
        with self.write() as conn:
            self.put_checkpoint(conn, scope, key, value)

    def get_checkpoint(self, scope: str, key: str, default: Any = None) -> Any:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(CHECKPOINTS.c.value).where(
                    and_(CHECKPOINTS.c.scope == scope, CHECKPOINTS.c.key == key)
                )
            ).scalar()
        return default if value is None else orjson.loads(value)
