"""Normalisation: an adapter's RawPunch → the canonical Record (or a Rejection for quarantine).

Pure functions of the configuration and the input: no I/O, no clock except `now` passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..cards import canonical_card
from ..clock import to_aware, utc_z, utc_z_ms, zone
from ..config import Device, HubConfig, Office
from ..record import (
    Flag,
    LocationSource,
    RawPunch,
    Record,
    Rejection,
    credential,
    identity_key,
    record_id,
    user_text,
)
from .codes import to_punch, to_verify
from .geo import haversine_m, valid_coordinates
from .timefix import implausible

__all__ = ["Normalizer", "Place", "canonical_card", "punch_snapshot", "punch_from_snapshot"]


@dataclass(frozen=True, slots=True)
class Place:
    """Where a punch was: the office it counts for, its coordinates and where they came from,
    the distance to the office and the geofence verdict (None: no coordinates or no fence)."""

    office_id: str
    office_state: str | None
    latitude: float | None
    longitude: float | None
    location_source: str | None
    distance_m: float | None
    within_geofence: bool | None

    @property
    def flags(self) -> frozenset[Flag]:
        """The flags the place alone gives a punch."""
        return _OUTSIDE if self.within_geofence is False else _INSIDE


_OUTSIDE: frozenset[Flag] = frozenset({Flag.OUTSIDE_GEOFENCE})
_INSIDE: frozenset[Flag] = frozenset()


class Normalizer:
    """Holds the lookups derived from a config (employees by PIN and card, offices by id)."""

    def __init__(self, cfg: HubConfig):
        self.cfg = cfg
        self.offices: dict[str, Office] = {o.id: o for o in cfg.offices}
        self.by_pin: dict[str, str] = {}
        self.by_device_pin: dict[tuple[str, str], str] = {}
        self.by_card: dict[str, str] = {}
        for emp in cfg.employees:
            for pin in emp.user_ids:
                dev, sep, scoped = pin.partition(":")
                if sep and dev in {d.id for d in cfg.devices}:
                    self.by_device_pin[(dev, scoped)] = emp.id
                else:
                    self.by_pin[pin] = emp.id
            for card in emp.cards:
                key = canonical_card(card)
                if key:
                    self.by_card[key] = emp.id
        self.max_skew = cfg.hub.max_clock_skew_s
        self._punch_map: dict[str, str] = dict(cfg.hub.punch_map)
        #: the agency's own verify words (`hub.verify_map`), for every source
        self.verify_words: dict[str, str] | None = dict(cfg.hub.verify_map) or None
        self._places: dict[str, Place] = {}
        self._last_received: tuple[datetime | None, str] = (None, "")

    # -- lookups ---------------------------------------------------------------------------
    def employee_for(self, device_id: str, user_id: str | None, card: str | None) -> str | None:
        if user_id is not None:
            emp = self.by_device_pin.get((device_id, user_id)) or self.by_pin.get(user_id)
            if emp is None and user_id.isdigit():  # "00012" on one system, "12" on another
                stripped = user_id.lstrip("0") or "0"
                emp = self.by_device_pin.get((device_id, stripped)) or self.by_pin.get(stripped)
            if emp:
                return emp
        if card is not None:
            return self.by_card.get(card)
        return None

    def punch_map_for(self, device_words: Mapping[str, str] | None) -> Mapping[str, str]:
        """The punch words in force for a device: the hub's `punch_map` under the device's own."""
        return {**self._punch_map, **device_words} if device_words else self._punch_map

    def place(self, device: Device, lat: float | None = None, lon: float | None = None) -> Place:
        """Where a punch of `device` was: the coordinates it carried when they are valid, else
        the device's, else the office's (the last two the same for every punch of a device)."""
        office = self.offices[device.office]
        if valid_coordinates(lat, lon):
            assert lat is not None and lon is not None
            return self._place(office, lat, lon, LocationSource.PAYLOAD.value)
        cached = self._places.get(device.id)
        if cached is None:
            if valid_coordinates(device.latitude, device.longitude):
                assert device.latitude is not None and device.longitude is not None
                cached = self._place(
                    office, device.latitude, device.longitude, LocationSource.DEVICE.value
                )
            elif valid_coordinates(office.latitude, office.longitude):
                assert office.latitude is not None and office.longitude is not None
                cached = self._place(
                    office, office.latitude, office.longitude, LocationSource.OFFICE.value
                )
            else:
                cached = Place(office.id, office.state, None, None, None, None, None)
            self._places[device.id] = cached
        return cached

    @staticmethod
    def _place(office: Office, lat: float, lon: float, source: str) -> Place:
        distance: float | None = None
        within: bool | None = None
        if office.latitude is not None and office.longitude is not None:
            distance = round(haversine_m(office.latitude, office.longitude, lat, lon), 1)
            within = None if office.geofence_m is None else distance <= office.geofence_m
        return Place(office.id, office.state, lat, lon, source, distance, within)

    # -- the transformation -------------------------------------------------------------------
    def normalize(
        self,
        device: Device,
        raw: RawPunch,
        now: datetime | None = None,
        punch_map: Mapping[str, str] | None = None,
    ) -> Record | Rejection:
        now = now or datetime.now(UTC)
        received = raw.received_at or now
        tz_name = device.zone
        flags = set(raw.flags)

        def reject(reason: str) -> Rejection:
            source = {**raw.source, "punch": punch_snapshot(raw)}
            return Rejection(
                reason=reason, raw=_jsonable(raw.raw), source=source, device_id=device.id
            )

        # who
        user_id = user_text(raw.user_id)
        card: str | None = None
        if raw.card is not None and str(raw.card).strip():
            card = canonical_card(raw.card)
            if card is None:
                return reject(f"not a card number: {raw.card!r}")
        if user_id is None and card is None:
            return reject("no user id or card in the punch")

        # when
        tz = zone(tz_name)
        if raw.device_time is None or Flag.DEVICE_TIME_UNTRUSTED in flags:
            flags.add(Flag.DEVICE_TIME_UNTRUSTED)
            when = received
        else:
            when = to_aware(raw.device_time, tz_name)
        when_utc = when.astimezone(UTC)
        problem = implausible(when_utc, now)
        if problem:
            return reject(problem)
        local = when_utc.astimezone(tz).replace(microsecond=0)
        # a time with a fraction of a second (an epoch float, ISO text with one) keeps it, to
        # the millisecond; whole seconds stay as they were (the id is always to the second)
        fraction = when_utc.microsecond >= 1000
        if fraction:
            local_time = when_utc.astimezone(tz).isoformat(timespec="milliseconds")
        else:
            local_time = local.isoformat()  # …+08:00
        # identity: the device's wall-clock second as given, which differs from `local` only in
        # a DST gap (`astimezone` into a time's own zone leaves it as it is)
        wall = when.replace(microsecond=0) if when.tzinfo is tz else local
        wall_second = wall.replace(tzinfo=None).isoformat()
        if raw.clock_skew_s is not None and abs(raw.clock_skew_s) > self.max_skew:
            flags.add(Flag.CLOCK_SKEW)

        # what
        punch = to_punch(raw.punch, self.punch_map_for(punch_map))
        if punch is None:
            return reject(f"unknown punch type {raw.punch!r}")
        verify = to_verify(raw.verify, self.verify_words)
        if card is not None and raw.verify is None:
            verify = to_verify("card")

        # identity
        if raw.identity is not None:
            rid = record_id(f"{device.id}|{raw.identity}")
        else:
            key = identity_key(device.id, credential(user_id, card), wall_second, punch)
            rid = record_id(key, wall_second)

        employee = self.employee_for(device.id, user_id, card)
        if employee is None:
            flags.add(Flag.UNMAPPED_EMPLOYEE)

        # where
        place = self.place(device, raw.latitude, raw.longitude)
        flags |= place.flags

        return Record(
            id=rid,
            employee_id=employee,
            source_user_id=user_id,
            card=card,
            punch=str(punch),
            verify=str(verify),
            occurred_at=utc_z_ms(when_utc) if fraction else utc_z(when_utc),
            local_time=local_time,
            timezone=tz_name,
            received_at=self._received_text(received),
            clock_skew_s=None if raw.clock_skew_s is None else round(raw.clock_skew_s, 3),
            device_id=device.id,
            device_kind=device.kind,
            device_serial=raw.device_serial,
            office_id=place.office_id,
            office_state=place.office_state,
            latitude=place.latitude,
            longitude=place.longitude,
            location_source=place.location_source,
            distance_m=place.distance_m,
            within_geofence=place.within_geofence,
            flags=sorted(str(f) for f in flags) if flags else [],
            source=raw.source,
            raw=_jsonable(raw.raw),
        )

    def _received_text(self, received: datetime) -> str:
        """Formatting is memoised: a batch usually shares one receive time."""
        last = self._last_received  # one read: batches may be normalised on several threads
        if received is not last[0]:
            last = (received, utc_z_ms(received))
            self._last_received = last
        return last[1]


def punch_snapshot(raw: RawPunch) -> dict[str, Any]:
    """A RawPunch as JSON, kept with a quarantined item so it can be replayed after a fix."""
    return {
        "device_time": raw.device_time.isoformat() if raw.device_time else None,
        "user_id": raw.user_id,
        "card": raw.card,
        "punch": _jsonable(raw.punch),
        "verify": _jsonable(raw.verify),
        "latitude": raw.latitude,
        "longitude": raw.longitude,
        "device_serial": raw.device_serial,
        "clock_skew_s": raw.clock_skew_s,
        "received_at": raw.received_at.isoformat() if raw.received_at else None,
        "flags": sorted(raw.flags),
        "identity": raw.identity,
    }


def punch_from_snapshot(snap: dict[str, Any], raw: Any, source: dict[str, Any]) -> RawPunch:
    def dt(v: str | None) -> datetime | None:
        return datetime.fromisoformat(v) if v else None

    return RawPunch(
        device_time=dt(snap.get("device_time")),
        user_id=snap.get("user_id"),
        card=snap.get("card"),
        punch=snap.get("punch"),
        verify=snap.get("verify"),
        latitude=snap.get("latitude"),
        longitude=snap.get("longitude"),
        device_serial=snap.get("device_serial"),
        clock_skew_s=snap.get("clock_skew_s"),
        received_at=dt(snap.get("received_at")),
        flags=set(snap.get("flags") or ()),
        source={k: v for k, v in source.items() if k != "punch"},
        raw=raw,
        identity=snap.get("identity"),
    )


_PLAIN = (str, int, float, bool, type(None))


def _jsonable(value: Any) -> Any:
    """The input as JSON-compatible data (bytes → hex, datetimes → ISO); plain data as it is."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict and all(type(v) in _PLAIN for v in value.values()):
        return value
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
