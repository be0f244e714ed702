"""Device health as the runtime last saw it (kept across restarts)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import select

from ..clock import now_z_ms
from .base import StoreBase
from .schema import HEALTH, dumps


class HealthStore(StoreBase):
    def save_health(self, rows: Iterable[Mapping[str, Any]]) -> None:
        now = now_z_ms()
        with self._write_lock, self.engine.begin() as conn:
            for row in rows:
                values = dict(row)
                for name in ("counters", "detail"):
                    if name in values and not isinstance(values[name], str):
                        values[name] = dumps(values[name])
                values["updated_at"] = now
                stmt = self.insert(HEALTH).values(**values)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["device_id"],
                    set_={k: getattr(stmt.excluded, k) for k in values if k != "device_id"},
                )
                conn.execute(stmt)

    def health(self, device_id: str | None = None) -> list[dict[str, Any]]:
        stmt = select(HEALTH).order_by(HEALTH.c.device_id)
        if device_id:
            stmt = stmt.where(HEALTH.c.device_id == device_id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        out = []
        for r in rows:
            d = dict(r)
            d["counters"] = orjson.loads(d["counters"] or "{}")
            d["detail"] = orjson.loads(d["detail"] or "{}")
            out.append(d)
        return out
