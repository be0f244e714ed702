"""The one mapping engine: a payload (JSON or text) + its topic → a RawPunch, described in YAML.

MQTT payloads, HTTP ingest items and CSV rows all go through `Mapping.apply`. An admin writes,
for each punch field, where to find it:

    mapping:
      match: {type: access}              # only these payloads are punches (others ignored)
      user_id: username                  # a dotted path into the JSON (a.b[0].c)
      card: {path: uid, format: hex}     # or a spec with options
      time: time                         # RFC 3339, epoch s/ms/µs, numbers as strings...
      punch: {path: status, map: {"Masuk": in, "Keluar": out}}
      device_serial: topic[1]            # topic segments are fields too
      verify: {const: card}

Times: RFC 3339 with or without an offset (naive = `timezone`, else the device's/office's zone),
epoch seconds, milliseconds or microseconds (ints, floats or numeric strings), or `time_format`
(strptime). A value that cannot be a real time (seconds since boot, 1970, far future) uses the
receive time and flags `device_time_untrusted` — or quarantines, with `bad_time: quarantine`
(history imports, where the receive time means nothing). Such a punch's id comes from the time
value as the device sent it (with the credential and punch), so a re-sent payload is still
recognised as the same punch (the MQTT adapter, which can tell a redelivery by its DUP flag, gives
such punches its own identity: docs/mqtt.md).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping as AbcMapping
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..clock import DEFAULT_TZ, zone
from ..record import Flag, RawPunch, credential, user_text
from .timefix import EARLIEST, FUTURE_LIMIT

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")
_TOPIC = re.compile(r"^topic\[(-?\d+)\]$")
_NUMERIC = re.compile(r"^[+-]?\d+(\.\d+)?$")


class Ignored(Exception):
    """The payload is not a punch (heartbeat, boot message, a non-matching event): skip it."""


class MappingError(Exception):
    """The payload should be a punch but cannot be read: quarantine it with this reason."""


class FieldSpec(BaseModel):
    """Where one field comes from: a path, a topic segment, a regex group or a constant."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = Field(None, description="Dotted JSON path, `topic[i]`, or a regex group.")
    const: Any = Field(None, description="A constant value.")
    map: dict[str, Any] | None = Field(None, description="Value map, e.g. {'Masuk': 'in'}.")
    default: Any = None
    format: Literal["auto", "hex", "decimal"] = Field(
        "auto", description="Card numbers only: how to read the value."
    )

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        if self.path is None and self.const is None and self.default is None:
            raise ValueError("give path, const or default")
        return self

    def resolve(self, found: Any) -> Any:
        """The field's value from what its path found (or its constant): the default when that
        is absent or empty, then the value map."""
        value = self.default if found is None or found == "" else found
        if self.map is not None and value is not None:
            value = self.map.get(str(value), value)
        return value


def _spec(value: Any) -> Any:
    if isinstance(value, str):
        return {"path": value}
    return value


