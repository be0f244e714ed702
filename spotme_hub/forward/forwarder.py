"""The forwarder: drains committed records to the SPOT-Me core, in commit order, exactly once in
effect.

The outbox is the `records` table: writers are serialised, so `seq` is the commit order and
"records with seq > forward cursor" is the backlog — every committed record is queued in the same
transaction that commits it. The cursor (and delivery counters) move in one transaction with the
dead letters of a batch, only after the core answered, so a crash at any point resends at most the
batch in flight (with the same `Idempotency-Key`), and the core deduplicates by record id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import and_, select
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.stop import stop_base, stop_never

from ..clock import now_z_ms
from ..config import HubConfig
from ..contract import Outbox
from ..store import RECORDS, Store
from .outbox import (
    COLUMNS,
    SCOPE,
    Batch,
    Item,
    dead_letters,
    encode,
    forward_status,
    insert_dead,
    items_from_rows,
    read_batch,
)
from .tables import DEAD_LETTERS

log = logging.getLogger(__name__)

#: Statuses that block the batch and are retried: the core (or its gateway) is unavailable,
#: overloaded or misconfigured — never the records' fault.
_RETRY_STATUS = {401, 403, 404, 408, 409, 425, 429}
_MAX_RETRY_AFTER_S = 3600.0

__all__ = ["Forwarder", "forward_status", "dead_letters", "run_forwarder", "encode", "Batch"]


class Transient(Exception):
    """The batch could not be delivered now; retry it (after `retry_after` seconds at least)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class BatchRefused(Exception):
    """The core refused the whole batch with a 4xx: some record in it is at fault."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = f"HTTP {status}: {reason}"


@dataclass(slots=True)
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, str] = field(default_factory=dict)  # id -> reason


# --- the forwarder ----------------------------------------------------------------------------


class Forwarder:
    """One per hub. `run(stop)` beside the devices; `drain()` for a one-shot flush."""

    def __init__(self, cfg: HubConfig, store: Store, outbox: Outbox | None = None):
        """The records' forwarder, or with `outbox` a part's changes (their own cursor and
        counters under the scope ``forwarder.<name>``)."""
        if not cfg.core.url:
            raise ValueError("core.url is not set: nothing to forward to")
        self.cfg = cfg
        self.core = cfg.core
        self.store = store
        self.outbox = outbox
        self.scope = SCOPE if outbox is None else f"{SCOPE}.{outbox.name}"
        self.items = "records" if outbox is None else outbox.name  # the body's list
        self.hub_id = cfg.hub.id
        self.url = cfg.core.url.rstrip("/") + (cfg.core.path if outbox is None else outbox.path)
        half_min, half_max = cfg.core.retry_min_s / 2, cfg.core.retry_max_s / 2
        self._backoff = wait_exponential(
            multiplier=half_min, max=half_max
        ) + wait_random_exponential(multiplier=half_min, max=half_max)
        self.headers = {"Content-Type": "application/json"}
        if cfg.core.token is not None:
            self.headers["Authorization"] = f"Bearer {cfg.core.token.get_secret_value()}"
        self.wake = asyncio.Event()
        self.stats: dict[str, Any] = dict(store.get_checkpoint(self.scope, "stats", {}) or {})
        self._next_send = 0.0
        self._error_dirty = False

    # -- wiring ------------------------------------------------------------------------------
    def notify(self, *_: Any) -> None:
        """A commit listener: new records → look now instead of at the next poll."""
        self.wake.set()

    def client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_keepalive_connections=4, keepalive_expiry=60)
        # An http:// core needs no TLS context: httpx builds one up front, loading the CA bundle
        # (~0.1 s of the hub's start). An https:// core's certificate is always verified.
        tls = self.url.lower().startswith("https://")
        return httpx.AsyncClient(timeout=self.core.timeout_s, limits=limits, verify=tls)

    def cursor(self) -> int:
        return int(self.store.get_checkpoint(self.scope, "cursor", 0))

    async def run(self, stop: asyncio.Event) -> None:
        """Forward until `stop`; a POST in flight is abandoned (resent later with the same key)."""
        task = asyncio.create_task(self._loop(), name="forwarder")
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for t in (task, stopper):
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _loop(self) -> None:
        async with self.client() as client:
            while True:
                self.wake.clear()
                try:
                    sent = await self.drain(client)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a store hiccup: log, wait, go on
                    log.exception("forwarder error")
                    self._note_error(f"{type(exc).__name__}: {exc}")
                    await self._persist_error()
                    sent = 0
                if sent == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), self.core.poll_s)

    async def drain(self, client: httpx.AsyncClient | None = None) -> int:
        """Deliver the whole current backlog in commit order; returns how many records left."""
        if client is None:
            async with self.client() as own:
                return await self.drain(own)
        size = self.core.batch_size
        if self.core.drain_rate is not None:
            size = max(1, min(size, int(self.core.drain_rate)))
        after = await asyncio.to_thread(self.cursor)
        total = 0
        pending = asyncio.create_task(self._read(after, size))
        ack: asyncio.Task[None] | None = None
        try:
            while True:
                batch = await pending
                if batch is None:
                    return total
                # read and encode the next batch while this one is on the wire
                pending = asyncio.create_task(self._read(batch.last, size))
                if ack is not None and ack.done():
                    await ack  # an ack that failed stops the drain (the cursor stays put)
                await self._pace(len(batch.seqs))
                # the previous batch's ack commits while this one is on the wire (acks stay in
                # order; a crash before an ack only resends, with the same key)
                ack = asyncio.create_task(self._ack_after(ack, *await self._deliver(client, batch)))
                total += len(batch.seqs)
        finally:
            pending.cancel()
            if ack is not None:
                await ack

    async def _read(self, after: int, size: int) -> Batch | None:
        if self.outbox is None:
            return await asyncio.to_thread(read_batch, self.store, self.hub_id, after, size)
        rows = await asyncio.to_thread(self.outbox.read, self.store, after, size)
        if not rows:
            return None
        items = [(key, text) for _, key, text in rows]
        body = encode(self.hub_id, items, self.items)
        return Batch(items, [seq for seq, _, _ in rows], body)

    async def _pace(self, n: int) -> None:
        """The drain-rate limit: on average no more than `core.drain_rate` records/s."""
        rate = self.core.drain_rate
        if rate is None:
            return
        now = time.monotonic()
        if self._next_send > now:
            await asyncio.sleep(self._next_send - now)
        self._next_send = max(now, self._next_send) + n / rate

    async def _deliver(
        self, client: httpx.AsyncClient, batch: Batch
    ) -> tuple[int, list[tuple[int, str, str]], dict[str, Any]]:
        """Send one batch until the core answers; → what to acknowledge."""
        seq_of = dict(zip((rid for rid, _ in batch.items), batch.seqs, strict=True))

        def key_of(items: list[Item]) -> str:
            return f"{self.hub_id}:{seq_of[items[0][0]]}-{seq_of[items[-1][0]]}"

        outcome = await self.send(client, batch.items, key_of, stop_never, body=batch.body)
        dead = [(seq_of[rid], rid, reason) for rid, reason in outcome.rejected.items()]
        dead.sort()
        n = len(batch.seqs)
        s = self.stats
        s["delivered"] = s.get("delivered", 0) + n - len(dead)
        s["accepted"] = s.get("accepted", 0) + outcome.accepted
        s["duplicates"] = s.get("duplicates", 0) + outcome.duplicates
        s["dead_lettered"] = s.get("dead_lettered", 0) + len(dead)
        s["batches"] = s.get("batches", 0) + 1
        s["last_delivery_at"] = now_z_ms()
        if s.get("state") == "retrying":  # recovered: the error is history, not the state
            s["recovered_at"] = s["last_delivery_at"]
            s["last_error"] = None
        s["state"] = "ok"
        if dead:
            log.warning("core rejected %d record(s); moving them to dead letters", len(dead))
        return batch.last, dead, dict(s)

    async def _ack_after(
        self,
        previous: asyncio.Task[None] | None,
        last: int,
        dead: list[tuple[int, str, str]],
        stats: dict[str, Any],
    ) -> None:
        if previous is not None:
            await previous
        await asyncio.to_thread(self._ack, last, dead, stats)

    def _ack(self, last: int, dead: list[tuple[int, str, str]], stats: dict[str, Any]) -> None:
        if self.outbox is not None and dead:  # a refused change: the next one is sent again
            for _, key, reason in dead:
                log.warning("core refused %s %s: %s", self.outbox.name, key, reason)
            dead = []
        with self.store.write() as conn:
            insert_dead(conn, dead)
            self.store.put_checkpoint(conn, self.scope, "cursor", last)
            self.store.put_checkpoint(conn, self.scope, "stats", stats)

    # -- one batch on the wire -----------------------------------------------------------------
    async def send(
        self,
        client: httpx.AsyncClient,
        records: list[Item],
        key_of: Callable[[list[Item]], str],
        stop: stop_base,
        body: bytes | None = None,
    ) -> Outcome:
        """POST records (retrying transient failures until `stop`); a batch the core refuses
        with a 4xx is bisected down to the record(s) at fault, which come back as rejected."""
        try:
            return await self._post_retrying(client, records, key_of(records), stop, body)
        except BatchRefused as exc:
            if len(records) == 1:
                return Outcome(rejected={records[0][0]: exc.reason})
            mid = len(records) // 2
            a = await self.send(client, records[:mid], key_of, stop)
            b = await self.send(client, records[mid:], key_of, stop)
            return Outcome(
                a.accepted + b.accepted, a.duplicates + b.duplicates, a.rejected | b.rejected
            )

    async def _post_retrying(
        self,
        client: httpx.AsyncClient,
        records: list[Item],
        key: str,
        stop: stop_base,
        body: bytes | None,
    ) -> Outcome:
        if body is None:
            body = encode(self.hub_id, records, self.items)
        ids = {rid for rid, _ in records}
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Transient),
            wait=self._wait,
            stop=stop,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._post(client, body, key, ids)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(
        self, client: httpx.AsyncClient, body: bytes, key: str, ids: set[str]
    ) -> Outcome:
        headers = {**self.headers, "Idempotency-Key": key}
        try:
            resp = await client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise Transient(f"timeout: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise Transient(f"core unreachable: {type(exc).__name__}: {exc}") from exc
        status = resp.status_code
        if status >= 500 or status in _RETRY_STATUS:
            raise Transient(f"HTTP {status}: {_reason(resp)}", _retry_after(resp))
        if status >= 400:
            raise BatchRefused(status, _reason(resp))
        if status >= 300:
            raise Transient(f"HTTP {status}: unexpected redirect to {resp.headers.get('location')}")
        try:
            data = orjson.loads(resp.content)
            rejected = {
                str(item["id"]): str(item.get("reason") or "rejected by the core")
                for item in data.get("rejected") or []
            }
            outcome = Outcome(int(data.get("accepted", 0)), int(data.get("duplicates", 0)))
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError) as exc:
            raise Transient(f"HTTP {status}: unreadable response ({exc})") from exc
        outcome.rejected = {k: v for k, v in rejected.items() if k in ids}
        if len(outcome.rejected) != len(rejected):
            log.warning("core rejected ids that were not in the batch: ignored")
        return outcome

    # -- retry plumbing ----------------------------------------------------------------------
    def _wait(self, state: RetryCallState) -> float:
        """Exponential with jitter (half the step fixed, half random: tenacity's waits), but
        never sooner than the core's Retry-After."""
        delay = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, min(retry_after, _MAX_RETRY_AFTER_S))
        return delay

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.stats["retries"] = self.stats.get("retries", 0) + 1
        self._note_error(str(exc))
        level = logging.WARNING if state.attempt_number == 1 else logging.INFO
        log.log(level, "forward to %s failed (%s); retry %d", self.url, exc, state.attempt_number)

    async def _sleep(self, seconds: float) -> None:
        await self._persist_error()
        await asyncio.sleep(seconds)

    def _note_error(self, message: str) -> None:
        self.stats.update(state="retrying", last_error=message, last_error_at=now_z_ms())
        self._error_dirty = True

    async def _persist_error(self) -> None:
        if self._error_dirty:
            self._error_dirty = False
            stats = dict(self.stats)
            with contextlib.suppress(Exception):  # status only; never block delivery on it
                await asyncio.to_thread(self.store.set_checkpoint, self.scope, "stats", stats)

    # -- dead letters --------------------------------------------------------------------------
    async def retry_dead(self, dlids: list[int] | None = None, attempts: int = 5) -> dict[str, int]:
        """Send open dead letters again (in their commit order). Those the core now takes are
        marked delivered; the rest stay open with the core's new reason."""
        result = {"sent": 0, "delivered": 0, "rejected": 0}
        after = 0
        async with self.client() as client:
            while True:
                rows = await asyncio.to_thread(self._dead_batch, after, dlids)
                if not rows:
                    return result
                after = rows[-1][0]
                recs, _ = items_from_rows(self.store, [r[2:] for r in rows])
                by_id = {rid: (row[0], row[1]) for (rid, _), row in zip(recs, rows, strict=True)}

                def key_of(part: list[Item], by_id: Any = by_id) -> str:
                    first, tries = by_id[part[0][0]]
                    last, _ = by_id[part[-1][0]]
                    return f"{self.hub_id}:dead:{first}-{last}:{tries}"

                outcome = await self.send(client, recs, key_of, stop_after_attempt(attempts))
                await asyncio.to_thread(self._resolve_dead, by_id, outcome.rejected)
                result["sent"] += len(recs)
                result["rejected"] += len(outcome.rejected)
                result["delivered"] += len(recs) - len(outcome.rejected)

    def _dead_batch(self, after: int, dlids: list[int] | None) -> list[Any]:
        dl = DEAD_LETTERS.c
        conds = [dl.status == "open", dl.dlid > after]
        if dlids is not None:
            conds.append(dl.dlid.in_(dlids))
        stmt = (
            select(dl.dlid, dl.attempts, *COLUMNS)
            .select_from(DEAD_LETTERS.join(RECORDS, and_(RECORDS.c.seq == dl.seq)))
            .where(*conds)
            .order_by(dl.dlid)
            .limit(self.core.batch_size)
        )
        with self.store.engine.connect() as conn:
            return list(conn.execute(stmt).all())

    def _resolve_dead(self, by_id: dict[str, tuple[int, int]], rejected: dict[str, str]) -> None:
        stamp = now_z_ms()
        dl = DEAD_LETTERS.c
        with self.store.write() as conn:
            for rid, (dlid, tries) in by_id.items():
                values: dict[str, Any] = {"attempts": tries + 1, "updated_at": stamp}
                if rid in rejected:
                    values["reason"] = rejected[rid][:2000]
                else:
                    values["status"] = "delivered"
                conn.execute(DEAD_LETTERS.update().where(dl.dlid == dlid).values(**values))


def _reason(resp: httpx.Response) -> str:
    try:
        data = resp.json()
        if isinstance(data, dict):
            for key in ("detail", "error", "reason", "message"):
                if data.get(key):
                    return str(data[key])[:500]
    except ValueError:
        pass
    return (resp.text or resp.reason_phrase or "")[:500]


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


async def run_forwarder(hub: Any, stop: asyncio.Event, outbox: Outbox | None = None) -> None:
    """The service `spotme-hub run` starts when `core.url` is set (one per outbox: the records,
    and the parts' that `HasOutbox` turns on). Commits wake each; a part's changes that come
    without a record commit are found at the next `core.poll_s`."""
    fwd = Forwarder(hub.cfg, hub.store, outbox)
    hub.commit_listeners.append(fwd.notify)
    await fwd.run(stop)
