"""The record feed: `GET /records` (keyset pages on the commit sequence) and `GET /records/stream`
(Server-Sent Events, resumable with `Last-Event-ID`).

Both read from the store by `seq`. Writers are serialised, so `seq` is commit order: a consumer that
pages with `after=next_cursor` sees every record exactly once, also records that commit while it
reads. The stream wakes on the hub's commit listeners and then reads from the store, so a burst
that lands while a client is being served is never skipped.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from ..clock import utc_bound
from ..store import RecordFilter, Store
from .models import RecordsPage

KEEPALIVE_S = 15.0
STREAM_BATCH = 500


class CommitSignal:
    """Wakes every waiting stream when the hub commits (listener runs in the hub's loop)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closed = False

    def __call__(self, records: Sequence[Any], result: Any) -> None:
        if getattr(result, "new", None):
            self._event.set()
            self._event = asyncio.Event()

    def close(self) -> None:
        """The server is stopping: wake every stream so it ends."""
        self.closed = True
        self._event.set()

    def current(self) -> asyncio.Event:
        """Take this BEFORE reading the store; a commit after that read still sets it."""
        return self._event

    @staticmethod
    async def wait(event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


def _time(value: str | None, name: str) -> str | None:
    """An RFC 3339 time → the store's UTC form (`YYYY-MM-DDTHH:MM:SS.mmmZ`); 422 when unreadable."""
    if value is None:
        return None
    try:
        return utc_bound(value)
    except ValueError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None


def record_filter(
    office: Annotated[str | None, Query(max_length=200, description="Office id.")] = None,
    employee: Annotated[str | None, Query(max_length=200, description="Employee id.")] = None,
    device: Annotated[str | None, Query(max_length=200, description="Device id.")] = None,
    since: Annotated[
        str | None,
        Query(
            description="occurred_at ≥ this (RFC 3339).", json_schema_extra={"format": "date-time"}
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(
            description="occurred_at < this (RFC 3339).", json_schema_extra={"format": "date-time"}
        ),
    ] = None,
    flag: Annotated[
        str | None,
        Query(pattern=r"^[a-z_]{1,64}$", description="Only records carrying this flag."),
    ] = None,
) -> RecordFilter:
    return RecordFilter(
        office or None,
        employee or None,
        device or None,
        _time(since, "since"),
        _time(until, "until"),
        flag,
    )


def page_body(records: list[tuple[int, str, bytes]], next_cursor: int) -> bytes:
    """The page from the records' JSON texts, joined without re-encoding."""
    return b'{"records":[%s],"next_cursor":%d}' % (b",".join(r[2] for r in records), next_cursor)


def feed_router(
    store: Store, hub: Any, max_page: int, read: Any, signal: CommitSignal
) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["feed"], dependencies=[Depends(read)])
    if hub is not None:
        hub.commit_listeners.append(signal)

    @r.get(
        "/records",
        response_model=RecordsPage,
        summary="Page through records in commit order",
        responses={200: {"content": {"application/json": {}}}},
    )
    async def records(
        flt: Annotated[RecordFilter, Depends(record_filter)],
        after: Annotated[
            int, Query(ge=0, le=2**62, description="Cursor: `next_cursor` of the last page.")
        ] = 0,
        limit: Annotated[
            int, Query(ge=1, description=f"Page size (capped at api.max_page = {max_page}).")
        ] = 1000,
    ) -> Response:
        def read() -> bytes:  # the query and the serialisation both off the event loop
            rows, last = store.records_json(after, min(limit, max_page), flt)
            return page_body(rows, last)

        return Response(await asyncio.to_thread(read), media_type="application/json")

    @r.get(
        "/records/stream",
        summary="Server-Sent Events of new records",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream(
        request: Request,
        flt: Annotated[RecordFilter, Depends(record_filter)],
        after: Annotated[
            int | None,
            Query(ge=0, le=2**62, description="Start after this seq (default: only new records)."),
        ] = None,
        last_event_id: Annotated[
            str | None, Header(description="Resume after this seq (sent by EventSource).")
        ] = None,
    ) -> StreamingResponse:
        cursor = after
        if last_event_id:
            try:
                cursor = int(last_event_id)
            except ValueError as exc:
                raise HTTPException(422, "Last-Event-ID must be a record seq") from exc
            if cursor < 0:
                raise HTTPException(422, "Last-Event-ID must be a record seq")
        if cursor is None:
            cursor = await asyncio.to_thread(store.max_seq)
        return StreamingResponse(
            _events(request, store, signal, flt, cursor, hub is not None),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return r


async def _events(
    request: Request, store: Store, signal: CommitSignal, flt: RecordFilter, cursor: int,
    live: bool,
) -> AsyncIterator[bytes]:  # fmt: skip
    yield b"retry: 2000\n\n"
    while True:
        woken = signal.current()
        rows, last = await asyncio.to_thread(store.records_json, cursor, STREAM_BATCH, flt)
        if rows:
            cursor = last
            yield b"".join(
                b"id: %d\nevent: record\ndata: %s\n\n" % (seq, text) for seq, _, text in rows
            )
            continue
        if signal.closed or await request.is_disconnected():
            return
        # Without a hub (an API over a store another process writes) poll every 2 s.
        await signal.wait(woken, KEEPALIVE_S if live else 2.0)
        yield b": keepalive\n\n"
