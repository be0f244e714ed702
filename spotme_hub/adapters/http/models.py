"""The ingest API's request and answer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class PunchBatch(BaseModel):
    device: str = Field(description="An `http` device id from the configuration.")
    punches: list[Any] = Field(
        min_length=1, max_length=10_000, description="JSON items, read by the device's mapping."
    )


class PunchResult(BaseModel):
    index: int
    status: Literal["created", "duplicate", "quarantined", "ignored"]
    record_id: str | None = None
    quarantine_id: int | None = None
    reason: str | None = None


class PunchBatchResult(BaseModel):
    created: int
    duplicate: int
    quarantined: int
    ignored: int
    results: list[PunchResult]
