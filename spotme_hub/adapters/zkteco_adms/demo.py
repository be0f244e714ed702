"""Demo part: a ZKTeco push terminal (with GPS) posting to the demo hub's own API.

It keeps two punches back (a lost post), so the scheduled VERIFY SUM finds the gap, the device
turns DEGRADED, the hub queues a backfill, the terminal re-sends, and the recheck turns it UP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

SERIAL = "DEMO-PUSH-01"


@contextlib.asynccontextmanager
async def part(demo: Any) -> AsyncIterator[None]:
    from .simulator import PushTerminal

    demo.env["DEMO_ADMS_SERIAL"] = SERIAL

    async def terminal() -> None:
        await demo.started.wait()
        url = f"http://127.0.0.1:{demo.port}"
        term = PushTerminal(
            url, SERIAL, gps=True, center=(2.9264, 101.6964), radius_m=250,
            users=["1", "2", "3", "4"], log=lambda m: demo.note(f"push terminal {m}"),
        )  # fmt: skip
        try:
            for _ in range(150):  # the API starts right after the hub
                try:
                    await term.client.get(f"{url}/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
            await term.run(records=8, withhold=2, every=5, delay=2, forever=True)
        except httpx.HTTPError as exc:
            demo.note(f"push terminal stopped: {exc}")
        finally:
            await term.close()

    demo.spawn(terminal())
    yield
