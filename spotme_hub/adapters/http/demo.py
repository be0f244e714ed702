"""Demo part: an HR/mobile client posting JSON batches to the demo hub's `POST /api/v1/punches`
(one in six items has no user id and lands in quarantine, as a bad client's would)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx


@contextlib.asynccontextmanager
async def part(demo: Any) -> AsyncIterator[None]:
    async def client() -> None:
        await demo.started.wait()
        rng = random.Random(8)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{demo.port}", timeout=10) as c:
            for _ in range(150):  # the API starts right after the hub
                try:
                    await c.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
            while True:
                now = datetime.now(UTC).isoformat()
                items: list[dict[str, Any]] = [
                    {"user_id": rng.choice(["1", "2", "5", "6"]), "time": now,
                     "punch": rng.choice(["in", "out"]), "verify": "face"}
                    for _ in range(rng.randint(1, 3))
                ]  # fmt: skip
                if rng.random() < 1 / 6:
                    items.append({"time": now, "punch": "in"})
                try:
                    resp = await c.post("/api/v1/punches", json={"device": "hr-portal",
                                                                 "punches": items})  # fmt: skip
                    body = resp.json()
                    demo.note(
                        f"HR portal POST /api/v1/punches: {resp.status_code} "
                        f"created={body.get('created')} quarantined={body.get('quarantined')}"
                    )
                except httpx.HTTPError as exc:
                    demo.note(f"HR portal: {exc}")
                await asyncio.sleep(7)

    demo.spawn(client())
    yield
