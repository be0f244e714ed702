"""`kind: zkteco` — ZKTeco terminals over the binary protocol (port 4370), pull and live capture.

One pull: connect (comm key) → device time (clock skew) → user directory when due → sizes →
disable → read the attendance log chunk by chunk → enable → reconcile the record count → commit
only the records past the high-water mark (with the new mark, in the same transaction) →
optionally clear the log, which happens only after that commit and a reconciled count.
Live mode adds realtime EF_ATTLOG events between pulls; the periodic pull stays as a safety net
for anything missed while disconnected. See docs/zkteco.md.
"""

from __future__ import annotations

import contextlib
import struct
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
)

from ...clock import zone
from ...config import Device
from ...contract import (
    DeviceContext,
    DeviceError,
    HasDemo,
    Options,
    Replayable,
    Streaming,
    sibling,
)
from ...record import RawPunch, Rejection
from . import wire as w

if TYPE_CHECKING:  # pyzk loads when a terminal is opened, not with the options
    from .client import Progress, ZKClient

if TYPE_CHECKING:
    pass


BATCH = 5000


#: an informational field the terminal would not give
UNKNOWN = "unknown"


def _last_answer(state: RetryCallState) -> Any:
    """What the last attempt returned (tenacity's answer when the attempts run out)."""
    assert state.outcome is not None
    return state.outcome.result()


class ZKTecoOptions(Options):
    host: str = Field(min_length=1, description="Terminal address.")
    port: int = Field(4370, ge=1, le=65535)
    transport: Literal["tcp", "udp"] = Field("tcp", description="udp for UDP-only models (MA300…).")
    comm_key: int = Field(0, ge=0, le=999_999, description="Comm key (device password), 0 = none.")
    mode: Literal["poll", "live"] = Field("poll", description="live: realtime events + pulls.")
    poll_every: float = Field(60, gt=0, description="Seconds between pulls (safety net in live).")
    timeout: float = Field(10, gt=0, description="Seconds per command and per chunk.")
    retries: int = Field(3, ge=1, le=10, description="Attempts per chunk and per reconcile.")
    record_layout: Literal["standard", "swapped"] = Field(
        "standard", description="swapped: firmware that stores punch before verify."
    )
    record_size: int | None = Field(
        None, description="Force the attendance record size (default: total ÷ count)."
    )
    clock: Literal["trust", "correct"] = Field(
        "trust", description="correct: set the device clock to hub time when it drifts."
    )
    clear_after_sync: bool = Field(
        False, description="Clear the device log after every record is committed and reconciled."
    )
    users_refresh_s: float = Field(3600, gt=0, description="Re-read the user directory this often.")


@dataclass
class Snapshot:
    body: bytes = b""
    size: int = 0
    count: int = 0
    skew: float = 0.0


@dataclass
class PullStats:
    read: int = 0
    skipped: int = 0
    new: int = 0
    duplicate: int = 0
    quarantined: int = 0
    cleared: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


