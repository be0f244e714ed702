"""How much room the hub has: the store's size, the free space under the data directory, the
oldest record's age; an alert below `hub.disk_alert_mb`, and below `hub.disk_floor_mb` the API
refuses new data (`api.disk.DiskFloor`)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from typing import Any

from ..clock import parse_utc
from ..config import HubConfig
from ..store import Store


def free_bytes(cfg: HubConfig) -> int:
    path = cfg.data_dir
    while not path.exists() and path != path.parent:  # not made yet: the disk it will be on
        path = path.parent
    return shutil.disk_usage(path).free


def disk_status(cfg: HubConfig, store: Store) -> dict[str, Any]:
    size, oldest = store.footprint()
    free = free_bytes(cfg)
    age = (datetime.now(UTC) - parse_utc(oldest)).total_seconds() if oldest else None
    return {
        "store_bytes": size,
        "free_bytes": free,
        "oldest_committed_at": oldest,
        "oldest_age_s": age,
        "alert": free < cfg.hub.disk_alert_mb * 1e6,
        "refusing_writes": free < cfg.hub.disk_floor_mb * 1e6,
    }


def disk_line(st: dict[str, Any]) -> str:
    """The status in words (the CLI's `devices`)."""
    age = st["oldest_age_s"]
    oldest = ""
    if age is not None:
        when = f"{age / 86400:.1f} days" if age >= 86400 else (
            f"{age / 3600:.1f} h" if age >= 3600 else f"{age / 60:.0f} min")  # fmt: skip
        oldest = f", the oldest record {when} old"
    warn = " — LOW DISK: refusing new data" if st["refusing_writes"] else (
        " — low disk space" if st["alert"] else "")  # fmt: skip
    return (f"store {st['store_bytes'] / 1e6:,.1f} MB, {st['free_bytes'] / 1e9:,.1f} GB free "
            f"under the data directory{oldest}{warn}")  # fmt: skip