class Mapping(BaseModel):
    """How to turn one payload into a punch. Shared by MQTT, CSV and HTTP ingest."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["json", "text"] = "json"
    pattern: str | None = Field(
        None, description="Text payloads: a regex whose named groups become fields."
    )
    match: dict[str, Any] = Field(
        default_factory=dict,
        description="Payloads are punches only when every path has this value (or one of a list).",
    )
    ignore: dict[str, Any] = Field(
        default_factory=dict, description="Payloads where any path has this value are skipped."
    )
    require: list[str] = Field(
        default_factory=list, description="Paths that must be present, else the payload is skipped."
    )
    user_id: FieldSpec | None = None
    card: FieldSpec | None = None
    time: FieldSpec | None = None
    punch: FieldSpec | None = None
    verify: FieldSpec | None = None
    device_serial: FieldSpec | None = None
    latitude: FieldSpec | None = None
    longitude: FieldSpec | None = None
    timezone: str | None = Field(None, description="Zone of naive times (default: device/office).")
    time_format: str | None = Field(None, description="strptime format when not RFC 3339/epoch.")
    bad_time: Literal["receive_time", "quarantine"] = "receive_time"

    _specs = field_validator(
        "user_id", "card", "time", "punch", "verify", "device_serial", "latitude", "longitude",
        mode="before",
    )(_spec)  # fmt: skip

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        from ..config import check_regex

        return check_regex(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        from ..config import check_timezone

        return check_timezone(v)

    @model_validator(mode="after")
    def _who(self) -> Mapping:
        if self.user_id is None and self.card is None:
            raise ValueError("a mapping needs user_id or card")
        if self.format == "text" and self.pattern is None:
            raise ValueError("format: text needs a pattern")
        return self

    # -- applying ------------------------------------------------------------------------------
    def parse_payload(self, payload: bytes | str | Any) -> Any:
        """bytes/str → document (JSON value, or the dict of regex groups for text)."""
        if isinstance(payload, bytes | bytearray):
            try:
                payload = bytes(payload).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MappingError(f"payload is not UTF-8 text: {exc}") from exc
        if self.format == "text":
            text = str(payload).strip()
            assert self.pattern is not None
            m = re.search(self.pattern, text)
            if m is None:
                raise MappingError(f"text does not match pattern {self.pattern!r}")
            return {k: v for k, v in m.groupdict().items() if v is not None}
        if isinstance(payload, str):
            if not payload.strip():
                raise Ignored("empty payload")
            try:
                return orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise MappingError(f"invalid JSON: {exc}") from exc
        return payload

    def apply(
        self,
        payload: Any,
        topic: str | None = None,
        received_at: datetime | None = None,
        default_timezone: str = DEFAULT_TZ,
        source: dict[str, Any] | None = None,
    ) -> RawPunch:
        """Map one payload. Raises `Ignored` (skip) or `MappingError` (quarantine)."""
        received_at = received_at or datetime.now(UTC)
        doc = self.parse_payload(payload)
        segments = topic.split("/") if topic else []
        for path, want in self.match.items():
            if not _matches(lookup(doc, path, segments), want):
                raise Ignored(f"{path} does not match {want!r}")
        for path, value in self.ignore.items():
            if _matches(lookup(doc, path, segments), value):
                raise Ignored(f"{path} is {value!r}")
        for path in self.require:
            if lookup(doc, path, segments) is None:
                raise Ignored(f"{path} is absent")

        def get(spec: FieldSpec | None) -> Any:
            if spec is None:
                return None
            return spec.resolve(
                spec.const if spec.path is None else lookup(doc, spec.path, segments)
            )

        user = get(self.user_id)
        card = get(self.card)
        if card is not None and self.card is not None:
            card = card_value(card, self.card.format)
        user = user_text(user)
        if user is None and card in (None, ""):
            raise MappingError("no user id or card in the payload")
        flags: set[str] = set()
        device_time = None
        identity: str | None = None
        if self.time is not None:
            raw_time = get(self.time)
            device_time, problem = parse_time(
                raw_time, self.timezone or default_timezone, received_at, self.time_format
            )
            if problem is not None:
                if self.bad_time == "quarantine":
                    raise MappingError(problem)
                flags.add(Flag.DEVICE_TIME_UNTRUSTED)
                device_time = None
                if raw_time is not None and raw_time != "":  # a time, but not a real one
                    identity = _untrusted_identity(user, card, raw_time, get(self.punch))
        lat, lon = get(self.latitude), get(self.longitude)
        return RawPunch(
            identity=identity,
            device_time=device_time,
            user_id=user,
            card=card,
            punch=get(self.punch),
            verify=get(self.verify),
            latitude=_coord(lat),
            longitude=_coord(lon),
            device_serial=None if (s := get(self.device_serial)) is None else str(s),
            received_at=received_at,
            flags=flags,
            source=dict(source or {}),
            raw=doc if self.format == "json" else payload,
        )


def _untrusted_identity(user: Any, card: Any, raw_time: Any, punch: Any) -> str:
    """The identity of a punch whose time cannot be trusted (seconds since boot, a clock reset to
    1970 or 1999, far future): the time *as the device gave it*, not the receive time, so the same
    payload delivered again (an MQTT redelivery, an HTTP client's retry) gets the same id, while
    a bad clock that still ticks keeps two punches apart. (A payload with no time at all has
    nothing of its own to tell two punches apart: its id keeps the receive second.)"""
    said = orjson.dumps([raw_time, punch], default=str).decode()
    return f"{credential(user, card)}|untrusted-time|{said}"


def lookup(doc: Any, path: str, topic_segments: list[str] | None = None) -> Any:
    """Value at a dotted path (`a.b[0].c`), or a topic segment (`topic[1]`); None when absent.
    A key present verbatim (e.g. the CSV header `No. Pekerja`) wins over path splitting."""
    topic_index, parts = _parsed_path(path)
    if topic_index is not None:
        try:
            return (topic_segments or [])[topic_index]
        except IndexError:
            return None
    if (type(doc) is dict or isinstance(doc, AbcMapping)) and path in doc:
        return doc[path]  # a key with dots/brackets (CSV headers)
    node = doc
    for key, index in parts:
        if key is not None:
            if not (type(node) is dict or isinstance(node, AbcMapping)) or key not in node:
                return None
            node = node[key]
        else:
            if not isinstance(node, list):
                return None
            try:
                node = node[index]
            except IndexError:
                return None
    return node


@functools.lru_cache(maxsize=1024)
def _parsed_path(path: str) -> tuple[int | None, tuple[tuple[str | None, int], ...]]:
    """(topic segment index or None, the path's (key, list index) steps): parsed once a path."""
    m = _TOPIC.match(path)
    if m:
        return int(m.group(1)), ()
    steps = tuple(
        (key, 0) if key else (None, int(index)) for key, index in _PATH_PART.findall(path)
    )
    return None, steps


def _matches(value: Any, want: Any) -> bool:
    options = want if isinstance(want, list) else [want]
    for option in options:
        if value == option or (value is not None and str(value).lower() == str(option).lower()):
            return True
    return False


def card_value(value: Any, fmt: str) -> str | None:
    """Card text as the source wrote it, interpreted per `fmt` (the canonical form is made by the
    normaliser's `canonical_card`)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise MappingError(f"not a card number: {value!r}")
    text = str(value).strip()
    if fmt == "hex":
        clean = text.replace("-", "").replace(":", "").replace(" ", "")
        if not re.fullmatch(r"(0x)?[0-9A-Fa-f]+h?", clean):
            raise MappingError(f"not a hex card number: {value!r}")
        return "0x" + clean.removeprefix("0x").removesuffix("h")
    if fmt == "decimal":
        if not text.isdigit():
            raise MappingError(f"not a decimal card number: {value!r}")
        return text
    return text


def _coord(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if v == -1 else v


def epoch_to_datetime(value: float) -> datetime:
    """Epoch seconds, milliseconds or microseconds (by magnitude) → aware UTC datetime."""
    v = float(value)
    if abs(v) >= 1e14:
        v /= 1e6
    elif abs(v) >= 1e11:
        v /= 1e3
    return datetime.fromtimestamp(v, UTC)


def parse_time(
    value: Any,
    timezone: str,
    received_at: datetime,
    time_format: str | None = None,
) -> tuple[datetime | None, str | None]:
    """(time, None) or (None, reason). Naive results are localised to `timezone`."""
    if value is None or value == "":
        return None, "no time in the payload"
    when: datetime
    try:
        if isinstance(value, datetime):
            when = value
        elif isinstance(value, bool):
            return None, f"not a time: {value!r}"
        elif isinstance(value, int | float):
            when = epoch_to_datetime(value)
        else:
            text = str(value).strip()
            if time_format:
                when = datetime.strptime(text, time_format)
            elif _NUMERIC.match(text):
                when = epoch_to_datetime(float(text))
            else:
                when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError) as exc:
        return None, f"cannot read time {value!r}: {exc}"
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone(timezone))
    utc = when.astimezone(UTC)
    if utc < EARLIEST:
        return None, f"time {value!r} is before 2000 (seconds since boot or an unset clock?)"
    if utc > received_at.astimezone(UTC) + FUTURE_LIMIT:
        return None, f"time {value!r} is more than a day in the future"
    return when, None
