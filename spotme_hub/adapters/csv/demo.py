"""Demo piece: a watch folder for HR/time-attendance exports. After the hub starts, a sample
USB `attlog.dat` (from `fixtures/`) is copied into it; the csv device imports it, moves it to
`processed/` and the import summary is shown under the live view."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "7_attlog.dat"
DEVICE = "hr-import"


def _sample() -> bytes:
    """The fixture when the source tree is there, else the same kind of file made here."""
    if FIXTURE.exists():
        return FIXTURE.read_bytes()
    return "".join(
        f"{pin:>9}\t2026-11-02 0{7 + k % 2}:{10 + k}:00\t1\t{k % 2}\t1\t0\r\n"
        for k, pin in enumerate(["1", "2", "3", "4"])
    ).encode()


@contextlib.asynccontextmanager
async def part(demo: Any) -> AsyncIterator[None]:
    inbox = demo.data_dir / "csv-inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    demo.env["DEMO_WATCH_DIR"] = str(inbox)

    async def feed() -> None:
        await demo.started.wait()
        await asyncio.sleep(1.0)
        target = inbox / "7_attlog.dat"
        tmp = inbox / "7_attlog.dat.part"  # written under a name the adapter ignores, then renamed
        tmp.write_bytes(_sample())
        old = time.time() - 60
        os.utime(tmp, (old, old))
        tmp.rename(target)
        demo.note(f"csv: dropped {target.name} into the watch folder {inbox}")
        for _ in range(120):
            await asyncio.sleep(0.5)
            if (inbox / "processed" / target.name).exists():
                health = demo.hub.health.get(DEVICE)
                s = (health.detail.get("last_import") if health else None) or {}
                demo.note(
                    f"csv: imported {target.name}: {s.get('new', 0)} new, "
                    f"{s.get('duplicate', 0)} duplicates, {s.get('quarantined', 0)} quarantined "
                    "→ moved to processed/"
                )
                return
        demo.note(f"csv: {target.name} was not imported (see `spotme-hub devices`)")

    demo.spawn(feed())
    yield
