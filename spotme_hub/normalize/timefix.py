"""Time: device wall-clock times to UTC and office-local time, plausibility checks, formatting."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_LIMIT = timedelta(days=1)


@functools.lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def to_aware(device_time: datetime, tz_name: str) -> datetime:
    """A naive time is wall-clock time in `tz_name`; an aware time is kept as it is."""
    if device_time.tzinfo is None:
        return device_time.replace(tzinfo=zone(tz_name))
    return device_time


def implausible(when_utc: datetime, now_utc: datetime) -> str | None:
    """A reason when a punch time cannot be real, else None."""
    if when_utc < EARLIEST:
        return f"time {when_utc.isoformat()} is before 2000-01-01 (device clock not set?)"
    if when_utc > now_utc + FUTURE_LIMIT:
        return f"time {when_utc.isoformat()} is more than a day in the future"
    return None


def utc_z(when: datetime) -> str:
    """RFC 3339 UTC with `Z`, to the second."""
    return when.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def utc_z_ms(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def local_rfc3339(when: datetime, tz_name: str) -> str:
    """RFC 3339 in the zone's offset, e.g. 2026-11-23T08:01:00+08:00."""
    return when.astimezone(zone(tz_name)).replace(microsecond=0).isoformat()


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
