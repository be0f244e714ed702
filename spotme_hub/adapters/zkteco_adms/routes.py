"""HTTP routes for ZKTeco push terminals (`/iclock/...`) and their admin API (`/api/v1/adms/...`).

Thin on purpose: the wire format and the durable queue live in `adapters/zkteco_adms*.py`. A
terminal is found by `SN=` among the `zkteco_adms` devices of the configuration; its punches go
through the device's runtime context, and `OK:<n>` is only sent after `ctx.submit` returned
(i.e. after the commit). Replies are plain text a terminal can log; uvicorn adds the `Date`
header terminals set their clock from.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from ...config import Device, HubConfig
from ...contract import DeviceContext, RouteContext
from ...store import Store
from . import adapter as wire
from . import db

log = logging.getLogger(__name__)
SN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
OTHER_TABLES = ("ATTPHOTO", "BIODATA", "ERRORLOG", "OPTIONS", "IDCARD")  # accepted, not used


def text(body: str, status: int = 200) -> PlainTextResponse:
    return PlainTextResponse(body, status_code=status)


@dataclass
class Terminal:
    sn: str
    device: Device
    opts: wire.AdmsOptions
    ctx: DeviceContext
    state: wire.AdmsState
    store: Store
    max_body: int

    @property
    def tz(self) -> str:
        return self.device.zone


def serials(cfg: HubConfig) -> dict[str, Device]:
    out: dict[str, Device] = {}
    for d in cfg.devices:
        if d.kind != wire.KIND:
            continue
        first = out.setdefault(d.options.serial, d)
        if first is not d:
            log.error(
                "serial %s is configured for %s and %s; using %s",
                d.options.serial,
                first.id,
                d.id,
                first.id,
            )
    return out


async def terminal(
    rc: RouteContext, known: dict[str, Device], request: Request
) -> Terminal | Response:
    """The configured terminal behind `SN=`, or the plain-text error reply."""
    q = request.query_params
    sn = q.get("SN") or q.get("sn") or ""
    if not SN_RE.match(sn):
        return text("ERROR: missing or invalid SN= parameter", 400)
    device = known.get(sn)
    if device is None:
        seen = {k: v for k, v in q.items() if k in ("pushver", "DeviceType", "language", "INFO")}
        client = request.client.host if request.client else None
        await asyncio.to_thread(db.note_pending, rc.store, sn, client, request.url.path, seen)
        log.warning(
            "ADMS request from unknown terminal SN=%s (%s): refused, listed as pending", sn, client
        )
        return text(
            f"ERROR: unknown device SN={sn}; ask the hub admin to add it as kind zkteco_adms", 403
        )
    if not device.enabled:
        return text(f"ERROR: device {device.id} (SN={sn}) is disabled on this hub", 403)
    ctx = rc.running(device.id)
    if ctx is None:
        return text("ERROR: hub is not running; try again later", 503)
    st = wire.state_of(ctx)
    if not st.restored:  # a mismatch found before a restart stays visible until a match
        st.restored = True
        verdict = await asyncio.to_thread(db.last_verdict, rc.store, device.id)
        if verdict and verdict.startswith("mismatch"):
            st.degraded_reason = f"last reconciliation: {verdict}"
            ctx.mark_degraded(st.degraded_reason)
    return Terminal(sn, device, device.options, ctx, st, rc.store, rc.cfg.api.max_body_bytes)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            return None
    return bytes(buf)


def not_stored(t: Terminal, exc: Exception) -> Response:
    t.ctx.log.error("ADMS post from SN=%s not committed: %s", t.sn, exc)
    t.ctx.count("commit_failures")
    return text("ERROR: not stored, send again later", 503)


# --- /iclock: what terminals call ------------------------------------------------------------


async def handshake(t: Terminal, request: Request) -> Response:
    q = request.query_params
    stamps = {
        k: await asyncio.to_thread(t.ctx.checkpoint, k) for k in ("ATTLOGStamp", "OPERLOGStamp")
    }
    t.state.contact(t.ctx, serial=t.sn, **{k: q[k] for k in ("pushver", "DeviceType") if k in q})
    return text(wire.handshake_text(t.sn, t.opts, t.tz, stamps))


async def upload(t: Terminal, request: Request) -> Response:
    limit = t.max_body
    body = await read_body(request, limit)
    if body is None:
        return text(f"ERROR: body larger than {limit} bytes; send fewer records per post", 413)
    t.state.contact(t.ctx)
    table = request.query_params.get("table", "").upper()
    raw_stamp = request.query_params.get("Stamp", "")
    stamp = raw_stamp if raw_stamp.isdigit() and len(raw_stamp) <= 20 else None  # echoed back
    if table == "ATTLOG":
        punches, rejections = wire.parse_attlog(t.ctx, t.sn, body)
        try:
            await t.ctx.submit(
                punches, rejections, checkpoint={"ATTLOGStamp": stamp} if stamp else None
            )
        except Exception as exc:
            return not_stored(t, exc)
        return text(f"OK:{len(punches) + len(rejections)}")
    if table == "OPERLOG":
        op = wire.parse_operlog(t.ctx, t.sn, body)
        try:
            await asyncio.to_thread(db.save_users, t.store, t.device.id, op.users)
            new_events = await asyncio.to_thread(db.save_events, t.store, t.device.id, op.events)
            if op.rejections or stamp:
                await t.ctx.submit(
                    [], op.rejections, checkpoint={"OPERLOGStamp": stamp} if stamp else None
                )
        except Exception as exc:
            return not_stored(t, exc)
        t.ctx.count("device_users", len(op.users))
        t.ctx.count("device_events", new_events)
        return text(f"OK:{op.lines}")
    # ATTPHOTO, BIODATA, ERRORLOG, options...: accepted, not used by the hub.
    t.ctx.count(f"ignored_{table.lower() if table in OTHER_TABLES else 'other'}")
    return text(f"OK:{len(wire.split_lines(body))}")


async def getrequest(t: Terminal, request: Request) -> Response:
    info = request.query_params.get("INFO")
    t.state.contact(t.ctx, **(wire.parse_info(info) if info else {}))
    t.ctx.count("polls")
    if t.opts.verify_sum_every and await asyncio.to_thread(
        db.due_for_schedule, t.store, t.device.id, t.opts.verify_sum_every
    ):
        start, end = db.local_window(t.tz, t.opts.verify_window_h, t.opts.verify_lag_s)
        await asyncio.to_thread(db.enqueue, t.store, t.device.id, "verify", start, end, "schedule")
    rows = await asyncio.to_thread(db.take_commands, t.store, t.device.id, t.opts.command_timeout_s)
    if not rows:
        return text("OK")
    return text("".join(f"C:{r['cmd_id']}:{r['command']}\n" for r in rows))


async def devicecmd(t: Terminal, request: Request) -> Response:
    body = await read_body(request, t.max_body)
    if body is None:
        return text("ERROR: body too large", 413)
    t.state.contact(t.ctx)
    for result in wire.parse_results(body.decode("utf-8", "replace")):
        row = await asyncio.to_thread(db.complete, t.store, t.device.id, result)
        if row is None:
            t.ctx.log.info("result for a command the hub did not send: %s", result)
            continue
        if row["kind"] == "verify":
            await reconcile(t, row)
        elif row["kind"] == "backfill" and row["origin"] == "reconcile" and row["status"] == "done":
            await asyncio.to_thread(
                db.enqueue,
                t.store,
                t.device.id,
                "verify",
                row["window_start"],
                row["window_end"],
                "recheck",
            )
        elif row["kind"] == "info" and row["status"] == "done":
            extra = {
                k.lstrip("~"): v for k, v in result.items() if k not in ("ID", "Return", "CMD")
            }
            t.state.contact(t.ctx, device_info=extra)
    return text("OK")


async def reconcile(t: Terminal, row: dict[str, Any]) -> None:
    """VERIFY SUM answered: compare the terminal's AttlogSum with what the hub committed."""
    start, end = row["window_start"], row["window_end"]
    device_sum = db.attlog_sum(row["result"])
    if row["status"] != "done" or device_sum is None:
        verdict = f"no AttlogSum in the answer (Return={row['return_code']})"
        await asyncio.to_thread(db.set_verdict, t.store, row["id"], verdict)
        return
    count = await asyncio.to_thread(db.hub_count, t.store, t.device, t.tz, start, end)
    window = {"start": start, "end": end}
    if count == device_sum:
        verdict = f"match: {count} punch(es)"
        t.state.degraded_reason = None
        t.state.contact(t.ctx, last_reconciled={**window, "punches": count})
    else:
        verdict = f"mismatch: terminal has {device_sum}, hub has {count}"
        reason = f"VERIFY SUM {start} – {end}: terminal has {device_sum} punches, hub has {count}"
        t.state.degraded_reason = reason
        t.ctx.mark_degraded(reason, device_sum=device_sum, hub_count=count, window=window)
        if t.opts.backfill_on_mismatch and row["origin"] != "recheck" and device_sum > count:
            queued = await asyncio.to_thread(
                db.enqueue, t.store, t.device.id, "backfill", start, end, "reconcile"
            )
            verdict += f"; backfill {queued['cmd_id']} queued"
    await asyncio.to_thread(db.set_verdict, t.store, row["id"], verdict)


