"""The durable side of `zkteco_adms`: command queue and results, VERIFY SUM reconciliation,
the device user directory, device events and unknown serial numbers.

Blocking functions of a `Store` (call them with `asyncio.to_thread` from async code). Writes go
through `store.write()`, so they are serialised with record commits on SQLite and PostgreSQL.
The CLI writes here too: a command queued by `spotme-hub adms backfill` while the hub runs is
picked up at the terminal's next poll.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, func, or_, select

from ...clock import now_z_ms, to_aware, utc_z, zone
from ...config import Device
from ...store import RecordFilter, Store, dumps
from .adapter import MAX_WINDOW_H, OPLOG_CODES, TIME_FORMAT, command_text
from .tables import COMMANDS, EVENTS, PENDING, USERS

MAX_ATTEMPTS = 3
SECRET_KEYS = ("passwd", "password")  # never stored from USER lines
KINDS = ("backfill", "verify", "info")


def cmd_id(row_id: int) -> str:
    """The CmdID the terminal sees (≤16 alphanumerics)."""
    return f"H{row_id}"


def _command_dict(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["cmd_id"] = cmd_id(d["id"])
    d["result"] = orjson.loads(d["result"] or "{}")
    return d


# --- unknown serial numbers ------------------------------------------------------------------


MAX_PENDING = 1000  # unknown serials kept; more are only logged (a misconfigured fleet, a scan)


def note_pending(
    store: Store, sn: str, remote: str | None, path: str, detail: dict[str, Any]
) -> bool:
    """Remember an unknown serial; False when the list is full and `sn` is not on it."""
    now = now_z_ms()
    with store.write() as conn:
        old = conn.execute(select(PENDING.c.detail).where(PENDING.c.serial == sn)).scalar()
        if old is None:
            known = conn.execute(select(func.count()).select_from(PENDING)).scalar_one()
            if known >= MAX_PENDING:
                return False
        merged = {**(orjson.loads(old) if old else {}), **detail}
        stmt = store.insert(PENDING).values(
            serial=sn, first_seen=now, last_seen=now, requests=1, remote=remote, last_path=path,
            detail=dumps(merged),
        )  # fmt: skip
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["serial"],
            set_={"last_seen": now, "requests": PENDING.c.requests + 1, "remote": remote,
                  "last_path": path, "detail": dumps(merged)},
        ))  # fmt: skip
    return True


def pending(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(PENDING).order_by(PENDING.c.last_seen.desc())).mappings().all()
    return [{**dict(r), "detail": orjson.loads(r["detail"] or "{}")} for r in rows]


def forget_pending(store: Store, sn: str) -> None:
    with store.write() as conn:
        conn.execute(PENDING.delete().where(PENDING.c.serial == sn))


# --- the command queue ---------------------------------------------------------------------


def local_window(
    device_tz: str, hours: float, lag_s: float = 0, now: datetime | None = None
) -> tuple[str, str]:
    """The last `hours` (minus `lag_s`) as device-local StartTime/EndTime strings."""
    end = (now or datetime.now(UTC)).astimezone(zone(device_tz)) - timedelta(seconds=lag_s)
    start = end - timedelta(hours=hours)
    return start.strftime(TIME_FORMAT), end.strftime(TIME_FORMAT)


def resolve_window(
    tz_name: str, start: str | None, end: str | None, hours: float | None, default_hours: float
) -> tuple[str, str]:
    """Explicit StartTime/EndTime (device-local), or the last `hours`."""
    if start and end:
        return start, end
    if start or end:
        raise ValueError("give both a start and an end time, or neither (then --hours)")
    hours = hours or default_hours
    if not 0 < hours <= MAX_WINDOW_H:
        raise ValueError(f"hours must be more than 0 and at most {MAX_WINDOW_H} (a year)")
    return local_window(tz_name, hours)


def enqueue(
    store: Store, device_id: str, kind: str, start: str | None = None, end: str | None = None,
    origin: str = "admin",
) -> dict[str, Any]:  # fmt: skip
    if kind not in KINDS:
        raise ValueError(f"unknown command kind {kind!r} ({', '.join(KINDS)})")
    if kind != "info":
        if not start or not end:
            raise ValueError(f"a {kind} command needs a start and an end time")
        s, e = (datetime.strptime(v, TIME_FORMAT) for v in (start, end))
        if e < s:
            raise ValueError(f"end {end} is before start {start}")
    values = {
        "device_id": device_id, "kind": kind, "command": command_text(kind, start, end),
        "origin": origin, "window_start": start, "window_end": end, "status": "queued",
        "created_at": now_z_ms(),
    }  # fmt: skip
    with store.write() as conn:
        pk = conn.execute(COMMANDS.insert().values(**values)).inserted_primary_key
        assert pk is not None
        new_id = pk[0]
        row = conn.execute(select(COMMANDS).where(COMMANDS.c.id == new_id)).mappings().one()
    return _command_dict(row)


def take_commands(
    store: Store, device_id: str, timeout_s: float, limit: int = 10
) -> list[dict[str, Any]]:
    """Commands to send on this poll: queued ones, and sent ones unanswered for `timeout_s`
    (up to MAX_ATTEMPTS sends; then `expired`)."""
    stale = (datetime.now(UTC) - timedelta(seconds=timeout_s)).strftime("%Y-%m-%dT%H:%M:%S.%f")[
        :-3
    ] + "Z"
    now = now_z_ms()
    mine = COMMANDS.c.device_id == device_id
    with store.write() as conn:
        conn.execute(
            COMMANDS.update()
            .where(mine, COMMANDS.c.status == "sent", COMMANDS.c.sent_at < stale,
                   COMMANDS.c.attempts >= MAX_ATTEMPTS)
            .values(status="expired", done_at=now)
        )  # fmt: skip
        due = or_(
            COMMANDS.c.status == "queued",
            and_(COMMANDS.c.status == "sent", COMMANDS.c.sent_at < stale),
        )
        rows = (
            conn.execute(select(COMMANDS).where(mine, due).order_by(COMMANDS.c.id).limit(limit))
            .mappings()
            .all()
        )
        ids = [r["id"] for r in rows]
        if ids:
            conn.execute(
                COMMANDS.update()
                .where(COMMANDS.c.id.in_(ids))
                .values(status="sent", sent_at=now, attempts=COMMANDS.c.attempts + 1)
            )
    return [_command_dict(r) for r in rows]


def complete(store: Store, device_id: str, result: dict[str, str]) -> dict[str, Any] | None:
    """Store a devicecmd result; None when the ID is not a command of this device."""
    ident = result.get("ID", "")
    if not (ident.startswith("H") and ident[1:].isdigit()):
        return None
    try:
        code = int(result.get("Return", ""))
    except ValueError:
        code = None
    where = and_(COMMANDS.c.id == int(ident[1:]), COMMANDS.c.device_id == device_id)
    with store.write() as conn:
        n = conn.execute(
            COMMANDS.update().where(where).values(
                status="done" if code == 0 else "failed", done_at=now_z_ms(), return_code=code,
                result=dumps(result),
            )
        ).rowcount  # fmt: skip
        row = conn.execute(select(COMMANDS).where(where)).mappings().first() if n else None
    return _command_dict(row) if row else None


def set_verdict(store: Store, row_id: int, verdict: str) -> None:
    with store.write() as conn:
        conn.execute(COMMANDS.update().where(COMMANDS.c.id == row_id).values(verdict=verdict))


def commands(
    store: Store, device_id: str | None = None, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    conds = []
    if device_id:
        conds.append(COMMANDS.c.device_id == device_id)
    if status:
        conds.append(COMMANDS.c.status == status)
    stmt = select(COMMANDS).where(*conds).order_by(COMMANDS.c.id.desc()).limit(limit)
    with store.engine.connect() as conn:
        return [_command_dict(r) for r in conn.execute(stmt).mappings().all()][::-1]


def last_created(store: Store, device_id: str, kind: str, origin: str) -> str | None:
    stmt = select(func.max(COMMANDS.c.created_at)).where(
        COMMANDS.c.device_id == device_id, COMMANDS.c.kind == kind, COMMANDS.c.origin == origin
    )
    with store.engine.connect() as conn:
        value: str | None = conn.execute(stmt).scalar()
    return value


def last_verdict(store: Store, device_id: str) -> str | None:
    """The verdict of the device's latest answered reconciliation (restored after a restart)."""
    stmt = (
        select(COMMANDS.c.verdict)
        .where(COMMANDS.c.device_id == device_id, COMMANDS.c.kind == "verify",
               COMMANDS.c.verdict.is_not(None))
        .order_by(COMMANDS.c.id.desc())
        .limit(1)
    )  # fmt: skip
    with store.engine.connect() as conn:
        value: str | None = conn.execute(stmt).scalar()
    return value


