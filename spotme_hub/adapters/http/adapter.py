"""`kind: http` — punches pushed to the hub's API (`POST /api/v1/punches`) by HR systems and
mobile clients. The API maps each JSON item with this device's `mapping` (the one shared mapping
engine) and commits through this device's context, so HTTP punches get the same normalisation,
quarantine, health and counters as any terminal. The adapter itself has no wire of its own: its
session just keeps the device UP while the hub runs.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from ...config import Device
from ...contract import (
    DeviceContext,
    HasDemo,
    HasRoutes,
    Options,
    Replayable,
    Streaming,
    sibling,
)
from ...normalize.mapping import Ignored, Mapping, MappingError
from ...record import RawPunch, Rejection

if TYPE_CHECKING:
    pass


#: Items that use the canonical field names need no mapping at all.
GENERIC_MAPPING: dict[str, Any] = {
    "user_id": "user_id",
    "card": "card",
    "time": "time",
    "punch": "punch",
    "verify": "verify",
    "latitude": "latitude",
    "longitude": "longitude",
}


class HttpIngestOptions(Options):
    mapping: Mapping = Field(
        default_factory=lambda: Mapping.model_validate(GENERIC_MAPPING),
        description="How one JSON item becomes a punch (default: the canonical field names "
        "user_id, card, time, punch, verify, latitude, longitude).",
    )


class HttpIngestAdapter(Streaming, Replayable, HasRoutes, HasDemo):
    kind: ClassVar[str] = "http"
    options_model: ClassVar[type[Options]] = HttpIngestOptions

    routes = sibling("routes", "router")
    demo_part = sibling("demo", "part")

    def __init__(self, device: Device, options: HttpIngestOptions):
        self.device = device
        self.opts = options

    async def run(self, ctx: DeviceContext) -> None:
        ctx.mark_up(endpoint="/api/v1/punches")
        while True:  # punches arrive through the API; nothing to poll
            await ctx.sleep(3600)

    @classmethod
    def replay(cls, device: Device, raw: Any, source: dict[str, Any]) -> list[RawPunch] | Rejection:
        """Re-map a quarantined item with the device's current mapping."""
        try:
            return [map_item(device, raw, datetime.now(UTC), source)]
        except (Ignored, MappingError) as exc:
            return Rejection(reason=str(exc), raw=raw, source=source, device_id=device.id)


def map_item(
    device: Device,
    item: Any,
    received_at: datetime,
    source: dict[str, Any],
    timezone: str | None = None,
) -> RawPunch:
    """One JSON item → RawPunch through the device's mapping (raises Ignored / MappingError).
    JSON has no NaN or Infinity, but Python's parser reads `NaN`, `Infinity` and `1e999` into
    floats: an item holding one is refused, never read as a value."""
    where = _non_finite(item)
    if where is not None:
        raise MappingError(f"{where}: not a finite number (JSON has no NaN or Infinity)")
    options: HttpIngestOptions = device.options
    return options.mapping.apply(
        item,
        topic=None,
        received_at=received_at,
        default_timezone=timezone or device.zone,
        source=source,
    )


def _non_finite(value: Any, path: str = "item") -> str | None:
    """Where in `value` a NaN or infinite float is (a JSON path), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, dict):
        for k, v in value.items():
            found = _non_finite(v, f"{path}.{k}")
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _non_finite(v, f"{path}[{i}]")
            if found:
                return found
    return None
