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
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import serial
from pydantic import Field, field_validator, model_validator

from ...config import Device, check_regex
from ...contract import (
    CommandTools,
    DemoStage,
    DeviceContext,
    DeviceError,
    HasCommands,
    HasDemo,
    Options,
    Replayable,
    Streaming,
)
from ...normalize.cards import card_forms
from ...record import RawPunch, Rejection
from .framing import BadFrame, CardRead, Decoded, Decoder, make_decoder

if TYPE_CHECKING:
    import click


class SerialOptions(Options):
    port: str = Field(description="Device path or pyserial URL (socket://host:port, rfc2217://).")
    baudrate: int = Field(9600, gt=0, description="RDM6300 and most converters: 9600 8N1.")
    framing: Literal["rdm6300", "line", "wiegand", "osdp"] = "rdm6300"
    punch: Literal["in", "out", "unknown"] = Field(
        "unknown", description="Direction of the door this reader guards."
    )
    debounce: float = Field(2.0, ge=0, description="Seconds: one punch per card per window.")
    confirm: int = Field(
        1,
        ge=1,
        le=10,
        description="Identical frames in a row (≤0.5 s apart) before a read "
        "counts; 2 filters the ghost ids of cheap RDM6300 clones (a held card repeats).",
    )
    frame_timeout: float = Field(
        0.3, gt=0, le=5, description="Idle seconds that end a partial frame (it is quarantined)."
    )
    # line
    encoding: Literal["hex", "decimal"] = Field("decimal", description="line: card number base.")
    delimiter: str | None = Field(
        None, description="line/wiegand: line end (default CR, LF, CRLF)."
    )
    regex: str | None = Field(None, description="line: pattern; group `card` or 1 is the card.")
    # wiegand
    bits: Literal[26, 34, "auto"] = Field("auto", description="wiegand: frame size.")
    text: Literal["hex", "decimal", "bits"] = Field(
        "hex", description="wiegand: how the converter prints a frame."
    )
    # osdp
    address: int | list[int] = Field(0, description="osdp: reader address(es) on the bus, 0–126.")
    scbk: str | None = Field(
        None, description="osdp: secure channel base key, 32 hex digits; none = install mode."
    )
    reader_punch: dict[int, Literal["in", "out", "unknown"]] = Field(
        default_factory=dict, description="osdp: direction per reader address (else `punch`)."
    )
    offline_after: float = Field(
        8.0, gt=0, description="osdp: seconds a reader may be offline before health shows it."
    )

    _regex = field_validator("regex")(check_regex)

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, v: str | None) -> str | None:
        if v is not None and (not v or any(ord(c) > 0xFF for c in v)):
            raise ValueError("the delimiter must be 1+ single-byte characters")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: int | list[int]) -> int | list[int]:
        addrs = v if isinstance(v, list) else [v]
        if not addrs or any(not 0 <= a <= 126 for a in addrs) or len(set(addrs)) != len(addrs):
            raise ValueError("OSDP addresses are distinct numbers 0–126 (127 is broadcast)")
        return v

    @field_validator("scbk")
    @classmethod
    def _scbk(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9A-Fa-f]{32}", v):
            raise ValueError("scbk is 16 bytes written as 32 hex digits")
        return v

    @model_validator(mode="after")
    def _framing_keys(self) -> SerialOptions:
        only = {
            "line": ("encoding", "regex"),
            "wiegand": ("bits", "text"),
            "osdp": ("scbk", "offline_after", "reader_punch"),
        }
        for framing, keys in only.items():
            for key in keys:
                if key in self.model_fields_set and self.framing != framing:
                    raise ValueError(f"`{key}` applies to framing {framing}, not {self.framing}")
        stray = set(self.reader_punch) - set(self.addresses)
        if stray:
            raise ValueError(f"reader_punch names readers not in `address`: {sorted(stray)}")
        return self

    @property
    def addresses(self) -> list[int]:
        return list(self.address) if isinstance(self.address, list) else [self.address]

    def decoder(self) -> Decoder:
        delim = self.delimiter.encode("latin-1") if self.delimiter else None
        return make_decoder(
            self.framing, encoding=self.encoding, delimiter=delim, regex=self.regex,
            text=self.text, bits=self.bits,
        )  # fmt: skip


def open_port(url: str, baudrate: int, timeout: float | None) -> serial.SerialBase:
    """Open a device path (exclusively, so a second process cannot steal frames) or a URL."""
    kwargs: dict[str, Any] = {"baudrate": baudrate, "timeout": timeout}
    if "://" not in url:
        kwargs["exclusive"] = True
    try:
        return serial.serial_for_url(url, **kwargs)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise DeviceError("unreachable", f"cannot open {url}: {exc}") from exc


class Debouncer:
    """One accepted read per key per `window` seconds (times are the caller's, monotonic)."""

    def __init__(self, window: float):
        self.window = window
        self.last: dict[str, float] = {}

    def accept(self, key: str, t: float) -> bool:
        last = self.last.get(key)
        if last is not None and t - last < self.window:
            return False
        self.last[key] = t
        if len(self.last) > 4096:  # forget cards not seen for a window
            self.last = {k: v for k, v in self.last.items() if t - v < self.window}
        return True


@dataclass(slots=True)
class Batch:
    """Frames decoded from one read, with the time they arrived."""

    at: datetime
    mono: float
    items: Sequence[Decoded]
    noise: int = 0


_OPENED = object()


class SerialAdapter(Streaming, Replayable, HasCommands, HasDemo):
    kind: ClassVar[str] = "serial"
    options_model: ClassVar[type[Options]] = SerialOptions

    @classmethod
    def commands(cls, cli: click.Group, tools: CommandTools) -> None:
        from .commands import register

        register(cli, tools)

    @classmethod
    def demo_part(cls, demo: DemoStage) -> contextlib.AbstractAsyncContextManager[None]:
        from .demo import part

        return part(demo)

    def __init__(self, device: Device, options: SerialOptions):
        self.device = device
        self.opts = options
        self.debouncer = Debouncer(options.debounce)
        self.streak: tuple[str, int, float] = ("", 0, 0.0)  # key, identical frames, last seen

    async def run(self, ctx: DeviceContext) -> None:
        if self.opts.framing == "osdp":
            from .osdp import run_osdp

            await run_osdp(self, ctx)
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
