"""The adapter contract: what a device kind implements, and what the hub gives it.

An adapter owns its wire format and nothing else. The runtime (`pipeline/`) owns scheduling,
restarts with backoff, health and the durable commit; the composition root (`service.py`) mounts
what a kind brings besides (tables, routes, commands, a demo part).

Every kind is a class with `kind`, `options_model` and `__init__(device, options)` (`Adapter`),
and implements exactly ONE way of collecting:

* `Streaming` — ``async def run(self, ctx)``: a long-lived session (a socket, a serial port, a
  subscription). Return or raise to end it; the runtime restarts it with exponential backoff.
* `Polling` — ``async def poll(self, ctx)``: one collection pass, every ``options.poll_every``
  seconds; a raised exception counts as a failed poll.

Both hand punches to ``await ctx.submit(...)``, which returns only after the punches are
committed. Acknowledge nothing to the source (MQTT PUBACK, HTTP OK, file move, device clear)
before it returns.

Optional abilities are protocols of their own. A class names the ones it has among its bases
(``class MqttAdapter(Streaming, Replayable)``); the registry checks at registration that each
named ability's methods are really there, and refuses the class with the missing method's name.

* `Replayable` — re-read a quarantined input after a fix (``replay``).
* `HasPunchWords` — punch words of the kind's own options (``punch_map``).
* `HasTables` — tables of the kind's own, created beside the store's (``tables``).
* `HasRoutes` — HTTP routes, mounted by the API (``routes``).
* `HasCommands` — `spotme-hub` sub-commands (``commands``).
* `HasDemo` — a part of `spotme-hub demo` (``demo_part``).

`FakeContext` is the test double of `DeviceContext`: it normalises with the hub's own rules and
keeps what would have been committed in memory, so an adapter can be tested without a hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from .config import Device, HubConfig
from .record import RawPunch, Record, Rejection

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter
    from sqlalchemy import Table

    from .store import Store

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


@dataclass(slots=True)
class BulkCounts:
    """What a bulk import committed: rows read, new records, duplicates, quarantined rows."""

    rows: int = 0
    new: int = 0
    duplicate: int = 0
    quarantined: int = 0


class Options(BaseModel):
    """Base for kind-specific options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class DeviceContext(Protocol):
    """What the runtime gives an adapter."""

    device: Device
    config: HubConfig
    log: logging.Logger

    async def submit(
        self,
        punches: Sequence[RawPunch],
        rejections: Sequence[Rejection] = (),
        checkpoint: Mapping[str, object] | None = None,
        punch_map: Mapping[str, str] | None = None,
    ) -> SubmitResult:
        """Normalise and commit; quarantine what cannot become a record. Checkpoint values
        (key → JSON value, scoped to this device) commit in the same transaction."""
        ...

    def reject(
        self, reason: str, raw: object, source: Mapping[str, object] | None = None
    ) -> Rejection:
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

    def state(self, factory: Callable[[], T]) -> T:
        """An object the kind keeps with this device for as long as the hub runs: made by
        `factory` on first use, the same object after a restart of the adapter (an ADMS
        terminal's session state, shared by the adapter and its routes)."""
        ...

    def mark_up(self, **detail: object) -> None:
        """The device answered: UP, failures reset, last_seen now; detail shown in health."""
        ...

    def mark_degraded(self, reason: str, **detail: object) -> None:
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

    async def submit_bulk(self, work: Callable[[Store], BulkCounts]) -> BulkCounts:
        """The bulk path, for input that comes as files: `work(store)` runs on a worker thread
        and commits through `Store.bulk_insert` (serialised with the live writer, each chunk in
        one transaction with its quarantine and checkpoints), as `spotme-hub import` does; the
        runtime then counts what it committed and wakes the feed and the forwarder."""
        ...


# --- the adapter and its abilities ------------------------------------------------------------


