"""A reference SPOT-Me core: the ingest contract of docs/core-api.md, with failure injection.

Stores records deduplicated by id (SQLite file or memory), counts deliveries and duplicates, and
can be told — by CLI flags or `POST /admin/settings` — to fail: an error rate, latency, down now or
for a while, 429 with Retry-After for the next N requests, reject some ids (in the `rejected`
list, or with a 422 for the whole batch). `GET /admin/stats`, `/admin/records`, `/admin/requests`
read what it saw. Used by the demo, the tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

DEFAULT_PATH = "/api/v1/attendance/batch"
#: where the hub delivers attendance days (`core.days_path`)
DAYS_PATH = "/api/v1/attendance/days"


@dataclass
class Failures:
    error_rate: float = 0.0  # fraction of batch requests answered 503
    latency_ms: float = 0.0  # added to every batch request
    down: bool = False  # answer 503 to every batch request
    down_until: float = 0.0  # epoch seconds: down until then
    fail_next: int = 0  # the next N batch requests fail with `fail_status`
    fail_status: int = 503
    retry_after: float | None = None  # Retry-After seconds (429/503 of down and fail_next)
    reject_ids: list[str] = field(default_factory=list)
    reject_mode: str = "list"  # list: in `rejected`; batch: 422 for a batch holding one
    reject_reason: str = "employee not enrolled at the core"


_INSERT = "INSERT OR IGNORE INTO records (id, hub_id, body, received_at) VALUES (?,?,?,?)"
_INSERT_EACH = (
    "INSERT OR IGNORE INTO records (id, hub_id, body, received_at)"
    " SELECT json_extract(value, '$.id'), ?, value, ? FROM json_each(?, '$.records')"
)
_REDELIVERED = "UPDATE records SET deliveries = deliveries + 1 WHERE id = ? AND received_at < ?"
_REDELIVERED_EACH = (
    "UPDATE records SET deliveries = deliveries + 1 WHERE received_at < ? AND id IN"
    " (SELECT json_extract(value, '$.id') FROM json_each(?, '$.records'))"
)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


class CoreState:
    """Stored records and counters. Used from the server's event loop (one thread)."""

    def __init__(self, db: str = ":memory:", token: str | None = None, seed: int | None = None):
        self.db = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS records (n INTEGER PRIMARY KEY AUTOINCREMENT,"
            " id TEXT NOT NULL UNIQUE, hub_id TEXT, body TEXT NOT NULL, received_at REAL,"
            " deliveries INTEGER NOT NULL DEFAULT 1)"
        )
        # attendance days: the latest version of each officer's day (by the hub's change seq)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS days (employee_id TEXT NOT NULL, date TEXT NOT NULL,"
            " seq INTEGER NOT NULL, body TEXT NOT NULL, versions INTEGER NOT NULL DEFAULT 1,"
            " PRIMARY KEY (employee_id, date))"
        )
        self.lock = threading.Lock()
        self.token = token
        self.rng = random.Random(seed)
        self.failures = Failures()
        self.counts = {"requests": 0, "batches_ok": 0, "failed": 0, "deliveries": 0,
                       "accepted": 0, "duplicates": 0, "rejected": 0, "unauthorized": 0}  # fmt: skip
        self.keys: dict[str, int] = {}
        self.requests: deque[dict[str, Any]] = deque(maxlen=20_000)

    # -- the contract --------------------------------------------------------------------------
    def failure(self) -> tuple[int, str, bool] | None:
        """(status, reason, send Retry-After?) when this request is to fail."""
        f = self.failures
        if f.down or f.down_until > time.time():
            return 503, "core is down", True
        if f.fail_next > 0:
            f.fail_next -= 1
            return f.fail_status, "injected failure", True
        if f.error_rate and self.rng.random() < f.error_rate:
            return 503, "injected random failure", False
        return None

    def ingest(
        self, hub_id: str, records: list[dict[str, Any]], body: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Store records by id (first copy wins). With `body` (the request as received) and no
        record to reject, SQLite splits the body itself (json_each): no per-record Python."""
        f = self.failures
        reject = set(f.reject_ids)
        rejected = [
            {"id": r.get("id"), "reason": f.reject_reason}
            for r in records
            if not isinstance(r.get("id"), str) or r["id"] in reject
        ]
        if rejected and f.reject_mode == "batch":
            ids = ", ".join(str(r["id"]) for r in rejected[:5])
            return 422, {"detail": f"{f.reject_reason}: {ids}"}
        now = time.time()
        with self.lock:
            before = self.db.total_changes
            self.db.execute("BEGIN")
            if body is not None and not rejected:
                good_n = len(records)
                self.db.execute(_INSERT_EACH, (hub_id, now, body))
                accepted = self.db.total_changes - before
                if good_n - accepted:
                    self.db.execute(_REDELIVERED_EACH, (now, body))
            else:
                bad = {r["id"] for r in rejected}
                rows = [(r["id"], hub_id, orjson.dumps(r), now) for r in records
                        if r.get("id") not in bad]  # fmt: skip
                good_n = len(rows)
                self.db.executemany(_INSERT, rows)
                accepted = self.db.total_changes - before
                if good_n - accepted:
                    self.db.executemany(_REDELIVERED, [(r[0], now) for r in rows])
            duplicates = good_n - accepted
            self.db.execute("COMMIT")
        c = self.counts
        c["batches_ok"] += 1
        c["deliveries"] += len(records)
        c["accepted"] += accepted
        c["duplicates"] += duplicates
        c["rejected"] += len(rejected)
        return 200, {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}

    def ingest_days(self, days: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        """Keep each officer's day at its newest version (a resent older one changes nothing)."""
        bad = [d for d in days if not all(isinstance(d.get(k), str) for k in ("employee_id", "date"))
               or not isinstance(d.get("seq"), int)]  # fmt: skip
        if bad:
            return 422, {"detail": "each day needs employee_id, date and seq"}
        accepted = 0
        with self.lock:
            self.db.execute("BEGIN")
            for d in days:
                before = self.db.total_changes
                self.db.execute(
                    "INSERT INTO days (employee_id, date, seq, body) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (employee_id, date) DO UPDATE SET seq = excluded.seq, "
                    "body = excluded.body, versions = versions + 1 WHERE excluded.seq > days.seq",
                    (d["employee_id"], d["date"], d["seq"], orjson.dumps(d).decode()),
                )
                accepted += self.db.total_changes - before
            self.db.execute("COMMIT")
        self.counts["days_accepted"] = self.counts.get("days_accepted", 0) + accepted
        return 200, {"accepted": accepted, "duplicates": len(days) - accepted, "rejected": []}

    def days(self) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT body, versions FROM days ORDER BY employee_id, date"
            ).fetchall()
        return [{**orjson.loads(b), "versions": v} for b, v in rows]

    # -- reading -----------------------------------------------------------------------------
    def stored(self) -> int:
        with self.lock:
            return int(self.db.execute("SELECT count(*) FROM records").fetchone()[0])

    def stats(self) -> dict[str, Any]:
        with self.lock:
            stored, distinct, redelivered = self.db.execute(
                "SELECT count(*), count(DISTINCT id), coalesce(sum(deliveries > 1), 0) FROM records"
            ).fetchone()
        return {
            **self.counts,
            "stored": stored,
            "distinct_ids": distinct,
            "redelivered_records": redelivered,
            "idempotency_keys": len(self.keys),
            "repeated_keys": sum(1 for n in self.keys.values() if n > 1),
            "failures": asdict(self.failures),
        }

    def records(self, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT n, body, deliveries FROM records WHERE n > ? ORDER BY n LIMIT ?",
                (after, limit),
            ).fetchall()
        return [{"n": n, "deliveries": d, "record": orjson.loads(b)} for n, b, d in rows]

    def ids(self) -> list[str]:
        with self.lock:
            return [r[0] for r in self.db.execute("SELECT id FROM records ORDER BY n")]

    def settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        known = set(asdict(self.failures))
        unknown = set(changes) - known - {"down_for"}
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        if "down_for" in changes:
            self.failures.down_until = time.time() + float(changes.pop("down_for") or 0)
        for key, value in changes.items():
            setattr(self.failures, key, value)
        return asdict(self.failures)


