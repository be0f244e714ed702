"""`POST /api/v1/punches`: JSON batches from HR systems and mobile clients.

Each item goes through the `http` device's mapping (the shared mapping engine) and the batch
commits through that device's context, like any terminal's punches. The answer comes only after the
commit, with one result per item: created, duplicate (the same punch was already stored — the call
is idempotent, so a client may simply resend a batch after a timeout), quarantined (with the
reason; nothing is lost) or ignored (the mapping says the item is not a punch).
"""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException

from ...config import HubConfig
from ...contract import Caller, DeviceContext, RouteContext
from ...normalize.mapping import Ignored, MappingError
from ...record import RawPunch, Rejection
from ...store import Store
from .adapter import map_item
from .models import PunchBatch, PunchBatchResult


def router(ctx: RouteContext) -> APIRouter:
    """The http kind's routes (mounted by the API through `HasRoutes`)."""
    return ingest_router(ctx.cfg, ctx.store, ctx.running, ctx.write)


def ingest_router(
    cfg: HubConfig, store: Store, running: Callable[[str], DeviceContext | None], write: Any
) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["ingest"])

    @r.post(
        "/punches",
        response_model=PunchBatchResult,
        summary="Submit a batch of punches (idempotent)",
        responses={
            404: {"description": "No such http device"},
            503: {"description": "The hub is not running devices"},
        },
    )
    async def punches(batch: PunchBatch, who: Annotated[Caller, Depends(write)]) -> dict[str, Any]:
        ctx = running(batch.device)
        try:
            device = cfg.device(batch.device)
        except KeyError:
            device = None
        if device is None or device.kind != "http":
            raise HTTPException(404, f"no http device {batch.device!r} in the configuration")
        if ctx is None or not device.enabled:
            raise HTTPException(503, f"device {batch.device!r} is not running")
        now = datetime.now(UTC)
        tz = device.zone
        raws: list[RawPunch] = []
        raw_index: list[int] = []
        rejections: list[Rejection] = []
        rej_index: list[int] = []
        results: list[dict[str, Any]] = [{"index": i} for i in range(len(batch.punches))]
        for i, item in enumerate(batch.punches):
            source = {"kind": "http", "index": i, "client": who.name}
            try:
                raws.append(map_item(device, item, now, source, tz))
                raw_index.append(i)
            except Ignored as exc:
                results[i].update(status="ignored", reason=str(exc))
            except MappingError as exc:
                rejections.append(ctx.reject(str(exc), item, source))
                rej_index.append(i)
        done = await ctx.submit(raws, rejections)
        # Records keep their source (with the item index); the items normalisation rejected are
        # the rest, quarantined after the mapping rejections, in order.
        new = set(done.new)
        seen: set[str] = set()
        normalised: set[int] = set()
        for rec in done.records:
            i = int(rec.source["index"])
            normalised.add(i)
            created = rec.id in new and rec.id not in seen
            seen.add(rec.id)
            results[i].update(status="created" if created else "duplicate", record_id=rec.id)
        rej_index += [i for i in raw_index if i not in normalised]
        reasons = await asyncio.to_thread(_reasons, store, done.quarantined)
        for i, qid in zip(rej_index, done.quarantined, strict=False):
            results[i].update(status="quarantined", quarantine_id=qid, reason=reasons.get(qid))
        counts = {k: 0 for k in ("created", "duplicate", "quarantined", "ignored")}
        for res in results:
            counts[res["status"]] += 1
        return {**counts, "results": results}

    return r


def _reasons(store: Store, qids: list[int]) -> dict[int, str]:
    if not qids:
        return {}
    items = store.quarantine_items(None, len(qids) + 1000, None, min(qids) - 1)
    wanted = set(qids)
    return {it["qid"]: it["reason"] for it in items if it["qid"] in wanted}
