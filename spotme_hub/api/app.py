"""FastAPI application factory: health, the record feed and device health under /api/v1."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import ORJSONResponse

from ..config import HubConfig
from ..forward.api import forward_router
from ..store import RecordFilter, Store
from .adms import adms_router

if TYPE_CHECKING:
    from ..runtime import Hub


def create_app(cfg: HubConfig, store: Store, hub: Hub | None = None) -> FastAPI:
    app = FastAPI(
        title="spotme-hub",
        version="1",
        default_response_class=ORJSONResponse,
        description="Device and system integration hub for SPOT-Me attendance.",
    )
    app.state.cfg = cfg
    app.state.store = store
    app.state.hub = hub
    max_page = cfg.api.max_page
    app.include_router(adms_router())
    app.include_router(forward_router())

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> dict[str, str]:
        try:
            await asyncio.to_thread(store.ping)
        except Exception as exc:
            raise HTTPException(503, f"store not reachable: {exc}") from exc
        return {"status": "ready"}

    @app.get("/api/v1/records", tags=["feed"])
    async def records(
        after: int = Query(0, ge=0, description="Cursor: the seq of the last record seen."),
        limit: int = Query(1000, ge=1),
        office: str | None = None,
        employee: str | None = None,
        device: str | None = None,
        since: str | None = Query(None, description="occurred_at >= (RFC 3339 UTC)"),
        until: str | None = Query(None, description="occurred_at < (RFC 3339 UTC)"),
        flag: str | None = None,
    ) -> dict[str, Any]:
        flt = RecordFilter(office, employee, device, since, until, flag)
        rows = await asyncio.to_thread(store.records, after, min(limit, max_page), flt)
        return {"records": rows, "next_cursor": rows[-1]["seq"] if rows else after}

    @app.get("/api/v1/devices", tags=["devices"])
    async def devices() -> list[dict[str, Any]]:
        if hub is not None:
            await asyncio.to_thread(hub.flush_health)
        return await asyncio.to_thread(store.health)

    @app.get("/api/v1/offices", tags=["devices"])
    async def offices() -> list[dict[str, Any]]:
        return [o.model_dump() for o in cfg.offices]

    return app


async def serve(app: FastAPI, listen: str, stop: asyncio.Event) -> None:
    """Run uvicorn inside the current event loop until `stop` is set."""
    import uvicorn

    host, _, port = listen.rpartition(":")
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=int(port), log_level="warning", lifespan="off")
    )
    # The hub owns SIGINT/SIGTERM (it stops devices and flushes writes first); uvicorn must not.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