class ZKTecoAdapter(Streaming, Replayable, HasDemo):
    kind: ClassVar[str] = "zkteco"
    options_model: ClassVar[type[Options]] = ZKTecoOptions

    demo_part = sibling("demo", "part")

    def __init__(self, device: Device, options: ZKTecoOptions):
        self.device = device
        self.opts = options
        self.users: dict[int, tuple[str, str]] = {}  # uid → (user id, name)
        self.names: dict[str, str] = {}  # user id → name
        self.users_due = 0.0
        self.info: dict[str, Any] = {}
        self.left_disabled = False
        self.tz = zone(device.zone)
        self.skew: float | None = None

    # -- the runtime's entry point ---------------------------------------------------------
    async def run(self, ctx: DeviceContext) -> None:
        if self.opts.mode == "live":
            await self._live(ctx)
        while True:
            await self.pull(ctx)
            ctx.count("polls")
            await ctx.sleep(self.opts.poll_every)

    async def pull(
        self, ctx: DeviceContext, progress: Progress | None = None, client: ZKClient | None = None
    ) -> PullStats:
        """One full pull; raises DeviceError on failure (the runtime counts it)."""
        c: ZKClient = client if client is not None else await ctx.to_thread(self._open)
        try:
            stats = await self._pull(ctx, c, progress)
        finally:
            if client is None:
                await ctx.to_thread(c.close)
        if stats.detail.get("reconciled"):
            ctx.mark_up(**self.info, **stats.detail)
        return stats

    # -- pulling ---------------------------------------------------------------------------
    def _open(self) -> ZKClient:
        from .client import ZKClient

        o = self.opts
        c = ZKClient(o.host, o.port, o.timeout, o.comm_key, o.transport == "udp", o.retries)
        c.open()
        if self.left_disabled:  # an earlier session could not re-enable it: do it first
            self._enable(c)
        if not self.info:
            self.info = self._device_info(c)
        return c

    @staticmethod
    def _device_info(c: ZKClient) -> dict[str, str]:
        """The terminal's informational options. One it refuses (older firmwares answer
        ACK_ERROR to `~Platform`, `~SerialNumber`, `~DeviceName` or the version) is recorded as
        unknown and the pull goes on; a connection that fails still fails the pull."""
        reads = {"serial": c.get_serialnumber, "firmware": c.get_firmware_version,
                 "platform": c.get_platform, "model": c.get_device_name}  # fmt: skip
        info: dict[str, str] = {}
        for key, read in reads.items():
            try:
                with c.call(f"device info ({key})"):
                    info[key] = read() or UNKNOWN
            except DeviceError as exc:
                if exc.category != "protocol":
                    raise
                info[key] = UNKNOWN
        return info

    async def _pull(self, ctx: DeviceContext, c: ZKClient, progress: Progress | None) -> PullStats:
        keep = self.opts.clear_after_sync  # the log must not grow between read and clear
        try:
            snap = await ctx.to_thread(self._read, ctx, c, progress, keep)
            stats = await self._commit(ctx, snap)
            if keep and snap.count:
                await ctx.to_thread(self._clear, c, snap.count)
                stats.cleared = True
                ctx.count("cleared", snap.count)
        finally:
            if keep:
                await ctx.to_thread(self._enable, c)
        return stats

    def _read(
        self, ctx: DeviceContext, c: ZKClient, progress: Progress | None, keep: bool
    ) -> Snapshot:
        with c.call("read time"):
            device_now = c.get_time()
        skew = (device_now - datetime.now(self.tz).replace(tzinfo=None)).total_seconds()
        self.skew = skew
        if time.monotonic() >= self.users_due:
            self._refresh_users(c)

        def read_once() -> tuple[Snapshot, str]:
            """One read of the log: (snapshot, "") or (nothing, why the counts disagree)."""
            with c.call("read sizes"):
                c.read_sizes()
            reported = int(c.records)
            if reported == 0:
                return Snapshot(count=0, skew=skew), ""
            with c.call("disable device"):
                c.disable_device()
            self.left_disabled = True
            try:
                data = c.read_attlog(progress)
            finally:
                if not keep:
                    self._enable(c)
            return self._reconcile(data, reported, skew)

        # a read whose counts do not reconcile is read again, `retries` times in all
        snap, problem = Retrying(
            stop=stop_after_attempt(self.opts.retries),
            retry=retry_if_result(lambda got: bool(got[1])),
            after=lambda state: ctx.count("reconcile_retries"),
            retry_error_callback=_last_answer,
        )(read_once)
        if problem:
            ctx.mark_degraded(f"record count does not reconcile: {problem}", reconcile=problem)
            raise DeviceError("mismatch", f"record count does not reconcile: {problem}")
        if self.opts.clock == "correct" and abs(skew) > 2:
            with c.call("set time"):
                c.set_time(datetime.now(self.tz).replace(tzinfo=None, microsecond=0))
            ctx.count("clock_corrected")
        return snap

    def _reconcile(self, data: bytes, reported: int, skew: float) -> tuple[Snapshot, str]:
        total = struct.unpack("<I", data[:4])[0] if len(data) >= 4 else -1
        body = data[4:]
        if total != len(body):
            return Snapshot(), f"dataset says {total} bytes, {len(body)} arrived"
        size = self.opts.record_size or (total // reported if total % reported == 0 else 0)
        if size not in (8, 16) and size < 40:
            return Snapshot(), f"device reports {reported} records but sent {total} bytes"
        parsed = total // size if total % size == 0 else -1
        if parsed != reported:
            return Snapshot(), f"device reports {reported} records, {parsed} parsed ({size}-byte)"
        return Snapshot(body, size, reported, skew), ""

    def _enable(self, c: ZKClient) -> None:
        """Re-enable the terminal: on this connection, else once on a fresh one (a terminal left
        disabled is enabled first at the next session, `left_disabled`)."""
        from .client import ZKClient

        def enable(state: RetryCallState) -> None:
            conn = c if state.attempt_number == 1 else ZKClient(
                self.opts.host, self.opts.port, self.opts.timeout, self.opts.comm_key,
                self.opts.transport == "udp").open()  # fmt: skip
            try:
                with conn.call("enable device"):
                    conn.enable_device()
                self.left_disabled = False
            finally:
                if conn is not c:
                    conn.close()

        with contextlib.suppress(DeviceError):
            for attempt in Retrying(
                stop=stop_after_attempt(2), retry=retry_if_exception_type(DeviceError), reraise=True
            ):
                with attempt:
                    enable(attempt.retry_state)

    def _clear(self, c: ZKClient, committed: int) -> None:
        with c.call("read sizes before clear"):
            c.read_sizes()
        if int(c.records) != committed:
            raise DeviceError(
                "mismatch", f"not clearing: {c.records} records now, {committed} committed"
            )
        with c.call("clear attendance log"):
            c.clear_attendance()

    def _refresh_users(self, c: ZKClient) -> None:
        with c.call("read users"):
            users = c.get_users()
        self.users = {u.uid: (str(u.user_id), u.name) for u in users}
        self.names = {uid: name for uid, name in self.users.values()}
        self.users_due = time.monotonic() + self.opts.users_refresh_s
        self.info["users"] = len(users)

    # -- committing ------------------------------------------------------------------------
    async def _commit(self, ctx: DeviceContext, snap: Snapshot) -> PullStats:
        stats = PullStats(read=snap.count)
        stats.detail = {"records_on_device": snap.count, "record_size": snap.size,
                        "clock_skew_s": round(snap.skew, 1), "reconciled": True}  # fmt: skip
        if not snap.count:
            return stats
        size, body = snap.size, snap.body
        mark = ctx.checkpoint("attlog") or {}
        start = 0
        hwm = int(mark.get("hwm", 0))
        same = mark.get("size") == size and 0 < hwm <= snap.count
        if same and body[(hwm - 1) * size : hwm * size].hex() == mark.get("last"):
            start = hwm  # same log, grown (or not): only the tail is new
        stats.skipped = start
        rows = w.decode_attendance(size, body[start * size :])
        for i in range(0, len(rows), BATCH) if rows else ():
            batch = rows[i : i + BATCH]
            parsed = [self._punch(ctx, r, start + i + k, size, body, snap.skew)
                      for k, r in enumerate(batch)]  # fmt: skip
            punches = [p for p in parsed if isinstance(p, RawPunch)]
            rejected = [p for p in parsed if isinstance(p, Rejection)]
            end = start + i + len(batch)
            checkpoint = {"attlog": {"hwm": end, "size": size,
                                     "last": body[(end - 1) * size : end * size].hex()}}  # fmt: skip
            result = await ctx.submit(punches, rejected, checkpoint=checkpoint)
            stats.new += len(result.new)
            stats.duplicate += len(result.duplicate)
            stats.quarantined += len(result.quarantined)
        return stats

    def _punch(self, ctx: DeviceContext, row: tuple[int, str, int, int, int], index: int,
               size: int, body: bytes, skew: float) -> RawPunch | Rejection:  # fmt: skip
        uid, user_id, packed, a, b = row
        verify, punch = (b, a) if self.opts.record_layout == "swapped" else (a, b)
        if not user_id:
            user_id = self.users.get(uid, (str(uid), ""))[0]
        raw = {"hex": body[index * size : (index + 1) * size].hex(), "size": size,
               "layout": self.opts.record_layout}  # fmt: skip
        source: dict[str, Any] = {"kind": "zkteco", "index": index, "record_size": size, "uid": uid}
        if user_id in self.names:
            source["name"] = self.names[user_id]
        try:
            when = w.decode_time(packed)
        except ValueError:
            return ctx.reject(f"undecodable device time 0x{packed:08x}", raw, source)
        return RawPunch(device_time=when, user_id=user_id, punch=punch, verify=verify,
                        device_serial=self.info.get("serial"), clock_skew_s=skew, source=source,
                        raw=raw)  # fmt: skip

    @classmethod
    def replay(cls, device: Device, raw: Any, source: dict[str, Any]) -> list[RawPunch] | Rejection:
        """Re-parse a quarantined record from its bytes (`raw.hex`), e.g. after a layout fix."""
        data, size = bytes.fromhex(raw["hex"]), int(raw["size"])
        uid, user_id, packed, a, b = w.decode_attendance(size, data)[0]
        layout = getattr(device.options, "record_layout", raw.get("layout"))
        verify, punch = (b, a) if layout == "swapped" else (a, b)
        try:
            when = w.decode_time(packed)
        except ValueError:
            return Rejection(f"undecodable device time 0x{packed:08x}", raw, source, device.id)
        return [RawPunch(device_time=when, user_id=user_id or str(uid), punch=punch,
                         verify=verify, source=source, raw=raw)]  # fmt: skip

    # -- live capture ----------------------------------------------------------------------
    async def _live(self, ctx: DeviceContext) -> None:
        c = await ctx.to_thread(self._open)
        try:
            while True:
                await self.pull(ctx, client=c)
                ctx.count("polls")
                await ctx.to_thread(c.register_events, w.EF_ATTLOG)
                due = time.monotonic() + self.opts.poll_every
                while (left := due - time.monotonic()) > 0:
                    events = await ctx.to_thread(c.wait_events, min(left, 1.0))
                    if events:
                        await self._submit_events(ctx, events)
                    ctx.mark_seen()
                await ctx.to_thread(c.register_events, 0)
        finally:
            await ctx.to_thread(c.close)

    async def _submit_events(self, ctx: DeviceContext, events: list[Any]) -> None:
        punches = []
        for user_id, a, b, when in events:
            verify, punch = (b, a) if self.opts.record_layout == "swapped" else (a, b)
            punches.append(RawPunch(
                device_time=when, user_id=user_id, punch=punch, verify=verify,
                device_serial=self.info.get("serial"), clock_skew_s=self.skew,
                source={"kind": "zkteco", "realtime": True},
                raw={"event": [user_id, a, b, when.isoformat()]},
            ))  # fmt: skip
        ctx.count("realtime_events", len(punches))
        await ctx.submit(punches)
