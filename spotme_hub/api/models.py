"""Response models: they document the API in OpenAPI (the feed itself is serialised by orjson)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, Field, create_model

from ..record import Record

_HINTS = get_type_hints(Record)


_DESCRIPTIONS = {
    "id": "Stable UUID of the punch's source identity (time-ordered UUIDv8; UUIDv5 when "
    "the punch has no trustworthy time).",
    "occurred_at": "UTC, RFC 3339 with Z.",
    "local_time": "Wall-clock time at the office, RFC 3339 with its offset.",
}

#: The canonical record (schema v1) with its feed position `seq`, derived from `Record` itself so
#: the published schema can never drift from what is stored and served.
RecordOut = create_model(  # type: ignore[call-overload]
    "RecordOut",
    __doc__="The canonical attendance record (schema v1) with its feed position `seq`.",
    seq=(int, Field(description="Commit sequence: the feed cursor.")),
    **{
        f.name: (_HINTS[f.name], Field(description=_DESCRIPTIONS.get(f.name)))
        for f in fields(Record)
    },
)


class RecordsPage(BaseModel):
    records: list[RecordOut]
    next_cursor: int = Field(description="Pass as `after` for the next page.")


class DeviceOut(BaseModel):
    device_id: str
    name: str | None = None
    kind: str
    office_id: str | None
    state: str = Field(
        description="UNKNOWN | STARTING | UP | DEGRADED | DOWN | DISABLED (STARTING: "
        "`detail.starting` says what, e.g. subscribing)"
    )
    last_seen: str | None
    last_error: str | None
    last_error_at: str | None
    consecutive_failures: int
    punches_today: int = Field(description="Records since local midnight at the device's office.")
    quarantined_open: int
    counters: dict[str, int]
    detail: dict[str, Any]
    updated_at: str | None = None


class OfficeOut(BaseModel):
    id: str
    name: str | None
    state: str | None
    timezone: str
    latitude: float | None
    longitude: float | None
    geofence_m: float | None


class QuarantineItem(BaseModel):
    qid: int
    created_at: str
    device_id: str | None
    source: dict[str, Any]
    reason: str
    raw: Any
    status: str
    resolved_at: str | None
    resolution: str | None


class QuarantinePage(BaseModel):
    items: list[QuarantineItem]
    next_cursor: int
    open_count: int


class ReplayResult(BaseModel):
    qid: int
    status: Literal["replayed", "open"]
    detail: str
    records: int


class Status(BaseModel):
    status: str


class Overview(BaseModel):
    hub_id: str
    now: str
    timezone: str = Field(description="The offices' zone: the dashboard shows its times in it.")
    devices: list[DeviceOut]
    recent: list[RecordOut]
    quarantine_open: int
    records_total: int
    forwarding: dict[str, Any] | None
    disk: dict[str, Any] = Field(description="Store size, free space, oldest record, alerts.")
    quarantine: list[dict[str, Any]] = Field(
        description="The newest open quarantine items, each with `from`: its source in words."
    )
