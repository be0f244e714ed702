"""`kind: acme_door` — a door controller kind from outside the hub: it brings its own table
(door-open notes), its own routes (`/api/v1/acme/...`) and its own command (`spotme-hub acme`),
through the same contract as the built-in kinds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import click
from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, Table, Text, select

from spotme_hub.config import Device
from spotme_hub.contract import (
    CommandTools,
    DeviceContext,
    HasCommands,
    HasRoutes,
    HasTables,
    Options,
    RouteContext,
    Streaming,
)
from spotme_hub.record import RawPunch

NOTES = Table(
    "acme_door_notes",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", Text, nullable=False),
    Column("note", Text, nullable=False),
)


class AcmeOptions(Options):
    door: str
    punches: int = 3


class Note(BaseModel):
    note: str


class AcmeDoor(Streaming, HasTables, HasRoutes, HasCommands):
    kind: ClassVar[str] = "acme_door"
    options_model: ClassVar[type[Options]] = AcmeOptions

    def __init__(self, device: Device, options: AcmeOptions):
        self.device, self.opts = device, options

    async def run(self, ctx: DeviceContext) -> None:
        ctx.mark_up(door=self.opts.door)
        t0 = datetime(2026, 12, 7, 8, 0)
        punches = [
            RawPunch(device_time=t0 + timedelta(minutes=i), user_id=str(100 + i), punch="in")
            for i in range(self.opts.punches)
        ]
        await ctx.submit(punches)
        while True:
            await ctx.sleep(3600)

    @classmethod
    def tables(cls) -> Sequence[Table]:
        return [NOTES]

    @classmethod
    def routes(cls, ctx: RouteContext) -> APIRouter:
        r = APIRouter(prefix="/api/v1/acme", tags=["acme"], dependencies=[Depends(ctx.admin)])

        @r.post("/{device_id}/notes", status_code=201)
        async def add_note(device_id: str, body: Note) -> dict[str, Any]:
            def write() -> int:
                with ctx.store.write() as conn:
                    res = conn.execute(NOTES.insert().values(device_id=device_id, note=body.note))
                    return int(res.inserted_primary_key[0])

            return {"id": await asyncio.to_thread(write)}

        return r

    @classmethod
    def commands(cls, cli: click.Group, tools: CommandTools) -> None:
        @cli.group()
        def acme() -> None:
            """Acme door controllers."""

        @acme.command("notes")
        @tools.config_option
        def notes(config_path: str) -> None:
            """Print the notes kept for acme doors."""
            store = tools.open_store(tools.load_config(config_path))
            with store.engine.connect() as conn:
                for device_id, note in conn.execute(select(NOTES.c.device_id, NOTES.c.note)):
                    click.echo(f"{device_id}: {note}")
