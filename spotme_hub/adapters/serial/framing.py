"""The byte framings of serial card readers, as small incremental decoders.

Every decoder follows one protocol: ``feed(bytes)`` returns the card reads and the bad frames
completed by those bytes (frames may be split across reads or joined in one), and ``flush()``
ends a partial frame when the line goes idle. Bytes that cannot start a frame are noise: they
are skipped (counted in ``noise``) and the decoder resyncs on the next start byte. A decoder
never invents a card: a `CardRead` is only produced from a complete frame that passes every
check of its framing (checksum, parity, length, non-zero id).

Framings: ``rdm6300`` (EM4100 125 kHz modules: STX, 10 hex, 2 hex XOR, ETX), ``line`` (one card
per text line, hex or decimal) and ``wiegand`` (26/34-bit frames as converters print them).
OSDP is decoded by libosdp; `serial_osdp.osdp_card()` turns its events into the same results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

STX, ETX = 0x02, 0x03
_HEX_BYTES = frozenset(b"0123456789ABCDEFabcdef")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\xff]")
_KEYPAD = re.compile(r"^(?!0+$)[0-9A-Da-d#*]{0,5}$")  # key presses; a lone 0 is a zero id
MAX_LINE = 96


@dataclass(frozen=True, slots=True)
class CardRead:
    """A valid frame: `card` is the canonical 10-digit decimal form."""

    card: str
    frame: bytes
    offset: int
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Something that looked like a frame but fails its checks (goes to quarantine)."""

    reason: str
    frame: bytes
    offset: int


Decoded = CardRead | BadFrame


class Decoder(Protocol):
    framing: ClassVar[str]
    noise: int  # bytes skipped while looking for a frame (and keypad input ignored)

    def feed(self, data: bytes) -> list[Decoded]: ...

    def flush(self) -> list[Decoded]: ...


def em_card(n: int) -> str:
    """The 10-digit decimal printed on EM cards (the 32-bit id, leading zeros kept)."""
    return f"{n:010d}"


# --- RDM6300 / EM4100 ----------------------------------------------------------------------------


class Rdm6300Decoder:
    """STX, 10 ASCII hex (version byte + 32-bit id), 2 ASCII hex XOR of the 5 bytes, ETX.

    Lowercase hex is accepted and the version byte is never validated."""

    framing: ClassVar[str] = "rdm6300"

    def __init__(self) -> None:
        self.buf = bytearray()
        self.base = 0  # stream offset of buf[0]
        self.noise = 0

    def _take(self, n: int) -> bytes:
        chunk = bytes(self.buf[:n])
        del self.buf[:n]
        self.base += n
        return chunk

    def _bad(self, reason: str, n: int) -> BadFrame:
        offset = self.base
        return BadFrame(reason, self._take(n), offset)

    def feed(self, data: bytes) -> list[Decoded]:
        self.buf += data
        out: list[Decoded] = []
        buf = self.buf
        while buf:
            start = buf.find(STX)
            if start != 0:
                skip = len(buf) if start < 0 else start
                self.noise += skip
                self._take(skip)
                continue
            i = 1
            while i < len(buf) and i < 13 and buf[i] in _HEX_BYTES:
                i += 1
            if i == len(buf):
                break  # incomplete: wait for more bytes
            if i < 13:
                c = buf[i]
                if c == STX:  # a stray STX: resync on it
                    if i == 1:
                        self.noise += 1
                        self._take(1)
                    else:
                        out.append(self._bad("truncated frame: STX before the frame ended", i))
                elif c == ETX:
                    out.append(self._bad(f"short frame: {i - 1} hex digits", i + 1))
                else:
                    out.append(self._bad(f"non-hex byte 0x{c:02X} in frame", i + 1))
                continue
            if buf[13] != ETX:
                out.append(self._bad(f"missing ETX (got 0x{buf[13]:02X})", 13))
                continue
            out.append(self._frame(self.base, self._take(14)))
        return out

    @staticmethod
    def _frame(offset: int, frame: bytes) -> Decoded:
        data = bytes.fromhex(frame[1:11].decode("ascii"))
        check = int(frame[11:13], 16)
        xor = 0
        for b in data:
            xor ^= b
        if xor != check:
            return BadFrame(
                f"bad checksum: XOR is {xor:02X}, frame says {check:02X}", frame, offset
            )
        uid = int.from_bytes(data[1:], "big")
        if uid == 0:
            return BadFrame("all-zero card id", frame, offset)
        return CardRead(
            em_card(uid), frame, offset, {"version": f"{data[0]:02X}", "uid_hex": f"{uid:08X}"}
        )

    def flush(self) -> list[Decoded]:
        if len(self.buf) > 1:
            return [self._bad("truncated frame: no ETX before the line went idle", len(self.buf))]
        self.noise += len(self.buf)
        self._take(len(self.buf))
        return []


