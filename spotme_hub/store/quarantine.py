"""The quarantine: what could not become a record, with its source and reason, until an admin
replays or discards it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, func, select

from ..clock import now_z_ms
from ..record import Rejection
from .base import StoreBase
from .schema import QUARANTINE, dumps


def source_text(source: Mapping[str, Any]) -> str:
    """Where a quarantined input came from, for a person: a file's name (sheet) and line, a
    topic, or the source's plain values (never a JSON text cut in the middle)."""
    if "file" in source:
        sheet = f" sheet {source['sheet']}" if source.get("sheet") is not None else ""
        line = f" line {source['line']}" if source.get("line") is not None else ""
        return f"{source['file']}{sheet}{line}"
    if "topic" in source:
        return f"topic {source['topic']}"
    plain = [f"{k} {v}" for k, v in source.items() if k != "punch" and isinstance(v, str | int)]
    return ", ".join(plain)


class QuarantineStore(StoreBase):
    def _quarantine(self, conn: Connection, rejections: Sequence[Rejection], now: str) -> list[int]:
        """Each live arrival is an item of its own (a resent request, a repeated message); a row
        of a file (a source naming its file and line) is one item however often the file is
        read: the same row rejected again for the same reason (an import run again after a crash
        or with `--force`) is the item already there, open or resolved, and its qid is returned,
        so a re-import neither doubles the quarantine nor brings back what an admin discarded."""
        qids = []
        for rej in rejections:
            raw = dumps(_jsonable_raw(rej.raw))
            place = _place(rej.source)
            if place is not None:
                q = QUARANTINE.c
                same = conn.execute(
                    select(q.qid)
                    .where(q.device_id == rej.device_id, q.place == place)
                    .where(q.reason == rej.reason, q.raw == raw)
                    .limit(1)
                ).scalar()
                if same is not None:
                    qids.append(int(same))
                    continue
            res = conn.execute(
                QUARANTINE.insert().values(
                    created_at=now,
                    device_id=rej.device_id,
                    source=dumps(rej.source),
                    reason=rej.reason,
                    raw=raw,
                    status="open",
                    place=place,
                )
            )
            key = res.inserted_primary_key
            assert key is not None
            qids.append(int(key[0]))
        return qids

    def quarantine(self, rejections: Sequence[Rejection]) -> list[int]:
        with self.write() as conn:
            return self._quarantine(conn, rejections, now_z_ms())

    def quarantine_items(
        self,
        status: str | None = "open",
        limit: int = 100,
        device_id: str | None = None,
        after: int = 0,
    ) -> list[dict[str, Any]]:
        conds = [QUARANTINE.c.qid > after]
        if status:
            conds.append(QUARANTINE.c.status == status)
        if device_id:
            conds.append(QUARANTINE.c.device_id == device_id)
        stmt = select(QUARANTINE).where(*conds).order_by(QUARANTINE.c.qid).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_quarantine_dict(r) for r in rows]

    def quarantine_count(self, status: str = "open") -> int:
        stmt = select(func.count()).select_from(QUARANTINE).where(QUARANTINE.c.status == status)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def quarantine_counts_by_device(self) -> dict[str, int]:
        stmt = (
            select(QUARANTINE.c.device_id, func.count())
            .where(QUARANTINE.c.status == "open")
            .group_by(QUARANTINE.c.device_id)
        )
        with self.engine.connect() as conn:
            return {str(d): int(n) for d, n in conn.execute(stmt)}


def _quarantine_dict(r: Any) -> dict[str, Any]:
    d = dict(r)
    d.pop("place", None)  # the dedup key, the source says the same
    d["source"] = orjson.loads(d["source"] or "{}")
    d["raw"] = orjson.loads(d["raw"] or "null")
    return d


def _place(source: Mapping[str, Any]) -> str | None:
    """Where a file row is ("file\x1fsheet\x1fline"), which stays the same however often the
    file is read (unlike the rest of its source, e.g. the receive time of a punch read from it)."""
    if "file" not in source or "line" not in source:
        return None
    return "\x1f".join(str(source.get(k, "")) for k in ("file", "sheet", "line"))


def _jsonable_raw(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"hex": bytes(value).hex()}
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        return value
    except TypeError:
        return repr(value)
