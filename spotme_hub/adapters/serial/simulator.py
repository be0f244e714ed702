"""Simulated serial card readers on pseudo-terminals: what `spotme-hub simulate serial`, the demo
and the tests plug the hub into.

`VirtualPort` is a pty pair: the hub opens `path` with pyserial exactly as it would open
`/dev/ttyUSB0`; the simulator writes reader output to the master side. With `link=` the path is a
symlink that `unplug()` removes (and closes the pty, so an open port fails like an unplugged USB
adapter) and `replug()` points at a fresh pty. `OsdpReaders` runs libosdp peripheral devices
(one per address) on the master side, sharing it like readers on one RS-485 bus.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import tty
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import osdp

from ...cards import canonical_card
from .framing import wiegand_encode
from .osdp import OSDP_RAW_WIEGAND


def card_id(card: str | int) -> int:
    """The 32-bit id of a card written in any form `canonical_card` accepts."""
    canonical = canonical_card(card)
    if canonical is None:
        raise ValueError(f"not a card number: {card!r}")
    return int(canonical)


# --- what readers emit --------------------------------------------------------------------------


def rdm6300_frame(card: str | int, version: int = 0x10, lowercase: bool = False,
                  bad_checksum: bool = False) -> bytes:  # fmt: skip
    """STX, 10 hex (version byte + 32-bit id), 2 hex XOR, ETX."""
    data = (
        bytes([version]) + card_id(card).to_bytes(4, "big")
        if card
        else bytes([version, 0, 0, 0, 0])
    )
    xor = 0
    for b in data:
        xor ^= b
    if bad_checksum:
        xor ^= 0x5A
    text = (data.hex() + f"{xor:02x}").upper()
    if lowercase:
        text = text.lower()
    return b"\x02" + text.encode("ascii") + b"\x03"


def line_frame(card: str | int, encoding: str = "decimal", end: bytes = b"\r\n") -> bytes:
    n = card_id(card)
    text = f"{n:010d}" if encoding == "decimal" else f"{n:08X}"
    return text.encode("ascii") + end


def wiegand_line(card: str | int, bits: int = 26, text: str = "hex", end: bytes = b"\r\n",
                 parity_error: bool = False) -> bytes:  # fmt: skip
    """One frame as a Wiegand→RS232 converter prints it (full frame for hex and bits)."""
    data = card_id(card)
    if data >> (bits - 2):
        raise ValueError(f"card {card} does not fit a {bits}-bit frame")
    frame = wiegand_encode(data, bits) ^ (1 if parity_error else 0)
    if text == "bits":
        out = format(frame, f"0{bits}b")
    elif text == "hex":
        out = f"{frame:0{(bits + 3) // 4}X}"
    else:
        out = str(data)
    return out.encode("ascii") + end


def osdp_card_event(card: str | int, bits: int = 26, parity_error: bool = False) -> dict[str, Any]:
    """A libosdp CardRead event: the Wiegand frame's bits, MSB first, left-justified."""
    frame = wiegand_encode(card_id(card), bits) ^ (1 if parity_error else 0)
    size = (bits + 7) // 8
    data = (frame << (size * 8 - bits)).to_bytes(size, "big")
    return {"event": 1, "reader_no": 0, "direction": 0, "format": OSDP_RAW_WIEGAND,
            "length": bits, "data": data}  # fmt: skip


# --- the port -----------------------------------------------------------------------------------


class VirtualPort:
    def __init__(self, link: str | Path | None = None):
        self.link = Path(link) if link else None
        self.master = self.slave = -1
        self.lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.device = os.ttyname(self.slave)
        if self.link:
            tmp = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.device)
            tmp.replace(self.link)

    @property
    def path(self) -> str:
        """What the hub opens."""
        return str(self.link) if self.link else self.device

    def write(self, data: bytes, timeout: float = 2.0) -> int:
        """Write reader output; returns the bytes written. When nobody drains the port for
        `timeout` seconds (the pty buffer is full) the rest is dropped, as a real reader's
        output is lost when no one listens."""
        deadline = time.monotonic() + timeout
        done = 0
        with self.lock:
            view = memoryview(data)
            while done < len(data):
                try:
                    done += os.write(self.master, view[done:])
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.001)
        return done

    def read(self, max_bytes: int = 4096) -> bytes:
        """What the hub wrote (OSDP commands); b"" when there is nothing."""
        try:
            return os.read(self.master, max_bytes)
        except (BlockingIOError, OSError):
            return b""

    def unplug(self) -> None:
        """The cable is pulled: the path disappears and the open port fails."""
        if self.link:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        self._close_fds()

    def replug(self) -> None:
        """A new pty behind the same path (like the adapter re-enumerating)."""
        self._close_fds()
        self._open()

    def _close_fds(self) -> None:
        with self.lock:
            for fd in (self.master, self.slave):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self.master = self.slave = -1

    def close(self) -> None:
        self.unplug()