# --- text lines ---------------------------------------------------------------------------------


class _Lines:
    """Splits a byte stream into lines (CR, LF or CRLF, or a configured delimiter)."""

    def __init__(self, delimiter: bytes | None = None) -> None:
        self.delimiter = delimiter
        self.buf = bytearray()
        self.base = 0

    def feed(self, data: bytes) -> tuple[list[tuple[bytes, int]], list[BadFrame]]:
        self.buf += data
        lines: list[tuple[bytes, int]] = []
        bad: list[BadFrame] = []
        while True:
            if self.delimiter:
                end = self.buf.find(self.delimiter)
                width = len(self.delimiter)
            else:
                cr, lf = self.buf.find(b"\r"), self.buf.find(b"\n")
                end = min(x for x in (cr, lf) if x >= 0) if max(cr, lf) >= 0 else -1
                width = 1
            if end < 0 or end > MAX_LINE:
                if len(self.buf) > MAX_LINE:
                    bad.append(
                        BadFrame(
                            f"line longer than {MAX_LINE} bytes",
                            bytes(self.buf[:MAX_LINE]),
                            self.base,
                        )
                    )
                    del self.buf[:MAX_LINE]
                    self.base += MAX_LINE
                    continue
                return lines, bad
            lines.append((bytes(self.buf[:end]), self.base))
            del self.buf[: end + width]
            self.base += end + width

    def rest(self) -> tuple[bytes, int]:
        chunk, offset = bytes(self.buf), self.base
        self.base += len(self.buf)
        self.buf.clear()
        return chunk, offset


def clean_text(line: bytes) -> str:
    """The printable ASCII of a line. Control and non-ASCII bytes (binary keypad keys, noise)
    become spaces, so they separate digits instead of joining two runs into one number."""
    return _CONTROL.sub(" ", line.decode("latin-1")).strip()


class _LineDecoder:
    framing: ClassVar[str] = "line"

    def __init__(self, delimiter: bytes | None = None) -> None:
        self.lines = _Lines(delimiter)
        self.noise = 0

    def feed(self, data: bytes) -> list[Decoded]:
        lines, out = self.lines.feed(data)
        decoded: list[Decoded] = list(out)
        for raw, offset in lines:
            text = clean_text(raw)
            if _KEYPAD.match(text):  # empty lines, keypad keys, `#`/`*`
                self.noise += len(raw)
                continue
            got = self.decode(text, raw, offset)
            if got is None:
                self.noise += len(raw)
            else:
                decoded.append(got)
        return decoded

    def flush(self) -> list[Decoded]:
        raw, offset = self.lines.rest()
        text = clean_text(raw)
        if _KEYPAD.match(text):
            self.noise += len(raw)
            return []
        return [BadFrame("line without terminator before the line went idle", raw, offset)]

    def decode(self, text: str, raw: bytes, offset: int) -> Decoded | None:
        """One line → a card, a bad frame, or None for input to ignore (keypad)."""
        raise NotImplementedError


