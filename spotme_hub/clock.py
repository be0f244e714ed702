"""Time zones and the hub's text forms of a time: one spelling of each, below every other part.

Stored and served times are RFC 3339 UTC with `Z`; office-local times carry their offset.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

#: The zone of an office that names none (Peninsular Malaysia; Sabah and Sarawak keep the same
#: offset, but their offices may name Asia/Kuching).
DEFAULT_TZ = "Asia/Kuala_Lumpur"


@functools.lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def to_aware(device_time: datetime, tz_name: str) -> datetime:
    """A naive time is wall-clock time in `tz_name`; an aware time is kept as it is."""
    if device_time.tzinfo is None:
        return device_time.replace(tzinfo=zone(tz_name))
    return device_time


def utc_z(when: datetime) -> str:
    """RFC 3339 UTC with `Z`, to the second."""
    return when.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def utc_z_ms(when: datetime) -> str:
    """RFC 3339 UTC with `Z`, to the millisecond (the store's committed_at, health times)."""
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def now_z() -> str:
    """Now, as `utc_z`."""
    return utc_z(datetime.now(UTC))


def now_z_ms() -> str:
    """Now, as `utc_z_ms`."""
    return utc_z_ms(datetime.now(UTC))


def local_rfc3339(when: datetime, tz_name: str) -> str:
    """RFC 3339 in the zone's offset, e.g. 2026-11-23T08:01:00+08:00."""
    return when.astimezone(zone(tz_name)).replace(microsecond=0).isoformat()


def utc_bound(text: str, date_zone: str | None = None) -> str:
    """A time bound as the store compares it (`YYYY-MM-DDTHH:MM:SS.000Z`) from RFC 3339 with an
    offset or `Z`; with `date_zone`, a date alone (`2026-12-07`) is that day's midnight there.
    ValueError saying what is wrong otherwise (a time without an offset is refused, not
    guessed). Stored times are whole seconds, so a bound inside a second moves up to the next:
    `>= 05:00:00.5` and `< 05:00:00.5` both mean "from 05:00:01" / "up to 05:00:00"."""
    value = text.strip()
    try:
        if date_zone is not None and len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d")
            return utc_z_ms(day.replace(tzinfo=zone(date_zone)))
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        form = "an RFC 3339 time" + (" or a date (YYYY-MM-DD)" if date_zone else "")
        raise ValueError(f"not {form}: {text!r}, e.g. 2026-11-20T00:00:00Z") from None
    if when.tzinfo is None:
        raise ValueError(f"give a UTC offset or Z: {text!r}, e.g. 2026-11-20T08:00:00+08:00")
    try:
        if when.microsecond:
            when = when.replace(microsecond=0) + timedelta(seconds=1)
        return utc_z_ms(when)
    except (OverflowError, ValueError):
        raise ValueError(f"out of range: {text!r}") from None


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def local_midnight_utc(tz_name: str, now: datetime | None = None) -> str:
    """Today's local midnight in `tz_name`, as stored UTC text (for 'punches today')."""
    local = (now or datetime.now(UTC)).astimezone(zone(tz_name))
    return utc_z_ms(local.replace(hour=0, minute=0, second=0, microsecond=0))