@runtime_checkable
class Adapter(Protocol):
    """Every device kind: its name in the configuration, its options, its constructor.

    A kind may also say, as a class attribute `starting: str`, what a device of it is doing
    until it calls `mark_up` the first time ("subscribing"): its health is STARTING meanwhile
    and `/readyz` waits for it (a first failure ends the wait)."""

    kind: ClassVar[str]
    options_model: ClassVar[type[BaseModel]]

    def __init__(self, device: Device, options: Any) -> None: ...


class Streaming(Protocol):
    """A long-lived session; the runtime restarts it with backoff when it ends or raises."""

    async def run(self, ctx: DeviceContext) -> None: ...


class Polling(Protocol):
    """One collection pass every ``options.poll_every`` seconds."""

    async def poll(self, ctx: DeviceContext) -> None: ...


class Replayable(Protocol):
    """Re-reads a quarantined input (the raw value and source as stored) after a fix."""

    @classmethod
    def replay(
        cls, device: Device, raw: Any, source: dict[str, Any]
    ) -> list[RawPunch] | Rejection: ...


class HasPunchWords(Protocol):
    """Punch words the device's own options add to the hub's `punch_map`."""

    @classmethod
    def punch_map(cls, device: Device) -> Mapping[str, str] | None: ...


class HasTables(Protocol):
    """Tables of the kind's own, created with the store's. A table whose rows name records by
    `seq` and id says so in ``Table.info["record_ref"] = (seq column, id column)``: the store
    keeps those ids in step when it moves record ids."""

    @classmethod
    def tables(cls) -> Sequence[Table]: ...


