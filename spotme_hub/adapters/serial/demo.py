"""Demo piece: an RDM6300 card reader on a pty at the Putrajaya lobby door (`pjy-door-rdm6300`).
Card 0008844356 belongs to J0001; now and then an unknown card, line noise and a bad frame (which
lands in quarantine) show the rest of the story."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

from .simulator import VirtualPort, rdm6300_frame

DEVICE = "pjy-door-rdm6300"
CARDS = ["0008844356", "0008844356", "0012345678"]  # J0001 twice as often as an unknown card


@contextlib.asynccontextmanager
async def part(demo: Any) -> AsyncIterator[None]:
    port = VirtualPort()
    demo.env["DEMO_SERIAL_PORT"] = port.path

    async def feed() -> None:
        await demo.started.wait()
        rng = random.Random()
        while DEVICE not in demo.hub.health or demo.hub.health[DEVICE].state != "UP":
            await asyncio.sleep(0.2)
        demo.note(f"serial: RDM6300 reader on {port.path} (card 0008844356 = J0001)")
        n = 0
        while True:
            await asyncio.sleep(rng.uniform(4, 8))
            n += 1
            if n % 5 == 0:
                port.write(b"\x00\xff" + rdm6300_frame(rng.choice(CARDS), bad_checksum=True))
                demo.note("serial: a frame with a bad checksum (→ quarantine)")
                continue
            frame = rdm6300_frame(rng.choice(CARDS), version=rng.choice([0x10, 0x14]))
            for _ in range(rng.randint(2, 6)):  # held on the reader: one punch per window
                port.write(frame)
                await asyncio.sleep(0.05)

    demo.spawn(feed())
    try:
        yield
    finally:
        port.close()
