"""A running hub with the real API on a free port, for the ADMS tests (real HTTP, real store)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from spotme_hub.config import HubConfig
from spotme_hub.pipeline.runtime import Hub
from spotme_hub.service import config_from_dict, create_app, open_hub, tables
from spotme_hub.store import Store

SN = "ADMS0001"
DEVICE = "pjy-push"
OFFICE = {
    "id": "pjy-hq",
    "state": "PJY",
    "latitude": 2.9264,
    "longitude": 101.6964,
    "geofence_m": 150,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(
    tmp_path: Path, devices: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "hub": extra.pop("hub", {"id": "test-hub", "data_dir": str(tmp_path / "data")}),
        "offices": [OFFICE, {"id": "in-office", "timezone": "Asia/Kolkata"}],
        "employees": [{"id": "E1", "user_ids": ["1"]}, {"id": "E2", "user_ids": ["2"]}],
        "devices": devices
        if devices is not None
        else [
            {"id": DEVICE, "kind": "zkteco_adms", "office": "pjy-hq", "serial": SN},
            {"id": "in-push", "kind": "zkteco_adms", "office": "in-office", "serial": "IN0001"},
        ],
        **extra,
    }


@dataclass
class Running:
    hub: Hub
    cfg: HubConfig
    url: str
    client: httpx.AsyncClient

    async def iclock(self, method: str, path: str, body: str | bytes | None = None,
                     sn: str = SN, **params: Any) -> httpx.Response:  # fmt: skip
        content = body.encode() if isinstance(body, str) else body
        return await self.client.request(method, f"/iclock/{path}", params={"SN": sn, **params},
                                         content=content)  # fmt: skip

    async def attlog(self, body: str | bytes, sn: str = SN, **params: Any) -> httpx.Response:
        return await self.iclock("POST", "cdata", body, sn=sn, table="ATTLOG", **params)

    async def records(self, device: str = DEVICE) -> list[dict[str, Any]]:
        resp = await self.client.get("/api/v1/records", params={"device": device})
        resp.raise_for_status()
        return list(resp.json()["records"])

    async def device_health(self, device: str = DEVICE) -> dict[str, Any]:
        resp = await self.client.get("/api/v1/devices")
        return next(h for h in resp.json() if h["device_id"] == device)


PG_URL = os.environ.get("SPOTME_TEST_PG_URL")


def fresh_database(url: str) -> None:
    """Drop every table of the hub (incl. the adms_* ones) in a PostgreSQL test database."""
    store = Store(url)
    store.create_all(tables())
    from sqlalchemy import MetaData

    from spotme_hub.store.schema import OWN_TABLES

    MetaData().drop_all(store.engine, tables=[*OWN_TABLES, *tables()])
    store.close()


@asynccontextmanager
async def running_hub(
    tmp_path: Path, database: str | None = None, fresh: bool = True, **kw: Any
) -> AsyncIterator[Running]:
    data = config(tmp_path, **kw)
    if database:
        data["hub"]["database"] = database
        if fresh:
            await asyncio.to_thread(fresh_database, database)
    cfg = config_from_dict(data, base_dir=tmp_path)
    hub = open_hub(cfg)
    await hub.start()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(cfg, hub.store, hub),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )  # fmt: skip
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield Running(hub, cfg, url, client)
    finally:
        server.should_exit = True
        await task
        await hub.stop()
        hub.store.close()


def gps_extend(lat: float, lon: float) -> str:
    doc = {"GPSInfo": {"latitude": f"{lat}", "longitude": f"{lon}"}}
    return base64.b64encode(json.dumps(doc).encode()).decode()
