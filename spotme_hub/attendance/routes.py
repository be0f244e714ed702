"""API routes for attendance: the stored days (a change cursor the core can follow, one day with
its trace, today's summary per office) and the facts the core pushes (scope `facts:write`)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response

from ..contract import RouteContext
from ..schedule import Fact, parse_day
from .book import DayBook
from .facts import FactBook, FactRefused, fact_doc
from .ledger import days_page, stored_day, today_summary
from .ledger import today as today_date

FACTS_WRITE = "facts:write"
#: a date the days are worked out for: 1970-01-01 … 2199-12-31 (the pattern says the years)
Date = Annotated[
    str,
    Query(
        pattern=r"^(19[7-9][0-9]|2[01][0-9]{2})-[0-9]{2}-[0-9]{2}$",
        description="YYYY-MM-DD, 1970 to 2199",
        json_schema_extra={"format": "date"},
    ),
]


def _date(value: str, what: str) -> dt.date:
    try:
        return parse_day(value)
    except ValueError as exc:
        raise HTTPException(422, f"{what}: {exc}") from None


def days_router(ctx: RouteContext) -> APIRouter:
    cfg, store = ctx.cfg, ctx.store
    employees = {e.id for e in cfg.employees}
    offices = {o.id for o in cfg.offices}
    max_page = cfg.api.max_page
    facts = FactBook(cfg, store)
    r = APIRouter(prefix="/api/v1", tags=["days"])
    read = [Depends(ctx.read)]

    @r.get("/days", dependencies=read, summary="Stored days in change order (a cursor)")
    async def days(
        date: Date | None = None,
        to: Date | None = None,
        office: str | None = None,
        employee: str | None = None,
        status: Annotated[
            str | None, Query(pattern="^(complete|incomplete|absent|leave|off)$")
        ] = None,
        after: Annotated[
            int, Query(ge=0, le=2**62, description="`next_cursor` of the last page")
        ] = 0,
        limit: Annotated[
            int, Query(ge=1, le=1_000_000, description="Page size (capped at api.max_page).")
        ] = 1000,
    ) -> Response:
        """Every stored day that changed after `after` (each with its `seq`), filtered as
        `spotme-hub days` filters: a day that is worked out again and changes comes back with a
        new `seq`, so following `next_cursor` sees late punches, facts and settled days."""
        first = _date(date, "date").isoformat() if date else None
        last = _date(to, "to").isoformat() if to else first if date else None
        texts, cursor = await asyncio.to_thread(
            days_page, store, after, min(limit, max_page), first, last, office, employee, status
        )
        body = b'{"days":[%s],"next_cursor":%d}' % (b",".join(texts), cursor)
        return Response(body, media_type="application/json")

    @r.get("/days/today", dependencies=read, summary="Today per office",
           responses={404: {"description": "No such office"}})  # fmt: skip
    async def today(office: str | None = None) -> dict[str, Any]:
        """What the dashboard's Today panel shows: per office, officers, present, late, not yet
        in, on BDR, on leave, absent, off."""
        if office is not None and office not in offices:
            raise HTTPException(404, f"unknown office {office!r}")
        date = today_date(cfg)
        rows = await asyncio.to_thread(today_summary, cfg, store, date, office)
        return {"date": date.isoformat(), "offices": rows}

    @r.get("/days/{employee}/{date}", dependencies=read, summary="One day, with its trace")
    async def one_day(
        employee: Annotated[str, Path()], date: Annotated[str, Path()]
    ) -> dict[str, Any]:
        """The stored day (`stored: true`, with its `seq`), or for a date the hub does not keep
        (not yet reached, or before it started) the day worked out now from the records."""
        if employee not in employees:
            raise HTTPException(404, f"unknown employee {employee!r}")
        when = _date(date, "date")

        def work() -> dict[str, Any]:
            kept = stored_day(store, employee, when)
            if kept is not None:
                return {**kept, "stored": True}
            book = DayBook(cfg, store, facts.facts())
            (day,) = book.days(when, when, employee=employee)
            return {**day.to_dict(), "stored": False}

        return await asyncio.to_thread(work)

    @r.get("/facts", dependencies=read, summary="Officer facts, from every source")
    async def list_facts(employee: str | None = None) -> list[dict[str, object]]:
        known = await asyncio.to_thread(facts.known)
        return [k.to_dict() for k in known if employee is None or k.fact.employee == employee]

    write = [Depends(ctx.scope(FACTS_WRITE))]

    @r.post("/facts", dependencies=write, status_code=201, summary="Push an officer fact")
    async def post_fact(fact: Annotated[Fact, Body()]) -> dict[str, object]:
        """A supervisor's approval, a leave, a BDR arrangement… (the keys of `facts:` in the
        configuration). Posting a fact with the id of one posted before replaces it. The days it
        covers are worked out again. A fact FastAPI cannot read is a 422 naming each field
        (`loc`); one about an officer the configuration does not have, too."""
        try:
            replaced = await asyncio.to_thread(facts.put, fact)
        except FactRefused as exc:
            raise HTTPException(exc.status, exc.reason) from None
        return {"fact": fact_doc(fact), "replaced": replaced}

    @r.delete("/facts/{fact_id}", dependencies=write, summary="Withdraw a pushed fact")
    async def delete_fact(fact_id: str) -> dict[str, object]:
        try:
            fact = await asyncio.to_thread(facts.delete, fact_id)
        except FactRefused as exc:
            raise HTTPException(exc.status, exc.reason) from None
        return {"deleted": fact_doc(fact)}

    return r
