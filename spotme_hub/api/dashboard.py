"""The admin dashboard: `/` serves one static page (HTML + CSS + a little JS, no build step) that
polls `GET /api/v1/overview` every 10 s.

The page itself holds no data and is open. Its data comes from the API with the admin scope: on a
hub without tokens the API answers loopback browsers directly; otherwise the page asks once for an
admin token and keeps it in the tab's sessionStorage (gone when the tab closes, never in a cookie,
so there is no CSRF surface).
"""

from __future__ import annotations

import asyncio
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response

from ..clock import DEFAULT_TZ, now_z
from ..config import HubConfig
from ..pipeline.disk import disk_status
from ..store import Store, source_text
from .devices import device_rows, forwarding_status, live_health
from .models import Overview

STATIC = files("spotme_hub.api") / "static"
RECENT = 15


def overview(cfg: HubConfig, store: Store, live: list[dict[str, Any]] | None) -> dict[str, Any]:
    top = store.max_seq()
    recent = store.records(max(0, top - RECENT), RECENT)
    return {
        "hub_id": cfg.hub.id,
        "now": now_z(),
        # the page shows its times in the offices' zone, not the browser's
        "timezone": cfg.offices[0].timezone if cfg.offices else DEFAULT_TZ,
        "devices": device_rows(cfg, store, live),
        "recent": list(reversed(recent)),
        "quarantine_open": store.quarantine_count("open"),
        "records_total": store.count_records(),
        "forwarding": forwarding_status(cfg, store),
        "disk": disk_status(cfg, store),
        "quarantine": [
            {**it, "from": source_text(it["source"])} for it in store.quarantine_items("open", 10)
        ],
    }


def dashboard_router(cfg: HubConfig, store: Store, hub: Any, admin: Any) -> APIRouter:
    r = APIRouter()
    page = (STATIC / "dashboard.html").read_text(encoding="utf-8")
    assets = {
        "dashboard.css": ("text/css; charset=utf-8", (STATIC / "dashboard.css").read_bytes()),
        "dashboard.js": ("text/javascript; charset=utf-8", (STATIC / "dashboard.js").read_bytes()),
    }

    @r.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @r.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in assets:
            return Response("not found", 404)
        media, body = assets[name]
        return Response(body, media_type=media, headers={"Cache-Control": "no-cache"})

    @r.get(
        "/api/v1/overview",
        response_model=Overview,
        tags=["admin"],
        summary="Everything the dashboard shows, in one call",
        dependencies=[Depends(admin)],
    )
    async def get_overview() -> dict[str, Any]:
        return await asyncio.to_thread(overview, cfg, store, live_health(hub))

    return r
