"""A running hub with the real API on a free port (uvicorn + httpx over real sockets), and
pre-normalised records for the feed tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from adms_helpers import free_port
from fastapi import FastAPI

from spotme_hub.config import HubConfig
from spotme_hub.pipeline.runtime import Hub
from spotme_hub.record import Record, record_id
from spotme_hub.service import config_from_dict, create_app, open_hub, tables
from spotme_hub.store import Store

TOKENS = {"reader": "r-secret-0001", "writer": "w-secret-0002", "admin": "a-secret-0003"}
SCOPES = {"reader": ["feed:read"], "writer": ["punches:write"], "admin": ["admin"]}


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


def config(tmp_path: Path, tokens: bool = True, **extra: Any) -> dict[str, Any]:
    api: dict[str, Any] = {"max_page": 5000, "max_body_bytes": 200_000}
    if tokens:
        api["tokens"] = [{"name": n, "token": t, "scopes": SCOPES[n]} for n, t in TOKENS.items()]
    api.update(extra.pop("api", {}))
    return {
        "hub": {
            "id": "test-hub",
            "data_dir": str(tmp_path / "data"),
            "restart_min_s": 0.05,
            "restart_max_s": 0.2,
            "failures_to_down": 1,
        },  # fmt: skip
        "offices": [
            {"id": "pjy-hq", "name": "Putrajaya HQ", "state": "PJY"},
            {"id": "kch", "name": "Kuching", "state": "SWK", "timezone": "Asia/Kuching"},
        ],
        "employees": [{"id": "E1", "user_ids": ["1"]}, {"id": "E2", "user_ids": ["2"]}],
        "devices": extra.pop(
            "devices",
            [
                {"id": "hr-api", "name": "HR system", "kind": "http", "office": "pjy-hq"},
                {
                    "id": "mobile",
                    "kind": "http",
                    "office": "kch",
                    "mapping": {
                        "user_id": "staff.pin",
                        "time": "ts",
                        "punch": {"path": "type", "map": {"Masuk": "in", "Keluar": "out"}},
                    },
                },
                # a push terminal that never calls: DOWN after 0.2 s with a real error
                {
                    "id": "lobby-zk",
                    "name": "Lobby terminal",
                    "kind": "zkteco_adms",
                    "office": "pjy-hq",
                    "serial": "SILENT01",
                    "silent_after_s": 0.2,
                },
            ],
        ),  # fmt: skip
        "api": api,
        **extra,
    }


@dataclass
class Api:
    cfg: HubConfig
    store: Store
    hub: Hub | None
    url: str
    client: httpx.AsyncClient


@asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def running_api(
    tmp_path: Path, with_hub: bool = True, data: dict[str, Any] | None = None, **kw: Any
) -> AsyncIterator[Api]:
    cfg = config_from_dict(data or config(tmp_path, **kw), base_dir=tmp_path)
    hub: Hub | None = None
    if with_hub:
        hub = open_hub(cfg)
        store = hub.store
        await hub.start()
    else:
        store = Store(cfg.database_url, "NORMAL")
        store.create_all(tables())
    try:
        async with (
            serve_app(create_app(cfg, store, hub)) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as client,
        ):
            yield Api(cfg, store, hub, url, client)
    finally:
        if hub is not None:
            await hub.stop()
        store.close()


def make_records(start: int, n: int, device: str = "bulk", office: str = "pjy-hq") -> list[Record]:
    """Pre-normalised records (as normalisation would produce them), fast to commit in bulk."""
    out = []
    for i in range(start, start + n):
        hh, mm, ss = 8 + (i // 3600) % 10, (i // 60) % 60, i % 60
        local = f"2026-11-{20 + (i // 36000) % 8:02d}T{hh:02d}:{mm:02d}:{ss:02d}"
        utc = f"2026-11-{20 + (i // 36000) % 8:02d}T{hh - 8:02d}:{mm:02d}:{ss:02d}.000Z"
        out.append(
            Record(
                id=record_id(f"{device}|{i}|{local}|in"),
                employee_id=f"E{i % 500}",
                source_user_id=str(i % 500),
                card=None,
                punch="in" if i % 2 else "out",
                verify="fingerprint",
                occurred_at=utc,
                local_time=local,
                timezone="Asia/Kuala_Lumpur",
                received_at=utc,
                clock_skew_s=None,
                device_id=device,
                device_kind="simulated",
                device_serial="SN-BULK",
                office_id=office,
                office_state="PJY",
                latitude=None,
                longitude=None,
                location_source=None,
                distance_m=None,
                within_geofence=None,
                flags=["clock_skew"] if i % 7 == 0 else [],
                source={"kind": "bulk", "i": i},
                raw={"i": i},
            )  # fmt: skip
        )
    return out