class LineDecoder(_LineDecoder):
    """One card per line, hex or decimal. The card is the regex's `card` group (or group 1) of
    the first match; by default the last 6–10 digits of the line, so keypad keys typed before a
    card (converters send them without a line end) do not become part of it."""

    framing: ClassVar[str] = "line"
    DEFAULTS: ClassVar[dict[str, str]] = {
        "decimal": r"(\d{6,10})$",
        "hex": r"([0-9A-Fa-f]{6,10})$",
    }

    def __init__(
        self,
        encoding: Literal["hex", "decimal"] = "decimal",
        delimiter: bytes | None = None,
        regex: str | None = None,
    ) -> None:
        super().__init__(delimiter)
        self.encoding = encoding
        self.pattern = re.compile(regex or self.DEFAULTS[encoding])

    def decode(self, text: str, raw: bytes, offset: int) -> Decoded:
        m = self.pattern.search(text)
        if m is None:
            return BadFrame(f"not a {self.encoding} card number: {text[:40]!r}", raw, offset)
        value = m.groupdict().get("card") or (m.group(1) if m.re.groups else m.group(0))
        base = 16 if self.encoding == "hex" else 10
        try:
            n = int(value, base)
        except (TypeError, ValueError):
            return BadFrame(f"not a {self.encoding} card number: {value!r}", raw, offset)
        if base == 16 and len(value) == 10:  # EM4100 form: version byte first
            n &= 0xFFFFFFFF
        if n == 0:
            return BadFrame("all-zero card id", raw, offset)
        if n > 0xFFFFFFFF:
            return BadFrame(f"card number wider than 32 bits: {value}", raw, offset)
        return CardRead(em_card(n), raw, offset, {"text": value})


# --- Wiegand ------------------------------------------------------------------------------------


def wiegand_decode(value: int, nbits: int) -> tuple[int, dict[str, Any]] | str:
    """Check the parity of a full 26- or 34-bit frame; (data, detail) or the reason it is bad.

    W26: even parity over the first 13 bits, odd over the last 13, 8-bit facility + 16-bit card.
    W34: even over the first 17, odd over the last 17, 32 data bits (16-bit facility + card)."""
    if nbits not in (26, 34):
        return f"{nbits}-bit Wiegand frame (glitch or unsupported format)"
    if value >> nbits:
        return f"value does not fit in {nbits} bits"
    half = nbits // 2
    first, last = value >> half, value & ((1 << half) - 1)
    if first.bit_count() % 2 != 0:
        return "Wiegand parity error (leading even parity)"
    if last.bit_count() % 2 != 1:
        return "Wiegand parity error (trailing odd parity)"
    data = (value >> 1) & ((1 << (nbits - 2)) - 1)
    return data, {"bits": nbits, "facility": data >> 16, "number": data & 0xFFFF}


def wiegand_encode(data: int, nbits: int) -> int:
    """The full frame with parity bits for `data` (24 bits for W26, 32 for W34)."""
    width = nbits - 2
    half = width // 2
    even = (data >> half).bit_count() % 2
    odd = 1 - (data & ((1 << half) - 1)).bit_count() % 2
    return (even << (nbits - 1)) | (data << 1) | odd


