"""Test helpers: run a Hub in-process and wait for conditions (no timing assertions)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_until(cond: Callable[[], Any], timeout: float = 30.0, every: float = 0.02) -> Any:
    """Poll `cond` until truthy; fail with a clear message after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"condition not met within {timeout}s: {getattr(cond, '__name__', cond)}"
            )
        await asyncio.sleep(every)


def wait_until_sync(cond: Callable[[], Any], timeout: float = 60.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)