class OsdpReaders:
    """libosdp peripheral devices (OSDP readers) at `addresses`, all on one VirtualPort."""

    def __init__(
        self, port: VirtualPort, addresses: Sequence[int] = (0,), scbk: bytes | None = None
    ):
        self.port = port
        self.lock = threading.Lock()
        self.inboxes: dict[int, bytearray] = {a: bytearray() for a in addresses}
        self.devices: dict[int, Any] = {}
        for a in addresses:
            info = osdp.PDInfo(a, _BusChannel(self, a), scbk=scbk, name=f"reader-{a}")
            caps = osdp.PDCapabilities([(osdp.Capability.Readers, 1, 1)])
            self.devices[a] = osdp.PeripheralDevice(info, caps, log_level=osdp.LogLevel.Error)

    def pump(self, address: int, max_bytes: int) -> bytes:
        """Bytes from the CP go to every reader's inbox (like a shared bus)."""
        with self.lock:
            data = self.port.read()
            if data:
                for box in self.inboxes.values():
                    box += data
            box = self.inboxes[address]
            out = bytes(box[:max_bytes])
            del box[:max_bytes]
            return out

    def start(self) -> None:
        for pd in self.devices.values():
            pd.start()

    def stop(self) -> None:
        for pd in self.devices.values():
            with contextlib.suppress(RuntimeError):
                pd.stop()

    def is_online(self, address: int) -> bool:
        return bool(self.devices[address].is_online())

    def card_read(
        self, address: int, card: str | int, bits: int = 26, parity_error: bool = False
    ) -> None:
        self.devices[address].submit_event(osdp_card_event(card, bits, parity_error))


class _BusChannel(osdp.Channel):
    def __init__(self, bus: OsdpReaders, address: int):
        super().__init__()
        self.bus = bus
        self.address = address

    def read(self, max_bytes: int) -> bytes:
        return self.bus.pump(self.address, max_bytes)

    def write(self, buf: bytes) -> int:
        try:
            self.bus.port.write(bytes(buf))
        except OSError:
            return 0
        return len(buf)

    def flush(self) -> None:
        pass


# --- scripted reader output (CLI, demo) ---------------------------------------------------------


def emissions(framing: str, card: str, rng: random.Random, *, noise: bool = False,
              faults: bool = False, hold: int = 1, **fmt: Any) -> Iterator[bytes]:  # fmt: skip
    """The byte chunks one presentation of `card` produces (held for `hold` repeats), with
    optional line noise and, when `faults`, sometimes a malformed frame instead."""
    if noise:
        yield bytes(rng.choice([0x00, 0xFF, 0x7E, 0x55]) for _ in range(rng.randint(1, 4)))
    fault = faults and rng.random() < 0.3
    if framing == "rdm6300":
        frame = rdm6300_frame(card, lowercase=bool(fmt.get("lowercase")))
        if fault:
            frame = rng.choice([
                rdm6300_frame(card, bad_checksum=True), rdm6300_frame(0), frame[:7],
            ])  # fmt: skip
        data = frame * (1 if fault else max(1, hold))
    elif framing == "line":
        data = b"bad line!\r\n" if fault else line_frame(card, fmt.get("encoding", "decimal"))
    elif framing == "wiegand":
        bits = int(fmt.get("bits", 26))
        text = fmt.get("text", "hex")
        if fault and text == "bits":
            data = wiegand_line(card, bits, text)[: bits - 1] + b"\r\n"  # a 25-bit glitch
        else:
            data = wiegand_line(card, bits, text, parity_error=fault and text != "decimal")
    else:
        raise ValueError(f"no byte emissions for framing {framing!r}")
    if noise and len(data) > 4:  # split across reads
        cut = rng.randint(1, len(data) - 1)
        yield data[:cut]
        yield data[cut:]
    else:
        yield data


def run_reader(
    framing: str,
    cards: Sequence[str],
    *,
    every: float = 3.0,
    count: int = 0,
    hold: int = 5,
    noise: bool = False,
    faults: bool = False,
    link: Path | None = None,
    addresses: Sequence[int] = (0,),
    seed: int | None = None,
    say: Any = print,
    stop: threading.Event | None = None,
    **fmt: Any,
) -> None:
    """Blocking loop behind `spotme-hub simulate serial`: present `cards` in turn every `every`
    seconds (`count` presentations, 0 = until stopped)."""
    rng = random.Random(seed)
    stop = stop or threading.Event()
    port = VirtualPort(link)
    readers = OsdpReaders(port, addresses) if framing == "osdp" else None
    say(f"reader port: {port.path}")
    say(f"  hub config: kind: serial, port: {port.path}, framing: {framing}"
        + (f", address: {list(addresses)}" if readers else ""))  # fmt: skip
    try:
        if readers:
            readers.start()
        n = 0
        while not stop.is_set() and (count == 0 or n < count):
            if stop.wait(every):
                break
            card = cards[n % len(cards)]
            n += 1
            if readers:
                address = addresses[n % len(addresses)]
                fault = faults and rng.random() < 0.3
                if not readers.is_online(address):
                    say(f"#{n} reader {address} is not online yet (is the hub polling?)")
                    continue
                readers.card_read(address, card, int(fmt.get("bits", 26)), parity_error=fault)
                say(f"#{n} card {card} on reader {address}" + (" (parity error)" if fault else ""))
                continue
            for chunk in emissions(
                framing, card, rng, noise=noise, faults=faults, hold=hold, **fmt
            ):
                port.write(chunk)
                if framing == "rdm6300" and hold > 1:
                    time.sleep(0.05 * (len(chunk) // 14))  # a held card repeats every ~50 ms
            say(f"#{n} card {card}")
    finally:
        if readers:
            readers.stop()
        port.close()