class WiegandDecoder(_LineDecoder):
    """W26/W34 frames printed by Wiegand→RS232/IP converters, one per line.

    `text` is how the converter prints a frame: `bits` (a 0/1 string, parity always checked),
    `hex` (6 or 8 digits = data bits only; 7 or 9 = the full frame, parity checked) or `decimal`
    (the data bits as a number, or `FFF,CCCCC`). `bits` pins the frame size (26, 34) or `auto`.
    Keypad bursts (4/8-bit frames, `#`, `*`) are ignored."""

    framing: ClassVar[str] = "wiegand"

    def __init__(
        self,
        text: Literal["hex", "decimal", "bits"] = "hex",
        bits: Literal[26, 34, "auto"] = "auto",
        delimiter: bytes | None = None,
    ) -> None:
        super().__init__(delimiter)
        self.text = text
        self.bits = bits

    def decode(self, text: str, raw: bytes, offset: int) -> Decoded | None:
        t = text.strip()
        if self.text == "bits":
            if set(t) - {"0", "1"}:
                return BadFrame(f"not a Wiegand bit string: {t[:40]!r}", raw, offset)
            if len(t) in (4, 8):  # a keypad key
                return None
            return self._full(int(t, 2), len(t), raw, offset)
        if self.text == "hex":
            t = t.removeprefix("0x").removeprefix("0X").removesuffix("h")
            if not t or set(t) - set("0123456789abcdefABCDEF"):
                return BadFrame(f"not a hex Wiegand frame: {text[:40]!r}", raw, offset)
            value, digits = int(t, 16), len(t)
            sizes = {6: (26, False), 7: (26, True), 8: (34, False), 9: (34, True)}
            if self.bits != "auto":
                data_digits = (self.bits - 2) // 4
                sizes = {d: (self.bits, d > data_digits) for d in range(1, data_digits + 2)}
            if digits not in sizes:
                return BadFrame(f"{digits} hex digits is not a 26/34-bit frame", raw, offset)
            nbits, full = sizes[digits]
            if full:
                return self._full(value, nbits, raw, offset)
            return self._data(value, nbits, raw, offset)
        # decimal
        pair = re.fullmatch(r"(\d{1,5})\s*[,/:]\s*(\d{1,5})", t)
        if pair:
            fc, number = int(pair.group(1)), int(pair.group(2))
            if fc > 0xFFFF or number > 0xFFFF:
                return BadFrame(f"facility/card out of range: {t!r}", raw, offset)
            return self._data((fc << 16) | number, 26 if fc <= 0xFF else 34, raw, offset)
        if not t.isdigit():
            return BadFrame(f"not a decimal Wiegand number: {text[:40]!r}", raw, offset)
        value = int(t)
        for nbits in (26, 34) if self.bits == "auto" else (self.bits,):
            if value < 1 << (nbits - 2):
                return self._data(value, nbits, raw, offset)
        for nbits in (26, 34) if self.bits == "auto" else (self.bits,):
            if value < 1 << nbits:
                return self._full(value, nbits, raw, offset)
        return BadFrame(f"number too large for a {self.bits}-bit frame: {t}", raw, offset)

    def _full(self, value: int, nbits: int, raw: bytes, offset: int) -> Decoded:
        if self.bits != "auto" and nbits != self.bits:
            return BadFrame(f"{nbits}-bit frame on a {self.bits}-bit reader", raw, offset)
        got = wiegand_decode(value, nbits)
        if isinstance(got, str):
            return BadFrame(got, raw, offset)
        data, detail = got
        return self._data(data, nbits, raw, offset, {**detail, "parity": "ok"})

    @staticmethod
    def _data(
        data: int, nbits: int, raw: bytes, offset: int, detail: dict[str, Any] | None = None
    ) -> Decoded:
        if data == 0:
            return BadFrame("zero card number (converters send 0 on a parity error)", raw, offset)
        detail = detail or {"bits": nbits, "facility": data >> 16, "number": data & 0xFFFF}
        return CardRead(em_card(data), raw, offset, detail)


def make_decoder(
    framing: str,
    *,
    encoding: Literal["hex", "decimal"] = "decimal",
    delimiter: bytes | None = None,
    regex: str | None = None,
    text: Literal["hex", "decimal", "bits"] = "hex",
    bits: Literal[26, 34, "auto"] = "auto",
) -> Decoder:
    if framing == "rdm6300":
        return Rdm6300Decoder()
    if framing == "line":
        return LineDecoder(encoding, delimiter, regex)
    if framing == "wiegand":
        return WiegandDecoder(text, bits, delimiter)
    raise ValueError(f"no byte decoder for framing {framing!r}")
