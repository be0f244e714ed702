"""The canonical attendance record (v1) and the raw punch adapters hand to normalisation.

Every source (terminal, reader, broker, file, HTTP) ends up as one `Record`. It is flat and
JSON-serialisable, and the same dict is stored, served by the API and forwarded to the core.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1

#: Namespace for record ids. Never change it: ids must stay stable across releases.
RECORD_NAMESPACE = uuid.UUID("6f1c3a52-2d7e-5b8e-9a41-5350f74d6501")
_NS_BYTES = RECORD_NAMESPACE.bytes


class Punch(StrEnum):
    IN = "in"
    OUT = "out"
    BREAK_OUT = "break_out"
    BREAK_IN = "break_in"
    OVERTIME_IN = "overtime_in"
    OVERTIME_OUT = "overtime_out"
    UNKNOWN = "unknown"


class Verify(StrEnum):
    FINGERPRINT = "fingerprint"
    FACE = "face"
    CARD = "card"
    PASSWORD = "password"
    PALM = "palm"
    VEIN = "vein"
    OTHER = "other"
    UNKNOWN = "unknown"


class LocationSource(StrEnum):
    OFFICE = "office"
    DEVICE = "device"
    PAYLOAD = "payload"


class Flag(StrEnum):
    UNMAPPED_EMPLOYEE = "unmapped_employee"
    OUTSIDE_GEOFENCE = "outside_geofence"
    CLOCK_SKEW = "clock_skew"
    DEVICE_TIME_UNTRUSTED = "device_time_untrusted"


try:  # CPython's own SHA-1: the same digests as hashlib's, without OpenSSL's per-call setup
    from _sha1 import sha1 as sha1  # (0.5 against 0.8 s for 1M keys); used by frame.py too
except ImportError:  # pragma: no cover - another interpreter
    sha1 = hashlib.sha1


def record_id(identity: str, wall_second: str | None = None) -> str:
    """The id of a punch with this identity key.

    With `wall_second` (``YYYY-MM-DDTHH:MM:SS``, the device-local second the key holds) the id is
    time-ordered, a UUIDv8 (RFC 9562): the first 48 bits are that wall-clock time in milliseconds
    since 1970 (as if it were UTC), the other 74 free bits are those of the key's UUIDv5. Ids of
    punches close in time are close in the store's unique index, so a commit touches one or two
    index pages instead of one per record. Without it (an identity that carries no trustworthy
    time, e.g. a payload hash) the id is the UUIDv5 of the key.
    """
    n = int.from_bytes(sha1(_NS_BYTES + identity.encode("utf-8")).digest()[:16], "big")
    if wall_second is None:
        n = (n & _KEEP_V5) | _SET_V5
    else:
        n = (wall_ms(wall_second) << 80) | (n & _KEEP_V8) | _SET_V8
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_VERSION, _VARIANT = 0xF << 76, 0x3 << 62  # the bits RFC 9562 fixes
_KEEP_V5 = ((1 << 128) - 1) & ~_VERSION & ~_VARIANT
_SET_V5 = (5 << 76) | (2 << 62)
_KEEP_V8 = ((1 << 80) - 1) & ~_VERSION & ~_VARIANT  # the free bits after the 48-bit time
_SET_V8 = (8 << 76) | (2 << 62)
_WALL_MAX_MS = (1 << 48) - 1
_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)


def wall_ms(wall_second: str) -> int:
    """A device-local wall-clock second (``YYYY-MM-DDTHH:MM:SS``) as the 48-bit millisecond count
    that leads its record id (clamped to 0 … 2**48 - 1)."""
    seconds = (datetime.fromisoformat(wall_second) - _EPOCH) // _SECOND
    return min(max(seconds * 1000, 0), _WALL_MAX_MS)


#: Printable ASCII but `"` and `\\`: the characters a JSON string holds as they are.
_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


def plain_strings(values: Sequence[Any]) -> bool:
    """All str, printable ASCII, no `"` or `\\`: then each value's JSON text is the value in
    quotes (bulk JSON rendering skips the encoder for such columns). One join and two C passes
    over the joined text (5x faster than `isprintable` and a type check per value)."""
    try:
        joined = "".join(values)
    except TypeError:  # a value that is not a str
        return False
    return joined.isascii() and not joined.encode("ascii").translate(None, _PLAIN)


def user_text(value: Any) -> str | None:
    """A user id as the hub keeps it: its text without surrounding blanks; None when blank."""
    if value is None:
        return None
    return str(value).strip() or None


def credential(user_id: Any, card: Any) -> str:
    """Who punched, as identity keys spell it: the user id when there is one, else the card."""
    return f"u:{user_id}" if user_id is not None else f"c:{card}"


def credentials(user_ids: list[Any], cards: list[Any]) -> list[str]:
    """`credential` of many rows; when every row has a user id, without a call per row."""
    if None not in user_ids:
        return [f"u:{u}" for u in user_ids]
    return list(map(credential, user_ids, cards))


def identity_key(device_id: str, credential: str, local_second: str, punch: str) -> str:
    """The source identity of a punch: device, user id or card, device-local time to the second,
    punch type. `local_second` is ``YYYY-MM-DDTHH:MM:SS`` in the device's wall-clock time."""
    return identity_keys(device_id, [credential], [local_second], [punch])[0]


def identity_keys(
    device_id: str, credentials: list[str], local_seconds: list[str], punches: list[str]
) -> list[str]:
    """`identity_key` of many punches of one device (a file's chunk), without a call per punch."""
    prefix = f"{device_id}|"
    return [
        f"{prefix}{c}|{t}|{p}" for c, t, p in zip(credentials, local_seconds, punches, strict=True)
    ]


@dataclass(slots=True)
class RawPunch:
    """What an adapter hands to normalisation: the punch as the source gave it.

    `device_time` naive means wall-clock time of the device's zone; aware means an absolute time.
    `punch`/`verify` may be canonical values, device codes (ints, e.g. ZKTeco) or words
    ("Check In", "Masuk"); normalisation maps them. `identity` overrides the identity key when the
    source has no trustworthy time of its own (e.g. a payload hash).
    """

    device_time: datetime | None
    user_id: str | None = None
    card: str | None = None
    punch: Any = None
    verify: Any = None
    latitude: float | None = None
    longitude: float | None = None
    device_serial: str | None = None
    clock_skew_s: float | None = None
    received_at: datetime | None = None
    flags: set[str] = field(default_factory=set)
    source: dict[str, Any] = field(default_factory=dict)
    raw: Any = None
    identity: str | None = None


@dataclass(slots=True)
class Record:
    id: str
    employee_id: str | None
    source_user_id: str | None
    card: str | None
    punch: str
    verify: str
    occurred_at: str
    local_time: str
    timezone: str
    received_at: str
    clock_skew_s: float | None
    device_id: str
    device_kind: str
    device_serial: str | None
    office_id: str
    office_state: str | None
    latitude: float | None
    longitude: float | None
    location_source: str | None
    distance_m: float | None
    within_geofence: bool | None
    flags: list[str]
    source: dict[str, Any]
    raw: Any
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        names = RECORD_FIELDS
        return cls(**{k: v for k, v in data.items() if k in names})


RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Record))


@dataclass(slots=True)
class Rejection:
    """A punch that cannot become a record: it goes to quarantine with its reason."""

    reason: str
    raw: Any
    source: dict[str, Any]
    device_id: str | None = None
