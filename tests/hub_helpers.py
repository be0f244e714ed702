"""Test helpers shared by every feature's tests: run a Hub in-process and wait for conditions
(generous timeouts: behaviour is under test, not speed)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from spotme_hub.config import HubConfig
from spotme_hub.pipeline.runtime import Hub
from spotme_hub.service import open_hub


async def wait_until(
    cond: Callable[[], Any], timeout: float = 90.0, every: float = 0.02, what: str = ""
) -> Any:
    """Poll `cond` until truthy; fail with a clear message after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            name = what or getattr(cond, "__name__", repr(cond))
            raise AssertionError(f"condition not met within {timeout}s: {name}")
        await asyncio.sleep(every)


def wait_until_sync(
    cond: Callable[[], Any], timeout: float = 90.0, every: float = 0.05, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what or cond}")
        time.sleep(every)


@contextlib.asynccontextmanager
async def running(cfg: HubConfig) -> AsyncIterator[Hub]:
    """A started Hub, stopped (and its store closed) afterwards."""
    hub = open_hub(cfg)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()
        hub.store.close()
