"""`kind: serial` — card readers on a serial line: RDM6300/EM4100 modules, ASCII line readers,
Wiegand→RS232/IP converters, and OSDP readers on an RS-485 bus (see `serial_osdp`).

`port` is a device path (`/dev/ttyUSB0`) or a pyserial URL (`socket://10.0.0.5:4001` for a
serial-over-IP converter, `rfc2217://host:port`). A reader thread owns the port: it reads, feeds
the framing's decoder (`serial_framing`) and hands complete frames to the event loop, which
debounces each card (a held card repeats every ~50 ms) and submits punches; malformed frames go
to quarantine with their bytes. Serial readers have no clock, so a punch's time is the time the
hub received it. When the port disappears (USB unplug) the session ends with an `unreachable`
error and the runtime reopens it with backoff; health shows DOWN until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from ...cards import card_forms
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
from .framing import BadFrame, CardRead
from .port import Batch, Debouncer, SerialOptions, open_port

if TYPE_CHECKING:
    pass


_OPENED = object()


class SerialAdapter(Streaming, Replayable, HasDemo):
    kind: ClassVar[str] = "serial"
    options_model: ClassVar[type[Options]] = SerialOptions

    demo_part = sibling("demo", "part")

    def __init__(self, device: Device, options: SerialOptions):
        self.device = device
        self.opts = options
        self.debouncer = Debouncer(options.debounce)
        self.streak: tuple[str, int, float] = ("", 0, 0.0)  # key, identical frames, last seen

    async def run(self, ctx: DeviceContext) -> None:
        if self.opts.framing == "osdp":
            from .osdp import run_osdp

            await run_osdp(self.opts, self, ctx)
            return
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(inbox.put_nowait, item)
            except RuntimeError:  # the loop is gone: stop reading
                stop.set()

        # The port gets its own thread for the whole session: a blocking read parked in the
        # shared executor would hold one of its few workers forever and starve the commits.
        reader = threading.Thread(
            target=self._read_loop, args=(stop, emit), name=f"serial:{self.device.id}", daemon=True
        )
        reader.start()
        try:
            while True:
                item = await inbox.get()
                if isinstance(item, BaseException):
                    raise item
                if item is _OPENED:
                    ctx.mark_up(port=self.opts.port, framing=self.opts.framing)
                    continue
                await self.handle(ctx, item)
        finally:
            stop.set()
            await ctx.to_thread(reader.join, self.opts.frame_timeout + 2)

    def _read_loop(self, stop: threading.Event, emit: Callable[[Any], None]) -> None:
        """Runs in the port's own thread: owns the port from open to close."""
        import serial

        try:
            port = open_port(self.opts.port, self.opts.baudrate, self.opts.frame_timeout)
        except DeviceError as exc:
            emit(exc)
            return
        try:
            emit(_OPENED)
            decoder = self.opts.decoder()
            noise = 0
            while not stop.is_set():
                try:
                    data = port.read(1)
                    if data and port.in_waiting:
                        data += port.read(port.in_waiting)
                except (serial.SerialException, OSError) as exc:
                    partial = decoder.flush()  # a frame cut by the unplug goes to quarantine
                    if partial:
                        emit(Batch(datetime.now(UTC), time.monotonic(), partial))
                    emit(DeviceError("unreachable", f"{self.opts.port} went away: {exc}"))
                    return
                items = decoder.feed(data) if data else decoder.flush()
                skipped, noise = decoder.noise - noise, decoder.noise
                if items or skipped:
                    emit(Batch(datetime.now(UTC), time.monotonic(), items, skipped))
        except Exception as exc:  # a bug must surface as a device error, not a silent thread
            emit(exc)
        finally:
            with contextlib.suppress(Exception):
                port.close()

    async def handle(self, ctx: DeviceContext, batch: Batch, reader: Any = None) -> None:
        """Debounce and submit the frames of one read."""
        punches: list[RawPunch] = []
        rejections: list[Rejection] = []
        where = {"port": self.opts.port, "framing": self.opts.framing}
        if reader is not None:
            where["reader"] = reader
        for item in batch.items:
            if isinstance(item, BadFrame):
                if self.debouncer.accept(f"bad|{reader}|{item.frame.hex()}", batch.mono):
                    source = {**where, "offset": item.offset, "received_at": batch.at.isoformat()}
                    rejections.append(ctx.reject(item.reason, item.frame.hex(), source))
                else:
                    ctx.count("debounced")
                continue
            key = f"{reader}|{item.card}"
            if not self.confirmed(key, batch.mono):
                ctx.count("unconfirmed")
                continue
            if not self.debouncer.accept(key, batch.mono):
                ctx.count("debounced")
                continue
            punches.append(self.punch(item, batch.at, where))
        if batch.noise:
            ctx.count("noise_bytes", batch.noise)
        if punches or rejections:
            await ctx.submit(punches, rejections)
        if batch.items:
            ctx.mark_seen()

    def confirmed(self, key: str, t: float) -> bool:
        """True once `key` has been read `confirm` times in a row, each ≤0.5 s after the last."""
        if self.opts.confirm == 1:
            return True
        last_key, n, last_t = self.streak
        n = n + 1 if key == last_key and t - last_t <= 0.5 else 1
        self.streak = (key, n, t)
        return n >= self.opts.confirm

    def punch(self, read: CardRead, at: datetime, where: dict[str, Any]) -> RawPunch:
        return RawPunch(
            device_time=at,
            card=read.card,
            punch=self.opts.reader_punch.get(where.get("reader", -1), self.opts.punch),
            verify="card",
            received_at=at,
            device_serial=f"osdp:{where['reader']}" if "reader" in where else None,
            source={"kind": "serial", **where, "offset": read.offset, **read.detail,
                    **card_forms(read.card)},
            raw=read.frame.hex(),
            # no device clock: the receive instant (µs) keeps two windows two punches
            identity=f"c:{read.card}|{at.isoformat()}",
        )  # fmt: skip

    @classmethod
    def replay(cls, device: Device, raw: Any, source: dict[str, Any]) -> list[RawPunch] | Rejection:
        """Re-read a quarantined frame with the device's current options (e.g. a fixed regex)."""
        opts: SerialOptions = device.options
        try:
            frame = bytes.fromhex(str(raw))
            at = datetime.fromisoformat(source["received_at"])
        except (KeyError, TypeError, ValueError):
            return Rejection("cannot replay: no frame bytes or receive time", raw, source)
        if opts.framing == "osdp":
            return Rejection("OSDP card data cannot be re-read", raw, source)
        decoder = opts.decoder()
        if opts.framing != "rdm6300":  # a quarantined line is kept without its line end
            frame += opts.delimiter.encode("latin-1") if opts.delimiter else b"\n"
        items = [*decoder.feed(frame), *decoder.flush()]
        reads = [i for i in items if isinstance(i, CardRead)]
        if not reads:
            reason = next((i.reason for i in items if isinstance(i, BadFrame)), "no card in frame")
            return Rejection(reason, raw, source)
        adapter = cls(device, opts)
        where: dict[str, Any] = {k: source[k] for k in ("port", "framing", "reader") if k in source}
        return [adapter.punch(r, at, where) for r in reads]