def due_for_schedule(store: Store, device_id: str, every_s: float) -> bool:
    last = last_created(store, device_id, "verify", "schedule")
    if last is None:
        return True
    age = datetime.now(UTC) - datetime.fromisoformat(last.replace("Z", "+00:00"))
    return age.total_seconds() >= every_s


# --- reconciliation ------------------------------------------------------------------------


def hub_count(store: Store, device: Device, tz_name: str, start: str, end: str) -> int:
    """Records the hub holds from `device` between two device-local times (end inclusive)."""
    since = to_aware(datetime.strptime(start, TIME_FORMAT), tz_name)
    until = to_aware(datetime.strptime(end, TIME_FORMAT), tz_name) + timedelta(seconds=1)
    return store.count_records(
        RecordFilter(device_id=device.id, since=utc_z(since), until=utc_z(until))
    )


def attlog_sum(result: dict[str, str]) -> int | None:
    for key, value in result.items():
        if key.lower() == "attlogsum":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# --- user directory and events ---------------------------------------------------------------


def save_users(store: Store, device_id: str, users: list[dict[str, str]]) -> None:
    if not users:
        return
    now = now_z_ms()
    with store.write() as conn:
        for u in users:
            stmt = store.insert(USERS).values(
                device_id=device_id, pin=u["PIN"], name=u.get("Name") or None,
                card=u.get("Card") or None, privilege=u.get("Pri"),
                fields=dumps({k: v for k, v in u.items() if k.lower() not in SECRET_KEYS}),
                updated_at=now,
            )  # fmt: skip
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["device_id", "pin"],
                    set_={
                        k: getattr(stmt.excluded, k)
                        for k in ("name", "card", "privilege", "fields", "updated_at")
                    },
                )
            )


