"""When a punch time cannot be real (the zones and text forms of times live in `clock`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_LIMIT = timedelta(days=1)


def implausible(when_utc: datetime, now_utc: datetime) -> str | None:
    """A reason when a punch time cannot be real, else None."""
    if when_utc < EARLIEST:
        return f"time {when_utc.isoformat()} is before 2000-01-01 (device clock not set?)"
    if when_utc > now_utc + FUTURE_LIMIT:
        return f"time {when_utc.isoformat()} is more than a day in the future"
    return None
