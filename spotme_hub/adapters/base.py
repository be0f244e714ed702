"""The adapter contract: what a device kind implements and what the runtime gives it.

An adapter owns its wire format and nothing else. The runtime owns scheduling, restarts with
backoff, health and the durable commit. A kind implements ONE of:

* ``async def run(self, ctx)`` — a long-lived session (a socket, a serial port, a subscription).
  Return or raise to end it; the runtime restarts it with exponential backoff and jitter.
* ``async def poll(self, ctx)`` — one collection pass; the runtime calls it every
  ``options.poll_every`` seconds and counts a raised exception as a failed poll.

Both hand punches to ``await ctx.submit(...)``, which returns only after the punches are
committed. Acknowledge nothing to the source (MQTT PUBACK, HTTP OK, file move, device clear)
before it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from ..config import Device, HubConfig
from ..record import RawPunch, Record, Rejection

T = TypeVar("T")


class DeviceError(Exception):
    """A failure the admin should see in device health, classified for the CLI and the API.

    `category` is one of: unreachable, timeout, unauthorized, protocol, config, io, mismatch.
    """

    def __init__(self, category: str, message: str):
        self.category = category
        self.message = message
        super().__init__(f"{category}: {message}")


@dataclass(slots=True)
class SubmitResult:
    records: list[Record] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)


class DeviceContext(Protocol):
    """What the runtime gives an adapter."""

    device: Device
    config: HubConfig
    log: logging.Logger

    async def submit(
        self,
        punches: Sequence[RawPunch],
        rejections: Sequence[Rejection] = (),
        checkpoint: Mapping[str, Any] | None = None,
        punch_map: Mapping[str, str] | None = None,
    ) -> SubmitResult:
        """Normalise and commit; quarantine what cannot become a record. Checkpoint values
        (key → JSON value, scoped to this device) commit in the same transaction."""
        ...

    def reject(self, reason: str, raw: Any, source: Mapping[str, Any] | None = None) -> Rejection:
        """Build a Rejection for this device (pass it to submit)."""
        ...

    def for_device(self, device_id: str) -> DeviceContext:
        """The context of another configured device, for input that holds its punches (a
        terminal's USB export in a watch folder, a file's device column); KeyError if there is
        no such device."""
        ...

    def checkpoint(self, key: str, default: Any = None) -> Any:
        """The last committed checkpoint value for this device."""
        ...

    def mark_up(self, **detail: Any) -> None:
        """The device answered: UP, failures reset, last_seen now; detail shown in health."""
        ...

    def mark_degraded(self, reason: str, **detail: Any) -> None:
        """Reachable but not right (e.g. a record count that does not reconcile)."""
        ...

    def mark_seen(self) -> None: ...

    def count(self, name: str, n: int = 1) -> None:
        """Bump a health counter (shown in `spotme-hub devices` and metrics)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep; returns early (raising CancelledError) when the hub stops."""
        ...

    async def to_thread(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run blocking library code (pyzk, pyserial) in a worker thread."""
        ...


@runtime_checkable
class Adapter(Protocol):
    kind: ClassVar[str]
    options_model: ClassVar[type[BaseModel]]

    def __init__(self, device: Device, options: Any) -> None: ...


class Options(BaseModel):
    """Base for kind-specific options: unknown keys are errors."""

    model_config = {"extra": "forbid"}
