"""OSDP for `kind: serial` (`framing: osdp`): the hub is the control panel (CP) on an RS-485 bus.

libosdp does the protocol (polling, sequence numbers, CRC, retransmits, secure channel) in its
own refresh thread; this module gives it the serial port as a channel, turns its card-read events
into punches, and shows each reader's online/offline state in device health. A reader that is
offline for longer than `offline_after` seconds makes the device DEGRADED with the reader's
address in the detail; the port itself going away ends the session (`unreachable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import osdp
import serial

from ...contract import DeviceContext, DeviceError
from .framing import BadFrame, CardRead, Decoded, clean_text, em_card, wiegand_decode
from .port import Batch, FrameSink, SerialOptions, open_port

OSDP_RAW_UNSPECIFIED = osdp.CardFormat.Unspecified
OSDP_RAW_WIEGAND = osdp.CardFormat.Wiegand
OSDP_ASCII = osdp.CardFormat.ASCII


def osdp_card(event: Mapping[str, Any], offset: int = 0) -> Decoded:
    """A libosdp card-read event → the card. Raw formats carry `length` bits packed MSB first,
    left-justified in `data`; 26/34-bit frames have their Wiegand parity checked, 32-bit raw
    frames are a plain card id. ASCII data is the card number as text."""
    data = event.get("data")
    if not isinstance(data, bytes | bytearray):
        return BadFrame("card read without data", b"", offset)
    data = bytes(data)
    fmt, length = event.get("format"), event.get("length")
    if fmt == OSDP_ASCII:
        text = clean_text(data)
        if not text.isdigit() or len(text) > 10:
            return BadFrame(f"ASCII card data is not a card number: {text[:40]!r}", data, offset)
        if not 0 < int(text) <= 0xFFFFFFFF:
            return BadFrame(f"not a 32-bit card id: {text}", data, offset)
        return CardRead(em_card(int(text)), data, offset, {"format": "ascii"})
    if fmt not in (OSDP_RAW_WIEGAND, OSDP_RAW_UNSPECIFIED):
        return BadFrame(f"unknown card format {fmt!r}", data, offset)
    if not isinstance(length, int) or length <= 0 or length > len(data) * 8:
        return BadFrame(f"bit length {length!r} does not fit {len(data)} data bytes", data, offset)
    value = int.from_bytes(data, "big") >> (len(data) * 8 - length)
    if length == 32:
        if value == 0:
            return BadFrame("all-zero card id", data, offset)
        return CardRead(em_card(value), data, offset, {"bits": 32})
    got = wiegand_decode(value, length)
    if isinstance(got, str):
        return BadFrame(got, data, offset)
    card, detail = got
    if card == 0:
        return BadFrame("zero card number", data, offset)
    return CardRead(em_card(card), data, offset, {**detail, "parity": "ok"})


class PortChannel(osdp.Channel):
    """A pyserial port as a libosdp channel (non-blocking reads). An I/O error is kept for the
    adapter to report instead of being raised inside libosdp's thread."""

    def __init__(self, port: serial.SerialBase):
        super().__init__()
        self.port = port
        self.error: BaseException | None = None

    def read(self, max_bytes: int) -> bytes:
        if self.error is not None:
            return b""
        try:
            return bytes(self.port.read(max_bytes))
        except Exception as exc:  # SerialException, OSError, termios.error: the port is gone
            self.error = exc
            return b""

    def write(self, buf: bytes) -> int:
        if self.error is not None:
            return 0
        try:
            return int(self.port.write(buf) or 0)
        except Exception as exc:
            self.error = exc
            return 0

    def flush(self) -> None:
        if self.error is not None:
            return
        try:
            self.port.flush()
        except Exception as exc:
            self.error = exc


def _reader_states(cp: osdp.ControlPanel, addresses: list[int]) -> dict[int, bool]:
    mask = cp.status()
    return {a: bool(mask & (1 << i)) for i, a in enumerate(addresses)}


async def run_osdp(opts: SerialOptions, sink: FrameSink, ctx: DeviceContext) -> None:
    addresses = opts.addresses
    port = await ctx.to_thread(open_port, opts.port, opts.baudrate, 0)
    channel = PortChannel(port)
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[int, dict[str, Any], datetime, float]] = asyncio.Queue()

    def on_event(index: int, event: dict[str, Any]) -> int:
        """libosdp's thread: forward card reads to the event loop."""
        if event.get("event") == osdp.Event.CardRead:
            item = (addresses[index], event, datetime.now(UTC), time.monotonic())
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(inbox.put_nowait, item)
        return 0

    scbk = bytes.fromhex(opts.scbk) if opts.scbk else None
    infos = [osdp.PDInfo(a, channel, scbk=scbk, name=f"{ctx.device.id}:{a}") for a in addresses]
    cp = osdp.ControlPanel(infos, log_level=osdp.LogLevel.Error, event_handler=on_event)
    cp.start()
    started = time.monotonic()
    offline_since: dict[int, float] = {a: started for a in addresses}
    shown: tuple[int, ...] | None = None
    seq = 0
    try:
        ctx.mark_up(
            port=opts.port, framing="osdp", readers={str(a): "connecting" for a in addresses}
        )
        while True:
            if channel.error is not None:
                raise DeviceError("unreachable", f"{opts.port} went away: {channel.error}")
            try:
                first = await asyncio.wait_for(inbox.get(), timeout=0.5)
                items = [first]
                while not inbox.empty():
                    items.append(inbox.get_nowait())
            except TimeoutError:
                items = []
            for address, event, at, mono in items:
                seq += 1
                decoded = osdp_card(event, offset=seq)
                await sink.handle(ctx, Batch(at, mono, [decoded]), reader=address)
            # reader health
            now = time.monotonic()
            states = _reader_states(cp, addresses)
            for a, online in states.items():
                if online:
                    offline_since.pop(a, None)
                else:
                    offline_since.setdefault(a, now)
            late = tuple(
                a for a, t in sorted(offline_since.items()) if now - t >= opts.offline_after
            )
            if late != shown:
                readers = {str(a): "online" if states[a] else "offline" for a in addresses}
                if late:
                    names = ", ".join(str(a) for a in late)
                    ctx.mark_degraded(f"OSDP reader(s) offline: {names}", readers=readers)
                else:
                    ctx.mark_up(readers=readers)
                shown = late
            elif not late and states and all(states.values()):
                ctx.mark_up(readers={str(a): "online" for a in addresses})
    finally:
        await ctx.to_thread(cp.stop)
        with contextlib.suppress(Exception):
            port.close()