async def ping(t: Terminal, request: Request) -> Response:
    t.state.contact(t.ctx)
    return text("OK")


# --- admin API -----------------------------------------------------------------------------


#: rows a listing returns at most
Limit = Annotated[int, Query(ge=1, le=10_000, description="Rows at most.")]
CommandStatus = Literal["queued", "sent", "done", "failed", "expired"]


class CommandRequest(BaseModel):
    kind: Literal["backfill", "verify", "info"]
    start: str | None = Field(None, description="Device-local YYYY-MM-DD HH:MM:SS")
    end: str | None = Field(None, description="Device-local YYYY-MM-DD HH:MM:SS (inclusive)")
    hours: float | None = Field(
        None, gt=0, le=wire.MAX_WINDOW_H, description="Instead of start/end: the last N hours."
    )


def _adms_device(rc: RouteContext, device_id: str) -> Device:
    try:
        device = rc.cfg.device(device_id)
    except KeyError:
        raise HTTPException(404, f"no device {device_id!r}") from None
    if device.kind != wire.KIND:
        raise HTTPException(404, f"device {device_id!r} is not a zkteco_adms terminal")
    return device


def _admin_router(rc: RouteContext) -> APIRouter:
    r = APIRouter(prefix="/api/v1/adms", tags=["adms"])

    @r.get("/pending")
    async def list_pending() -> list[dict[str, Any]]:
        """Terminals that called with a serial number the configuration does not know."""
        return await asyncio.to_thread(db.pending, rc.store)

    @r.get("/{device_id}/commands")
    async def list_commands(device_id: str, status: CommandStatus | None = None,
                            limit: Limit = 100) -> list[dict[str, Any]]:  # fmt: skip
        _adms_device(rc, device_id)
        return await asyncio.to_thread(db.commands, rc.store, device_id, status, limit)

    @r.post("/{device_id}/commands", status_code=201)
    async def queue_command(device_id: str, body: CommandRequest) -> dict[str, Any]:
        """Queue DATA QUERY (backfill), VERIFY SUM (verify) or INFO for the terminal's next poll."""
        device = _adms_device(rc, device_id)
        tz = device.zone
        try:
            start, end = (None, None)
            if body.kind != "info":
                start, end = db.resolve_window(
                    tz, body.start, body.end, body.hours, device.options.verify_window_h
                )
            return await asyncio.to_thread(db.enqueue, rc.store, device_id, body.kind, start, end)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @r.get("/{device_id}/users")
    async def list_users(device_id: str) -> list[dict[str, Any]]:
        """The terminal's user directory (from OPERLOG USER lines)."""
        _adms_device(rc, device_id)
        return await asyncio.to_thread(db.users, rc.store, device_id)

    @r.get("/{device_id}/events")
    async def list_events(device_id: str, limit: Limit = 100) -> list[dict[str, Any]]:
        """OPLOG events the terminal reported."""
        _adms_device(rc, device_id)
        return await asyncio.to_thread(db.events, rc.store, device_id, limit)

    return r


