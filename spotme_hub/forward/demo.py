"""Demo part: the reference SPOT-Me core. The hub forwards to it; 15 s in, the core goes down for
10 s, the backlog grows, then drains (at the configured drain rate) — shown as status notes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any


@contextlib.asynccontextmanager
async def part(demo: Any) -> AsyncIterator[None]:
    from .core_sim import CoreServer, CoreState
    from .outbox import forward_status

    server = await asyncio.to_thread(CoreServer(CoreState()).start)
    demo.env["DEMO_CORE_URL"] = server.url

    async def watch() -> None:
        await demo.started.wait()
        hub = demo.hub
        last = ""
        for tick in range(10**9):
            if tick == 15:
                server.state.settings({"down_for": 10})
                demo.note("core: outage for 10 s (the hub keeps committing; backlog grows)")
            st = await asyncio.to_thread(forward_status, hub.store, hub.cfg)
            line = (
                f"core: {server.state.stored()} stored, hub delivered {st['delivered']}, "
                f"backlog {st['backlog']} ({st['state']})"
            )
            if line != last and tick % 3 == 0:
                demo.note(line)
                last = line
            await asyncio.sleep(1)

    demo.spawn(watch())
    try:
        yield
    finally:
        await asyncio.to_thread(server.stop)