def users(store: Store, device_id: str) -> list[dict[str, Any]]:
    stmt = select(USERS).where(USERS.c.device_id == device_id).order_by(USERS.c.pin)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [{**dict(r), "fields": orjson.loads(r["fields"] or "{}")} for r in rows]


def save_events(store: Store, device_id: str, events: list[dict[str, Any]]) -> int:
    """Insert OPLOG events once (a re-sent line is ignored); returns how many were new."""
    if not events:
        return 0
    now = now_z_ms()
    rows = [
        {"device_id": device_id, "op_code": e["op_code"], "operator": e["operator"] or None,
         "op_time": e["op_time"], "fields": dumps(e["values"]), "raw": e["raw"], "received_at": now}
        for e in events
    ]  # fmt: skip
    with store.write() as conn:
        res = conn.execute(store.insert(EVENTS).on_conflict_do_nothing(), rows)
    return max(0, res.rowcount or 0)


def events(store: Store, device_id: str, limit: int = 100) -> list[dict[str, Any]]:
    stmt = (
        select(EVENTS)
        .where(EVENTS.c.device_id == device_id)
        .order_by(EVENTS.c.id.desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [
        {**dict(r), "op": OPLOG_CODES.get(r["op_code"]), "fields": orjson.loads(r["fields"])}
        for r in rows
    ][::-1]
