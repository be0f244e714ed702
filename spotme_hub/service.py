"""The composition root: the one place that knows every part and wires them.

registry (device kinds) → configuration (each kind's options) → store (each part's tables) →
hub (the runtime) → API (each part's routes) and the forwarder; the CLI asks here for commands
and the demo for its parts. A *part* is an adapter class or a feature (`forward.Forwarding`) and
brings what it has through the contract's abilities (`HasTables`, `HasRoutes`, `HasCommands`,
`HasDemo`). Nothing below this module imports it.

Each function imports what it wires when it is called, so a command pays only for what it uses
(`spotme-hub --help` loads no part, `config check` no store, `records` no API).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import registry

if TYPE_CHECKING:
    import asyncio
    import socket

    import click
    from fastapi import FastAPI
    from sqlalchemy import Table

    from .config import HubConfig
    from .contract import CommandTools
    from .pipeline.runtime import Hub
    from .store import Store

#: The built-in parts' `spotme-hub` commands: modules whose `register(cli, tools)` adds them.
#: Named here rather than found through each part's class, so the CLI lists and runs a command
#: without loading a part (a kind's class and libraries load when a device of that kind starts);
#: an installed plug-in brings its commands through `HasCommands`.
COMMANDS: tuple[str, ...] = (
    "spotme_hub.adapters.csv.commands",
    "spotme_hub.adapters.zkteco.commands",
    "spotme_hub.adapters.zkteco_adms.commands",
    "spotme_hub.adapters.serial.commands",
    "spotme_hub.forward.commands",
    "spotme_hub.attendance.commands",
)


def load_config(path: str | Path) -> HubConfig:
    """A configuration file, validated with every known kind's options."""
    from . import config

    return config.load_config(path, registry)


def config_from_dict(data: dict[str, Any], base_dir: str | Path = ".") -> HubConfig:
    """A configuration from a dict (tests, embedding), validated as a file is."""
    from . import config

    return config.config_from_dict(data, registry, base_dir)


def json_schema() -> dict[str, Any]:
    """The configuration's JSON Schema, devices a union of every known kind's options."""
    from . import config

    return config.json_schema(registry)


def parts() -> list[type]:
    """Every part: the device kinds, then the features."""
    from .attendance.part import Attendance
    from .forward.part import Forwarding

    return [*registry.all_adapters(), Forwarding, Attendance]


def tables() -> list[Table]:
    """The tables the parts bring (the store makes its own)."""
    from .contract import HasTables, has

    out: list[Table] = []
    for part in parts():
        if has(part, HasTables):
            out.extend(part.tables())  # type: ignore[attr-defined]
    return out


def open_store(cfg: HubConfig) -> Store:
    """The configured store with every part's tables created (and older layouts moved)."""
    from .store import Store

    store = Store(cfg.database_url, cfg.hub.sqlite_synchronous, cache_mb=cfg.hub.sqlite_cache_mb)
    store.create_all(tables())
    return store


def open_hub(cfg: HubConfig, store: Store | None = None) -> Hub:
    """The runtime over the configured store (not started)."""
    from .pipeline.runtime import Hub

    return Hub(cfg, store or open_store(cfg))


def create_app(cfg: HubConfig, store: Store, hub: Hub | None = None) -> FastAPI:
    """The HTTP API with every part's routes mounted."""
    from .api.app import create_app as build
    from .contract import HasRoutes, has

    return build(cfg, store, hub, [p for p in parts() if has(p, HasRoutes)])


def add_commands(cli: click.Group, tools: CommandTools) -> None:
    """Every part's `spotme-hub` commands onto `cli` (and `tools.simulate`)."""
    for module in COMMANDS:
        importlib.import_module(module).register(cli, tools)
    for part in registry.plugins():
        from .contract import HasCommands, has

        if has(part, HasCommands):
            part.commands(cli, tools)  # type: ignore[attr-defined]


def demo_parts() -> list[type]:
    from .contract import HasDemo, has

    return [p for p in parts() if has(p, HasDemo)]


async def run_hub(
    cfg: HubConfig,
    serve_api: bool = True,
    stop: asyncio.Event | None = None,
    on_hub: Callable[[Hub], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Run the hub (devices, store, API, forwarder) until `stop` is set or SIGINT/SIGTERM."""
    import asyncio
    import contextlib
    import os
    import signal

    sock = None
    if serve_api:  # a busy port is said before anything starts
        from .api.app import listen_socket

        sock = listen_socket(cfg.api.listen)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    hub = open_hub(cfg)
    if on_hub is not None:
        on_hub(hub)
    reloads: set[asyncio.Task[None]] = set()  # one at a time; a reference while it runs

    def on_sighup() -> None:
        if not reloads:
            task = asyncio.ensure_future(reload_hub(hub))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    pid_file = cfg.pid_file
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")
    services = [asyncio.create_task(s) for s in start_services(hub, stop, serve_api, sock)]
    if announce is not None:
        announce(
            f"spotme-hub {cfg.hub.id}: {len(cfg.devices)} device(s), store {redact(cfg.database_url)}"
            + (f", API http://{cfg.api.listen}" if serve_api else "")
        )
    try:
        await hub.run_until(stop)
        await asyncio.gather(*services, return_exceptions=True)
    finally:
        with contextlib.suppress(OSError):
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()


async def reload_hub(hub: Hub) -> None:
    """SIGHUP (`spotme-hub reload`): re-read the configuration file and take it while running;
    a file with errors is refused whole, each error logged, and the running configuration
    stays."""
    import asyncio
    import logging

    from .yamlsource import ConfigError

    log = logging.getLogger("spotme_hub.reload")
    try:
        new = await asyncio.to_thread(load_config, hub.cfg.source)
    except ConfigError as exc:
        for issue in exc.issues:
            log.error("reload refused: %s", issue, extra={"event": "reload_refused"})
        log.error("reload refused: %d problem(s) in %s; the running configuration stays",
                  len(exc.issues), hub.cfg.source, extra={"event": "reload_refused"})  # fmt: skip
        return
    done = await hub.reload(new)
    log.warning("reloaded %s: devices added %s, removed %s, changed %s", hub.cfg.source,
                done["added"] or "none", done["removed"] or "none", done["changed"] or "none",
                extra={"event": "reloaded", **done})  # fmt: skip
    if done["restart"]:
        log.warning("not applied until a restart: %s", ", ".join(done["restart"]),
                    extra={"event": "reload_needs_restart"})  # fmt: skip


def start_services(
    hub: Hub, stop: asyncio.Event, serve_api: bool, sock: socket.socket | None = None
) -> Sequence[Coroutine[Any, Any, None]]:
    """Coroutines that run beside the devices: the API (on `sock` when given), the forwarder
    when `core.url` is set, and the attendance days when officers are configured."""
    out: list[Coroutine[Any, Any, None]] = []
    if serve_api:
        from .api.app import serve

        out.append(serve(create_app(hub.cfg, hub.store, hub), hub.cfg.api.listen, stop, sock))
    if hub.cfg.core.url:
        from .contract import HasOutbox, has
        from .forward.forwarder import run_forwarder

        out.append(run_forwarder(hub, stop))
        for part in parts():
            outbox = part.outbox(hub.cfg) if has(part, HasOutbox) else None  # type: ignore[attr-defined]
            if outbox is not None:
                out.append(run_forwarder(hub, stop, outbox))
    if hub.cfg.employees and hub.cfg.attendance.enabled:
        from .attendance.ledger import run_ledger

        out.append(run_ledger(hub, stop))
    return out


def redact(url: str) -> str:
    """A database URL with its password hidden."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url
