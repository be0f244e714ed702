"""The outbox: records with seq above the forward cursor, read fast; the cursor, counters and
dead letters written in one transaction; backlog status.

Writers are serialised, so `seq` is the commit order and "seq > cursor" is the backlog: every
committed record is queued in the same transaction that commits it, by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, func, select

from ..clock import now_z_ms
from ..config import HubConfig
from ..store import CHECKPOINTS, RECORDS, Store
from .tables import DEAD_LETTERS

SCOPE = "forwarder"
#: What a dead letter's record is read back as (its seq, id, stored JSON and shape).
COLUMNS = [RECORDS.c.seq, RECORDS.c.id, RECORDS.c.doc, RECORDS.c.shape]


#: One record on the wire: its id and its JSON text.
Item = tuple[str, bytes]


@dataclass(slots=True)
class Batch:
    items: list[Item]
    seqs: list[int]
    body: bytes

    @property
    def last(self) -> int:
        return self.seqs[-1]


# --- reading the backlog fast -----------------------------------------------------------------


def items_from_rows(store: Store, rows: Any) -> tuple[list[Item], list[int]]:
    """Rows (seq, id, doc, shape) → the records' JSON texts, as the store renders them."""
    render = store.shapes.render
    items = [(rid, render(shape, doc, rid).encode()) for _, rid, doc, shape in rows]
    return items, [row[0] for row in rows]


def encode(hub_id: str, items: list[Item], name: str = "records") -> bytes:
    """The request body, spliced from the items' JSON texts (`name`: records, or an outbox's)."""
    return b'{"hub_id":%s,"%s":[%s]}' % (
        orjson.dumps(hub_id), name.encode(), b",".join(j for _, j in items),
    )  # fmt: skip


def read_batch(store: Store, hub_id: str, after: int, limit: int) -> Batch | None:
    """The next batch of the outbox, as the store renders the records' JSON."""
    rows, _ = store.records_json(after, limit, with_seq=False)
    if not rows:
        return None
    items = [(rid, text) for _, rid, text in rows]
    seqs = [seq for seq, _, _ in rows]
    return Batch(items, seqs, encode(hub_id, items))


# --- persistent state ---------------------------------------------------------------------------


def insert_dead(conn: Connection, items: list[tuple[int, str, str]]) -> None:
    if items:
        stamp = now_z_ms()
        conn.execute(
            DEAD_LETTERS.insert(),
            [
                {"seq": s, "record_id": rid, "reason": reason[:2000], "status": "open",
                 "attempts": 1, "created_at": stamp, "updated_at": stamp}
                for s, rid, reason in items
            ],
        )  # fmt: skip


def _age_s(stamp: str | None) -> float | None:
    if not stamp:
        return None
    then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return max(0.0, round((datetime.now(UTC) - then).total_seconds(), 3))


def forward_status(store: Store, cfg: HubConfig) -> dict[str, Any]:
    """Backlog size and oldest age, dead letters, cursor, counters, last error and alert state."""
    cursor = int(store.get_checkpoint(SCOPE, "cursor", 0))
    stats = store.get_checkpoint(SCOPE, "stats", {}) or {}
    backlog = store.count_after(cursor)  # from the record counters: never a count of the table
    with store.engine.connect() as conn:
        oldest = conn.execute(
            select(RECORDS.c.committed_at)
            .where(RECORDS.c.seq > cursor)
            .order_by(RECORDS.c.seq)
            .limit(1)
        ).scalar()
        dead: dict[str, int] = dict(
            conn.execute(
                select(DEAD_LETTERS.c.status, func.count()).group_by(DEAD_LETTERS.c.status)
            ).all()
        )
    age = _age_s(oldest)
    alerts = []
    core = cfg.core
    if core.backlog_alert is not None and backlog > core.backlog_alert:
        alerts.append(f"backlog {backlog} > {core.backlog_alert}")
    if core.backlog_alert_age_s is not None and age is not None and age > core.backlog_alert_age_s:
        alerts.append(f"oldest record waiting {age:.0f}s > {core.backlog_alert_age_s:.0f}s")
    return {
        "enabled": bool(core.url),
        "url": (core.url or "").rstrip("/") + core.path if core.url else None,
        "cursor": cursor,
        "backlog": int(backlog),
        "oldest_age_s": age,
        "dead_letters": int(dead.get("open", 0)),
        "dead_letters_delivered": int(dead.get("delivered", 0)),
        "delivered": int(stats.get("delivered", 0)),
        "accepted": int(stats.get("accepted", 0)),
        "duplicates": int(stats.get("duplicates", 0)),
        "dead_lettered": int(stats.get("dead_lettered", 0)),
        "batches": int(stats.get("batches", 0)),
        "retries": int(stats.get("retries", 0)),
        "last_delivery_at": stats.get("last_delivery_at"),
        "state": stats.get("state", "idle"),
        "last_error": stats.get("last_error"),
        "last_error_at": stats.get("last_error_at"),
        "recovered_at": stats.get("recovered_at"),
        "alert": bool(alerts),
        "alerts": alerts,
        "outboxes": outbox_status(store),
    }


def outbox_status(store: Store) -> dict[str, dict[str, Any]]:
    """The parts' outboxes (the attendance days…): each forwarder's cursor and counters, from
    its checkpoint scope ``forwarder.<name>``."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(CHECKPOINTS.c.scope, CHECKPOINTS.c.key, CHECKPOINTS.c.value).where(
                CHECKPOINTS.c.scope.like(f"{SCOPE}.%")
            )
        ).all()
    out: dict[str, dict[str, Any]] = {}
    for scope, key, value in rows:
        entry = out.setdefault(scope[len(SCOPE) + 1 :], {"cursor": 0, "state": "idle"})
        data = orjson.loads(value)
        if key == "cursor":
            entry["cursor"] = int(data)
        elif key == "stats" and isinstance(data, dict):
            for name in ("delivered", "batches", "retries"):
                entry[name] = int(data.get(name, 0))
            entry["refused"] = int(data.get("dead_lettered", 0))  # logged, not dead-lettered
            for name in ("state", "last_delivery_at", "last_error", "last_error_at"):
                entry[name] = data.get(name, entry.get(name))
    return dict(sorted(out.items()))


def dead_letters(
    store: Store, status: str | None = "open", limit: int = 100, after: int = 0
) -> list[dict[str, Any]]:
    conds = [DEAD_LETTERS.c.dlid > after]
    if status:
        conds.append(DEAD_LETTERS.c.status == status)
    stmt = select(DEAD_LETTERS).where(*conds).order_by(DEAD_LETTERS.c.dlid).limit(limit)
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]
