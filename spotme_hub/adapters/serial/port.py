"""The serial kind's shared parts: its options, opening a port, a read's batch of frames, and
debouncing. The plain-serial loop (`adapter`) and the OSDP loop (`osdp`) both build on these."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field, field_validator, model_validator

from ...config import check_regex
from ...contract import DeviceContext, DeviceError, Options
from .framing import Decoded, Decoder, make_decoder

if TYPE_CHECKING:
    import serial  # pyserial loads when a port opens, not with the options


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
    import serial

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


class FrameSink(Protocol):
    """Where a loop hands the frames of one read (the adapter: debounce and submit)."""

    async def handle(self, ctx: DeviceContext, batch: Batch, reader: Any = None) -> None: ...
