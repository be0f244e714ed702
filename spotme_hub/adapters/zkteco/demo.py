"""Demo piece: a simulated ZKTeco terminal (binary protocol) that someone punches every few
seconds; the hub takes its punches live (realtime events) with a periodic pull behind them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from .simulator import ZKSimulator


@contextlib.asynccontextmanager
async def part(demo: Any) -> AsyncIterator[None]:
    sim = ZKSimulator(port=demo.free_port(), records=200, record_size=40, users=6,
                      punch_every=4.0, serial="DEMO-ZK-0001")  # fmt: skip
    sim.start()
    demo.env["DEMO_ZK_PORT"] = str(sim.port)
    demo.note(f"ZKTeco terminal simulator on tcp://127.0.0.1:{sim.port} (a punch every 4 s)")
    try:
        yield
    finally:
        sim.stop()
