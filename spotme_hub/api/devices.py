"""Device health, offices, quarantine (list and replay); the overview's forwarding status (the
forward part serves its own at `/api/v1/forward`)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from ..clock import local_midnight_utc
from ..config import HubConfig
from ..forward.outbox import forward_status
from ..pipeline.replay import replay_item
from ..store import Store
from .models import DeviceOut, OfficeOut, QuarantinePage, ReplayResult


def live_health(hub: Any, device_id: str | None = None) -> list[dict[str, Any]] | None:
    """The running hub's own view of its devices (fresher than the store); call in the loop."""
    if hub is None:
        return None
    rows = [
        {**h.row(), "updated_at": None}
        for h in hub.health.values()
        if device_id is None or h.device_id == device_id
    ]
    return sorted(rows, key=lambda r: r["device_id"])


def device_rows(
    cfg: HubConfig, store: Store, live: list[dict[str, Any]] | None, device_id: str | None = None
) -> list[Any]:
    """Health rows + punches today + open quarantine per device (runs in a worker thread)."""
    rows = live if live is not None else store.health(device_id)
    zones = {r["device_id"]: cfg.zone_of(r["device_id"], r.get("office_id")) for r in rows}
    today: dict[str, dict[str, int]] = {
        tz: store.punches_since(local_midnight_utc(tz)) for tz in set(zones.values())
    }
    quarantined = store.quarantine_counts_by_device()
    names = {d.id: d.name for d in cfg.devices}
    out = []
    for r in rows:
        dev = r["device_id"]
        out.append(
            {
                **r,
                "name": names.get(dev),
                "punches_today": today[zones[dev]].get(dev, 0),
                "quarantined_open": quarantined.get(dev, 0),
            }
        )
    return out


def forwarding_status(cfg: HubConfig, store: Store) -> dict[str, Any] | None:
    """The forwarder's status, or None when no core is configured."""
    if not cfg.core.url:
        return None
    return forward_status(store, cfg)


def devices_router(cfg: HubConfig, store: Store, hub: Any, read: Any) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["devices"], dependencies=[Depends(read)])

    @r.get("/devices", response_model=list[DeviceOut], summary="Every device's health")
    async def devices() -> list[dict[str, Any]]:
        return await asyncio.to_thread(device_rows, cfg, store, live_health(hub))

    @r.get(
        "/devices/{device_id}",
        response_model=DeviceOut,
        summary="One device's health",
        responses={404: {"description": "No such device"}},
    )
    async def device(device_id: Annotated[str, Path(max_length=200)]) -> dict[str, Any]:
        rows = await asyncio.to_thread(
            device_rows, cfg, store, live_health(hub, device_id), device_id
        )
        if not rows:
            raise HTTPException(404, f"no device {device_id!r}")
        return rows[0]

    @r.get("/offices", response_model=list[OfficeOut], summary="Configured offices")
    async def offices() -> list[dict[str, Any]]:
        return [o.model_dump() for o in cfg.offices]

    return r


def admin_router(cfg: HubConfig, store: Store, admin: Any) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["admin"], dependencies=[Depends(admin)])

    @r.get("/quarantine", response_model=QuarantinePage, summary="Quarantined inputs")
    async def quarantine(
        status: Literal["open", "replayed", "discarded", "all"] = "open",
        device: Annotated[str | None, Query(max_length=200)] = None,
        after: Annotated[int, Query(ge=0, le=2**62, description="Cursor: a qid.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            items = store.quarantine_items(
                None if status == "all" else status, limit, device or None, after
            )
            return {
                "items": items,
                "next_cursor": items[-1]["qid"] if items else after,
                "open_count": store.quarantine_count("open"),
            }

        return await asyncio.to_thread(read)

    @r.post(
        "/quarantine/{qid}/replay",
        response_model=ReplayResult,
        summary="Re-read a quarantined input with the current configuration",
        responses={404: {"description": "No such item"}, 409: {"description": "Not open"}},
    )
    async def replay(qid: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            found = store.quarantine_items(None, 1, None, qid - 1)
            if not found or found[0]["qid"] != qid:
                raise HTTPException(404, f"no quarantine item {qid}")
            if found[0]["status"] != "open":
                raise HTTPException(409, f"item {qid} is already {found[0]['status']}")
            out = replay_item(cfg, store, found[0])
            return {"qid": out.qid, "status": out.status, "detail": out.detail,
                    "records": out.records}  # fmt: skip

        return await asyncio.to_thread(run)

    return r