class Caller(Protocol):
    """Who made an API call (what the scope dependencies of `RouteContext` return)."""

    @property
    def name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What a kind's routes are built with: the hub's parts and its three scopes (FastAPI
    dependencies: ``Depends(ctx.admin)``)."""

    cfg: HubConfig
    store: Store
    #: The context of a device the hub is running (None when it is not running it, or when the
    #: API serves a stopped hub).
    running: Callable[[str], DeviceContext | None]
    read: Callable[..., Any]
    write: Callable[..., Any]
    admin: Callable[..., Any]
    #: the dependency for any other scope (``Depends(ctx.scope("facts:write"))``)
    scope: Callable[[str], Callable[..., Any]]


class HasRoutes(Protocol):
    """HTTP routes, mounted by the API (terminals' own endpoints, an ingest API)."""

    @classmethod
    def routes(cls, ctx: RouteContext) -> APIRouter: ...


@dataclass(frozen=True, slots=True)
class Outbox:
    """Changes of a part's own the forwarder delivers to the core beside the records, through
    the same machinery (its own cursor, retries, idempotency keys, pacing): `read(store, after,
    limit)` gives (seq, id, JSON text) in the part's change order; the core receives
    ``{"hub_id": ..., "<name>": [...]}`` at `path`. A change the core refuses is counted and
    logged, not dead-lettered: the next change of the same thing is sent again."""

    name: str
    path: str
    read: Callable[[Store, int, int], list[tuple[int, str, bytes]]]


class HasOutbox(Protocol):
    """Changes for the core (``core.forward_days``): None when the configuration turns it off."""

    @classmethod
    def outbox(cls, cfg: HubConfig) -> Outbox | None: ...


class CommandTools(Protocol):
    """What the CLI hands a kind's commands: the shared `--config` option, loading a
    configuration, opening the store, a hub (not started) for one-shot work through the hub's
    own contexts, and the `simulate` group for simulators. The CLI implements it; a command
    module imports this only for its annotations, so listing the commands loads no part."""

    @property
    def config_option(self) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    @property
    def simulate(self) -> click.Group: ...

    def format_option(self, *choices: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """`--format` (into the parameter `fmt`), the one spelling of machine output on every
        command: the first choice is the default (`table`), `json` is for programs."""
        ...

    def load_config(self, path: str | Path) -> HubConfig: ...

    def open_store(self, cfg: HubConfig) -> Store: ...

    def open_hub(self, cfg: HubConfig) -> Any: ...


class HasCommands(Protocol):
    """Sub-commands of `spotme-hub` (``spotme-hub adms ...``, ``spotme-hub simulate zk``)."""

    @classmethod
    def commands(cls, cli: click.Group, tools: CommandTools) -> None: ...


class DemoStage(Protocol):
    """What a demo part sees of `spotme-hub demo`: values for the demo's `demo.yaml` (``env``),
    tasks to run (``spawn``), lines under the live view (``note``), and the hub once it runs."""

    data_dir: Path
    port: int
    env: dict[str, str]
    hub: Any
    started: asyncio.Event

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...

    def note(self, text: str) -> None: ...

    def free_port(self) -> int: ...


class HasDemo(Protocol):
    """A part of `spotme-hub demo`: starts a simulator before the hub, feeds it, cleans up."""

    @classmethod
    def demo_part(cls, demo: DemoStage) -> contextlib.AbstractAsyncContextManager[None]: ...


#: The ways of collecting: a kind has exactly one.
COLLECTING: tuple[type, ...] = (Streaming, Polling)
#: Everything a class may name among its bases.
ABILITIES: tuple[type, ...] = (
    *COLLECTING,
    Replayable,
    HasPunchWords,
    HasTables,
    HasRoutes,
    HasCommands,
    HasDemo,
    HasOutbox,
)


class ContractError(TypeError):
    """A class that does not keep the contract (said at registration)."""


def _members(protocol: type) -> list[str]:
    own = vars(protocol)
    return [n for n, v in own.items() if callable(v) or isinstance(v, classmethod)]


def has(cls: type, ability: type) -> bool:
    """Whether the class names `ability` among its bases (registration checked the rest)."""
    return isinstance(cls, type) and ability in cls.__mro__


def check_adapter(cls: type) -> None:
    """Refuse a class that does not keep the contract, naming what is missing."""
    name = getattr(cls, "__qualname__", repr(cls))
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise ContractError(f"{name} has no `kind` (a class attribute naming the device kind)")
    model = getattr(cls, "options_model", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ContractError(f"{name} ({kind}): `options_model` must be a pydantic model class")
    ways = [p.__name__ for p in COLLECTING if has(cls, p)]
    if len(ways) != 1:
        raise ContractError(
            f"{name} ({kind}) must name exactly one of Streaming (run) or Polling (poll) among "
            f"its bases; it names {', '.join(ways) or 'neither'}"
        )
    for ability in ABILITIES:
        if not has(cls, ability):
            continue
        for member in _members(ability):
            found = getattr(cls, member, None)
            stub = vars(ability)[member]
            stub_fn = stub.__func__ if isinstance(stub, classmethod) else stub
            found_fn = getattr(found, "__func__", found)
            if found is None or found_fn is stub_fn:
                raise ContractError(
                    f"{name} ({kind}) names {ability.__name__} but does not define `{member}`"
                )
            if member in ("run", "poll") and not asyncio.iscoroutinefunction(found_fn):
                raise ContractError(f"{name} ({kind}): `{member}` must be `async def`")


def sibling(module: str, name: str) -> Any:
    """An ability's classmethod that hands its arguments to `name` in the kind's own `module`
    (``commands = sibling("commands", "register")``), imported on the first call: a kind's
    routes, commands and demo cost nothing until the hub uses them."""

    def call(cls: type, *args: Any) -> Any:
        package = sys.modules[cls.__module__].__package__
        return getattr(importlib.import_module(f"{package}.{module}"), name)(*args)

    call.__name__ = call.__qualname__ = f"{module}.{name}"
    return classmethod(call)


# --- the test double --------------------------------------------------------------------------


class FakeContext:
    """A `DeviceContext` without a hub: punches are normalised by the hub's own rules and kept in
    `records`, rejections in `rejected`, checkpoints in `checkpoints`, health in `state_name`,
    `details` and `counters`. `sleep` returns at once until `stop_after` sleeps, then raises
    CancelledError (so a `run` loop ends)."""

    def __init__(self, cfg: HubConfig, device_id: str, stop_after: int | None = None):
        from .normalize import Normalizer

        self.config = cfg
        self.device = cfg.device(device_id)
        self.log = logging.getLogger(f"spotme_hub.fake.{device_id}")
        self.normalizer = Normalizer(cfg)
        self.records: list[Record] = []
        self.rejected: list[Rejection] = []
        self.checkpoints: dict[str, object] = {}
        self.state_name = "UNKNOWN"
        self.details: dict[str, object] = {}
        self.counters: dict[str, int] = {}
        self.stop_after = stop_after
        self.sleeps = 0
        self._states: dict[Callable[[], object], object] = {}
        self._others: dict[str, FakeContext] = {}
        self._store: Store | None = None

    async def submit(
        self,
        punches: Sequence[RawPunch],
        rejections: Sequence[Rejection] = (),
        checkpoint: Mapping[str, object] | None = None,
        punch_map: Mapping[str, str] | None = None,
    ) -> SubmitResult:
        now = datetime.now(UTC)
        result = SubmitResult()
        known = {r.id for r in self.records}
        for raw in punches:
            out = self.normalizer.normalize(self.device, raw, now=now, punch_map=punch_map)
            if isinstance(out, Rejection):
                self.rejected.append(out)
                result.quarantined.append(len(self.rejected))
                continue
            result.records.append(out)
            if out.id in known:
                result.duplicate.append(out.id)
            else:
                known.add(out.id)
                self.records.append(out)
                result.new.append(out.id)
        for rej in rejections:
            self.rejected.append(rej)
            result.quarantined.append(len(self.rejected))
        self.checkpoints.update(checkpoint or {})
        return result

    def reject(
        self, reason: str, raw: object, source: Mapping[str, object] | None = None
    ) -> Rejection:
        return Rejection(
            reason=reason, raw=raw, source=dict(source or {}), device_id=self.device.id
        )

    def for_device(self, device_id: str) -> FakeContext:
        if device_id == self.device.id:
            return self
        if device_id not in self._others:
            self._others[device_id] = FakeContext(self.config, device_id, self.stop_after)
        return self._others[device_id]

    def checkpoint(self, key: str, default: Any = None) -> Any:
        return self.checkpoints.get(key, default)

    def state(self, factory: Callable[[], T]) -> T:
        if factory not in self._states:
            self._states[factory] = factory()
        return self._states[factory]  # type: ignore[return-value]

    def mark_up(self, **detail: object) -> None:
        self.state_name = "UP"
        self.details.update(detail)

    def mark_degraded(self, reason: str, **detail: object) -> None:
        self.state_name = "DEGRADED"
        self.details.update(detail, degraded_reason=reason)

    def mark_seen(self) -> None:
        pass

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.stop_after is not None and self.sleeps > self.stop_after:
            raise asyncio.CancelledError
        await asyncio.sleep(0)

    async def to_thread(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    async def submit_bulk(self, work: Callable[[Store], BulkCounts]) -> BulkCounts:
        """Into an in-memory store of this context's own (`self.store`)."""
        if self._store is None:
            from .store import Store

            self._store = Store("sqlite://")
            self._store.create_all()
        counts = await asyncio.to_thread(work, self._store)
        self.counters["new"] = self.counters.get("new", 0) + counts.new
        return counts

    @property
    def store(self) -> Store | None:
        """The store `submit_bulk` wrote to (None before the first bulk import)."""
        return self._store


@contextlib.asynccontextmanager
async def nothing() -> AsyncIterator[None]:
    """A demo part that starts nothing (for kinds whose demo needs no simulator)."""
    yield


__all__ = [
    "ABILITIES",
    "Adapter",
    "CommandTools",
    "ContractError",
    "DemoStage",
    "DeviceContext",
    "DeviceError",
    "FakeContext",
    "HasCommands",
    "HasDemo",
    "HasOutbox",
    "HasPunchWords",
    "HasRoutes",
    "HasTables",
    "Options",
    "Outbox",
    "Polling",
    "Replayable",
    "RouteContext",
    "Streaming",
    "SubmitResult",
    "check_adapter",
    "has",
]