Handler = Callable[[Terminal, Request], Awaitable[Response]]


def _iclock_router(rc: RouteContext) -> APIRouter:
    known = serials(rc.cfg)

    def route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            t = await terminal(rc, known, request)
            return await handler(t, request) if isinstance(t, Terminal) else t

        endpoint.__name__ = handler.__name__
        return endpoint

    r = APIRouter(tags=["zkteco-adms"], include_in_schema=True)
    served: dict[str, list[str]] = {}
    for suffix in ("", ".aspx"):  # some firmware appends .aspx
        for path, method, handler in (
            ("cdata", "GET", handshake), ("cdata", "POST", upload), ("getrequest", "GET", getrequest),
            ("devicecmd", "POST", devicecmd), ("ping", "GET", ping),
        ):  # fmt: skip
            r.add_api_route(f"/iclock/{path}{suffix}", route(handler), methods=[method],
                            openapi_extra=_SN, responses=_TERMINAL_REFUSALS)  # fmt: skip
            served.setdefault(f"/iclock/{path}{suffix}", []).append(method)
    # One route per method would make OPTIONS (and a wrong method's 405) name only the first
    # route's method: `/iclock/cdata` answered `allow: GET` though POST is served.
    for path, methods in served.items():
        allow = ", ".join([*methods, "OPTIONS"])
        r.add_api_route(path, _allow(allow), methods=["OPTIONS"], include_in_schema=False)
    return r


#: what a terminal sends with every request (the routes read it from the query themselves)
_SN: dict[str, Any] = {"parameters": [{
    "name": "SN", "in": "query", "required": True, "description": "The terminal's serial number.",
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,64}$"},
}]}  # fmt: skip
_TERMINAL_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "No serial number (SN=), or a malformed one"},
    403: {"description": "A serial the configuration does not know, or a disabled terminal"},
    503: {"description": "The hub is not running its devices"},
}


def _allow(methods: str) -> Callable[[], Awaitable[Response]]:
    async def options() -> Response:
        return Response(status_code=204, headers={"allow": methods})

    return options


def router(ctx: RouteContext) -> APIRouter:
    """The zkteco_adms kind's routes (mounted by the API through `HasRoutes`):
    `/iclock/*` for terminals (which cannot send tokens: a terminal is known by its serial
    number) plus `/api/v1/adms/*` for admins."""
    router = APIRouter()
    router.include_router(_iclock_router(ctx))
    router.include_router(_admin_router(ctx), dependencies=[Depends(ctx.admin)])
    return router
