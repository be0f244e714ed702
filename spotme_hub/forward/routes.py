"""API routes for forwarding: status (backlog, age, alert) and dead letters."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query

from ..contract import RouteContext
from .outbox import dead_letters, forward_status


def forward_router(ctx: RouteContext) -> APIRouter:
    """Admin only."""
    store, cfg = ctx.store, ctx.cfg
    router = APIRouter(
        prefix="/api/v1/forward", tags=["forward"], dependencies=[Depends(ctx.admin)]
    )

    @router.get("")
    async def status() -> dict[str, Any]:
        """Backlog size and oldest age, delivery counters, dead letters, last error, alert."""
        return await asyncio.to_thread(forward_status, store, cfg)

    @router.get("/dead-letters")
    async def dead(
        status: str | None = Query("open", description="open | delivered | empty for all"),
        after: int = Query(0, ge=0, le=2**62),
        limit: int = Query(100, ge=1, le=5000),
    ) -> list[dict[str, Any]]:
        """Records the core refused, with its reason (`spotme-hub forward retry-dead` replays)."""
        return await asyncio.to_thread(dead_letters, store, status or None, limit, after)

    return router
