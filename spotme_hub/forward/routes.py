"""API routes for forwarding: status (backlog, age, alert) and dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from .outbox import dead_letters, forward_status


def forward_router(admin: Callable[..., Any]) -> APIRouter:
    """Admin only."""
    router = APIRouter(prefix="/api/v1/forward", tags=["forward"], dependencies=[Depends(admin)])

    @router.get("")
    async def status(request: Request) -> dict[str, Any]:
        """Backlog size and oldest age, delivery counters, dead letters, last error, alert."""
        return await asyncio.to_thread(
            forward_status, request.app.state.store, request.app.state.cfg
        )

    @router.get("/dead-letters")
    async def dead(
        request: Request,
        status: str | None = Query("open", description="open | delivered | empty for all"),
        after: int = Query(0, ge=0, le=2**62),
        limit: int = Query(100, ge=1, le=5000),
    ) -> list[dict[str, Any]]:
        """Records the core refused, with its reason (`spotme-hub forward retry-dead` replays)."""
        return await asyncio.to_thread(
            dead_letters, request.app.state.store, status or None, limit, after
        )

    return router
