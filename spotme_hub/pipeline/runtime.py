"""The runtime: one supervised asyncio task per device, a group-commit writer, device health.

A device that fails is restarted with exponential backoff and jitter (tenacity's wait strategy);
after `hub.failures_to_down` consecutive failures its health goes DOWN, and back UP as soon as it
answers (the EdgeX model). One device can never block or kill another.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from tenacity import RetryCallState, wait_exponential_jitter

from .. import registry
from ..clock import now_z_ms
from ..config import Device, HubConfig
from ..contract import BulkCounts, DeviceError, Polling, Streaming, SubmitResult, has
from ..normalize import Normalizer
from ..record import RawPunch, Record, Rejection
from ..store import CommitResult, Store
from .writer import GroupWriter

log = logging.getLogger(__name__)
T = TypeVar("T")


# Batches this large are normalised on the adapter pool: at ~30 µs a punch, 1,000 would hold the
# event loop (every other device's session, the ADMS server, the API) for about 30 ms.
OFF_LOOP_BATCH = 1_000


@dataclass
class Health:
    device_id: str
    kind: str
    office_id: str
    state: str = "UNKNOWN"
    last_seen: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    consecutive_failures: int = 0
    counters: Counter[str] = field(default_factory=Counter)
    detail: dict[str, Any] = field(default_factory=dict)
    degradations: int = 0
    dirty: bool = True

    def row(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "kind": self.kind,
            "office_id": self.office_id,
            "state": self.state,
            "last_seen": self.last_seen,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "consecutive_failures": self.consecutive_failures,
            "counters": dict(self.counters),
            "detail": self.detail,
        }


class Context:
    """The `DeviceContext` the runtime hands to one adapter."""

    def __init__(self, hub: Hub, device: Device, health: Health):
        self.hub = hub
        self.device = device
        self.config = hub.cfg
        self.health = health
        self.log = logging.getLogger(f"spotme_hub.device.{device.id}")
        self._states: dict[Callable[[], Any], Any] = {}

    async def submit(
        self,
        punches: Sequence[RawPunch],
        rejections: Sequence[Rejection] = (),
        checkpoint: Mapping[str, Any] | None = None,
        punch_map: Mapping[str, str] | None = None,
    ) -> SubmitResult:
        now = datetime.now(UTC)
        if len(punches) >= OFF_LOOP_BATCH:  # a file's chunk, a terminal's backlog: off the loop
            records, rejected = await self.to_thread(
                self._normalize, punches, rejections, now, punch_map
            )
        else:
            records, rejected = self._normalize(punches, rejections, now, punch_map)
        cps = {(self.device.id, k): v for k, v in (checkpoint or {}).items()}
        result: CommitResult = await self.hub.writer.submit(records, rejected, cps)
        c = self.health.counters
        c["received"] += len(punches)
        c["new"] += len(result.new)
        c["duplicate"] += len(result.duplicate)
        c["quarantined"] += len(result.quarantined)
        if result.new:
            self.health.detail["last_punch_at"] = now_z_ms()
        self.health.dirty = True
        return SubmitResult(records, result.new, result.duplicate, result.quarantined)

    def _normalize(
        self,
        punches: Sequence[RawPunch],
        rejections: Sequence[Rejection],
        now: datetime,
        punch_map: Mapping[str, str] | None,
    ) -> tuple[list[Record], list[Rejection]]:
        records: list[Record] = []
        rejected = list(rejections)
        for raw in punches:
            out = self.hub.normalizer.normalize(self.device, raw, now=now, punch_map=punch_map)
            if isinstance(out, Record):
                records.append(out)
            else:
                rejected.append(out)
        return records, rejected

    def reject(self, reason: str, raw: Any, source: Mapping[str, Any] | None = None) -> Rejection:
        return Rejection(
            reason=reason, raw=raw, source=dict(source or {}), device_id=self.device.id
        )

    def for_device(self, device_id: str) -> Context:
        return self.hub.contexts[device_id]

    def checkpoint(self, key: str, default: Any = None) -> Any:
        return self.hub.store.get_checkpoint(self.device.id, key, default)

    def state(self, factory: Callable[[], T]) -> T:
        if factory not in self._states:
            self._states[factory] = factory()
        value: T = self._states[factory]
        return value

    def _event(self, event: str, **fields: Any) -> dict[str, Any]:
        """A log event's own fields (the JSON log writes them beside the message)."""
        h = self.health
        return {"event": event, "device": self.device.id, "kind": self.device.kind,
                "records": h.counters.get("new", 0), **fields}  # fmt: skip

    def mark_seen(self) -> None:
        self.health.last_seen = now_z_ms()
        self.health.dirty = True

    def mark_up(self, **detail: Any) -> None:
        h = self.health
        if h.state != "UP":
            log.info("device %s is UP", self.device.id, extra=self._event("up"))
        h.state = "UP"
        h.consecutive_failures = 0
        h.detail.pop("starting", None)
        h.detail.update(detail)
        h.detail.pop("degraded_reason", None)
        self.mark_seen()

    def mark_degraded(self, reason: str, **detail: Any) -> None:
        h = self.health
        h.state = "DEGRADED"
        h.degradations += 1
        h.last_error = reason
        h.last_error_at = now_z_ms()
        h.detail.update(detail, degraded_reason=reason)
        h.dirty = True
        log.warning("device %s degraded: %s", self.device.id, reason,
                    extra=self._event("degraded", reason=reason))  # fmt: skip

    def count(self, name: str, n: int = 1) -> None:
        self.health.counters[name] += n
        self.health.dirty = True

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def to_thread(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.hub.adapter_pool, functools.partial(fn, *args, **kwargs)
        )

    async def submit_bulk(self, work: Callable[[Store], BulkCounts]) -> BulkCounts:
        counts = await self.to_thread(work, self.hub.store)
        c = self.health.counters
        c["received"] += counts.rows
        c["new"] += counts.new
        c["duplicate"] += counts.duplicate
        c["quarantined"] += counts.quarantined
        if counts.new:
            self.health.detail["last_punch_at"] = now_z_ms()
            self.hub.committed_in_bulk(self.device, counts)
        self.health.dirty = True
        return counts