def create_core_app(state: CoreState, path: str = DEFAULT_PATH) -> FastAPI:
    app = FastAPI(title="SPOT-Me core (reference)", version="1")
    app.state.core = state

    @app.post(DAYS_PATH)
    async def days(request: Request) -> Response:
        _, refused = await _receive(state, request)
        if refused is not None:
            return refused
        try:
            data = orjson.loads(await request.body())
            items = data["days"]
            if not isinstance(items, list) or not all(isinstance(d, dict) for d in items):
                raise TypeError("days must be a list of objects")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return _json({"detail": f"bad request: {exc}"}, 400)
        status, body = state.ingest_days(items)
        return _json(body, status)

    @app.get("/admin/days")
    async def stored_days() -> Response:
        return _json(state.days())

    @app.post(path)
    async def batch(request: Request) -> Response:
        st = state
        entry, refused = await _receive(st, request)
        if refused is not None:
            return refused
        key = entry["key"]
        raw = await request.body()
        try:
            data = orjson.loads(raw)
            hub_id = str(data["hub_id"])
            records = data["records"]
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise TypeError("records must be a list of objects")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            entry["status"] = 400
            return _json({"detail": f"bad request: {exc}"}, 400)
        if key:
            st.keys[key] = st.keys.get(key, 0) + 1
        status, body = st.ingest(hub_id, records, raw)
        entry.update(status=status, n=len(records))
        if records:
            entry["first"] = records[0].get("id")
        return _json(body, status)

    @app.get("/admin/stats")
    async def stats() -> Response:
        return _json(state.stats())

    @app.post("/admin/settings")
    async def settings(request: Request) -> Response:
        try:
            return _json(state.settings(orjson.loads(await request.body() or b"{}")))
        except (ValueError, TypeError) as exc:
            return _json({"detail": str(exc)}, 400)

    @app.get("/admin/records")
    async def records(after: int = 0, limit: int = 1000) -> Response:
        return _json(state.records(after, min(limit, 10_000)))

    @app.get("/admin/ids")
    async def ids() -> Response:
        return _json(state.ids())

    @app.get("/admin/requests")
    async def requests(after: float = 0) -> Response:
        return _json([r for r in list(state.requests) if r["t"] > after])

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    return app


async def _receive(st: CoreState, request: Request) -> tuple[dict[str, Any], Response | None]:
    """Log the request; the answer when it is refused (bearer token, injected failures)."""
    key = request.headers.get("idempotency-key", "")
    entry: dict[str, Any] = {"t": time.time(), "key": key, "n": 0, "status": 0}
    st.counts["requests"] += 1
    st.requests.append(entry)
    if st.token is not None and request.headers.get("authorization") != f"Bearer {st.token}":
        st.counts["unauthorized"] += 1
        entry["status"] = 401
        return entry, _json({"detail": "missing or wrong bearer token"}, 401)
    f = st.failures
    if f.latency_ms:
        await asyncio.sleep(f.latency_ms / 1000)
    failed = st.failure()
    if failed is not None:
        status, why, with_retry_after = failed
        st.counts["failed"] += 1
        entry["status"] = status
        headers = {}
        if with_retry_after and f.retry_after is not None and status in (429, 503):
            headers["Retry-After"] = f"{f.retry_after:g}"
        return entry, _json({"detail": why}, status, headers)
    return entry, None


class CoreServer:
    """The reference core on uvicorn in a background thread (tests, demo, benchmark)."""

    def __init__(self, state: CoreState, host: str = "127.0.0.1", port: int = 0,
                 path: str = DEFAULT_PATH):  # fmt: skip
        import uvicorn

        self.state = state
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            create_core_app(state, path), host=host, port=self.port, log_level="warning",
            lifespan="off", access_log=False,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="core-sim", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> CoreServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"reference core did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve_core(port: int, host: str = "127.0.0.1", db: str = ":memory:", token: str | None = None,
               path: str = DEFAULT_PATH, **failures: Any) -> None:  # fmt: skip
    """Run the reference core in the foreground (the `simulate core` command)."""
    import uvicorn

    state = CoreState(db, token)
    state.settings({k: v for k, v in failures.items() if v is not None})
    uvicorn.run(
        create_core_app(state, path), host=host, port=port, log_level="warning", access_log=False
    )