class Hub:
    """Owns the store, the writer, the normaliser and one task per enabled device."""

    def __init__(self, cfg: HubConfig, store: Store):
        """`store` with its tables made (`service.open_store`)."""
        self.cfg = cfg
        self.store = store
        self.normalizer = Normalizer(cfg)
        self.writer = GroupWriter(
            self.store, max_queue=cfg.hub.submit_queue, on_commit=self._committed
        )
        self.health: dict[str, Health] = {}
        self.contexts: dict[str, Context] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.metrics: Counter[tuple[str, str]] = Counter()
        #: Called after each commit with its records and result; a bulk import's commit comes
        #: with no records and its `BulkCounts`.
        self.commit_listeners: list[
            Callable[[Sequence[Record], CommitResult | BulkCounts], None]
        ] = []
        self.started_at = time.time()
        # Blocking adapter work (pyzk, pyserial) gets its own pool, sized to the estate, apart
        # from asyncio's default executor and from the writer's thread.
        self.adapter_pool = ThreadPoolExecutor(
            max_workers=max(16, 4 * len(cfg.devices)), thread_name_prefix="spotme-adapter"
        )
        self._stop = asyncio.Event()
        #: set once `start` has the devices running (work that can wait, waits for it)
        self.started = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        for dev in cfg.devices:
            h = Health(dev.id, dev.kind, dev.office)
            if not dev.enabled:
                h.state = "DISABLED"
            self.health[dev.id] = h
            self.contexts[dev.id] = Context(self, dev, h)

    async def reload(self, new: HubConfig) -> dict[str, list[str]]:
        """Take a re-read configuration while running: devices added are started, removed ones
        stopped, changed ones restarted with their new settings, the others left running;
        officers, offices, facts, calendar and schemes replaced. Returns what it did, and the
        sections that need a restart to change (hub, store, API, core)."""
        old = {d.id: d for d in self.cfg.devices}
        now = {d.id: d for d in new.devices}
        removed = sorted(set(old) - set(now))
        added = sorted(set(now) - set(old))
        changed = sorted(d for d in set(old) & set(now) if old[d] != now[d])
        for dev_id in (*removed, *changed):
            task = self.tasks.pop(dev_id, None)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for dev_id in removed:
            self.contexts.pop(dev_id, None)
            self.health.pop(dev_id, None)
        restart = self.cfg.adopt(new)
        self.normalizer = Normalizer(self.cfg)
        for dev_id in (*added, *changed):
            dev = self.cfg.device(dev_id)
            h = Health(dev.id, dev.kind, dev.office)
            if dev_id in changed:  # the same device: its counters go on
                h.counters = self.health[dev_id].counters
            self.health[dev_id] = h
            self.contexts[dev_id] = Context(self, dev, h)
            if not dev.enabled:
                h.state = "DISABLED"
            elif self.started.is_set():
                self._start_device(dev)
        await asyncio.to_thread(self.flush_health, True)
        return {"added": added, "removed": removed, "changed": changed, "restart": restart}

    def starting(self) -> dict[str, str]:
        """Devices still starting (device id → what they are doing, e.g. "subscribing")."""
        return {
            d: h.detail.get("starting", "starting")
            for d, h in self.health.items()
            if h.state == "STARTING"
        }

    def committed_in_bulk(self, device: Device, counts: BulkCounts) -> None:
        """A bulk import committed `counts.new` records of `device`'s: the listeners hear of it
        as a commit without records (a feed stream and the forwarder just look again)."""
        self.metrics[(device.id, device.kind)] += counts.new
        for listener in self.commit_listeners:
            listener((), counts)

    def _committed(self, records: Sequence[Record], result: CommitResult) -> None:
        new = set(result.new)
        per: Counter[tuple[str, str]] = Counter()
        for r in records:
            if r.id in new:
                per[(r.device_id, r.device_kind)] += 1
        self.metrics.update(per)
        if log.isEnabledFor(logging.INFO):
            for (device, kind), n in per.items():
                log.info("committed %d new record(s) of %s", n, device,
                         extra={"event": "commit", "device": device, "kind": kind, "records": n})  # fmt: skip
        for listener in self.commit_listeners:
            listener(records, result)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._tune_gc()
        self.store.background_checkpoints(True)
        self.writer.start()
        for dev in self.cfg.devices:
            if dev.enabled:
                self._start_device(dev)
        self._flusher = asyncio.create_task(self._flush_health_loop(), name="health-flush")
        await asyncio.to_thread(self.flush_health, True)
        self.started.set()

    def _start_device(self, dev: Device) -> None:
        phase = getattr(registry.get(dev.kind), "starting", None)
        if phase:
            self.health[dev.id].state = "STARTING"
            self.health[dev.id].detail["starting"] = phase
        self.tasks[dev.id] = asyncio.create_task(self._supervise(dev), name=f"device:{dev.id}")

    async def stop(self) -> None:
        """Stop devices, commit what is queued, persist health."""
        self._stop.set()
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        if self._flusher:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.writer.close()
        await asyncio.to_thread(self.flush_health, True)
        await asyncio.to_thread(self.store.background_checkpoints, False)
        self.adapter_pool.shutdown(wait=False, cancel_futures=True)
        if self._gc_saved is not None:
            gc.set_threshold(*self._gc_saved)
            gc.unfreeze()
            self._gc_saved = None

    _gc_saved: tuple[int, int, int] | None = None

    def _tune_gc(self) -> None:
        """Under load every punch allocates a few dozen short-lived objects; with Python's default
        thresholds the collector then runs every few punches and keeps walking the long-lived heap
        (configuration, employee maps, modules). Freezing what exists at start and collecting the
        young generation less often took the MQTT benchmark from about 265 to about 220 µs of CPU
        per message (averages of several runs on the 2-core development machine). No full
        collection first: just after start-up there is next to nothing to collect (none found
        when measured), and a pass over the imported heap cost ~50 ms of the time to ready."""
        young = self.cfg.hub.gc_young_threshold
        if young and self._gc_saved is None:
            self._gc_saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(young, 50, 100)

    async def run_until(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # -- supervision -------------------------------------------------------------------------
    async def _supervise(self, dev: Device) -> None:
        ctx = self.contexts[dev.id]
        health = ctx.health
        wait = wait_exponential_jitter(
            multiplier=self.cfg.hub.restart_min_s,
            max=self.cfg.hub.restart_max_s,
            jitter=self.cfg.hub.restart_min_s,
        )
        attempt = 0
        while not self._stop.is_set():
            try:
                kind = registry.get(dev.kind)
                adapter = kind(dev, dev.options)
                if has(kind, Polling):
                    await self._poll_loop(cast(Polling, adapter), ctx)
                else:
                    await cast(Streaming, adapter).run(ctx)
                    raise DeviceError("protocol", "adapter session ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt = health.consecutive_failures + 1
                self._failed(ctx, exc)
                delay = wait(_retry_state(attempt))
                health.detail["next_retry_in_s"] = round(delay, 1)
                log.warning("device %s failed (%s); retry in %.1fs", dev.id, _describe(exc), delay,
                            extra=ctx._event("failed", error=_describe(exc), retry_s=delay))  # fmt: skip
                await asyncio.sleep(delay)

    async def _poll_loop(self, adapter: Polling, ctx: Context) -> None:
        every = float(getattr(ctx.device.options, "poll_every", 60))
        while not self._stop.is_set():
            started = time.monotonic()
            degradations = ctx.health.degradations
            await adapter.poll(ctx)
            if ctx.health.degradations == degradations:  # a clean poll: the device is UP
                ctx.mark_up()
            ctx.count("polls")
            await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))

    def _failed(self, ctx: Context, exc: BaseException) -> None:
        h = ctx.health
        if h.state == "STARTING":  # it has an answer: readiness no longer waits for it
            h.state = "UNKNOWN"
            h.detail.pop("starting", None)
        h.consecutive_failures += 1
        h.counters["failures"] += 1
        h.last_error = _describe(exc)
        h.last_error_at = now_z_ms()
        if h.consecutive_failures >= self.cfg.hub.failures_to_down:
            if h.state != "DOWN":
                log.error("device %s is DOWN: %s", ctx.device.id, h.last_error,
                          extra=ctx._event("down", error=h.last_error))  # fmt: skip
            h.state = "DOWN"
        h.dirty = True

    # -- health persistence ------------------------------------------------------------------
    def flush_health(self, force: bool = False) -> None:
        chosen = [h for h in self.health.values() if force or h.dirty]
        for h in chosen:  # clear first: a change made while saving (other thread) stays dirty
            h.dirty = False
        rows = [h.row() for h in chosen]
        if rows:
            try:
                self.store.save_health(rows)
            except Exception:
                for h in chosen:
                    h.dirty = True
                raise

    async def _flush_health_loop(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            try:
                await asyncio.to_thread(self.flush_health)
            except Exception as exc:
                log.error("saving device health failed: %s", exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DeviceError):
        return str(exc)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout: no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable: connection refused"
    if isinstance(exc, OSError):
        return f"unreachable: {exc.strerror or exc}"
    return f"error: {type(exc).__name__}: {exc}"


def _retry_state(attempt: int) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return state
