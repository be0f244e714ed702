"""`spotme-hub adms ...` (push terminals: commands, reconciliation, unknown serials, users) and
`spotme-hub simulate adms` (a push terminal over HTTP)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.table import Table

    from ...config import Device, HubConfig
    from ...contract import CommandTools


def _table(title: str) -> Table:
    from rich.table import Table

    return Table(title=title)


def _print(table: Table) -> None:
    from rich.console import Console

    Console().print(table)


def _setup(
    tools: CommandTools, config_path: Path, device_id: str | None = None
) -> tuple[HubConfig, Any, Device | None]:
    from .adapter import KIND

    cfg = tools.load_config(config_path)
    device = None
    if device_id is not None:
        try:
            device = cfg.device(device_id)
        except KeyError:
            raise click.ClickException(f"no device {device_id!r} in {config_path}") from None
        if device.kind != KIND:
            raise click.ClickException(f"device {device_id!r} is kind {device.kind}, not {KIND}")
    return cfg, tools.open_store(cfg), device


def _queue(tools: CommandTools, config_path: Path, device_id: str, kind: str, start: str | None, end: str | None,
           hours: float | None) -> None:  # fmt: skip
    from . import db

    cfg, store, device = _setup(tools, config_path, device_id)
    assert device is not None
    try:
        window: tuple[str | None, str | None] = (None, None)
        if kind != "info":
            tz = device.zone
            window = db.resolve_window(tz, start, end, hours, device.options.verify_window_h)
        row = db.enqueue(store, device.id, kind, *window)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"queued {row['cmd_id']} for {device.id}: {row['command']!r} (sent at the next poll)"
    )


def register(cli: click.Group, tools: CommandTools) -> None:
    CONFIG_OPTION = tools.config_option  # noqa: N806

    @cli.group()
    def adms() -> None:
        """ZKTeco push (ADMS) terminals: backfill, reconcile, unknown serial numbers."""

    window_options = [
        click.option("--start", help="Device-local start, 'YYYY-MM-DD HH:MM:SS'."),
        click.option("--end", help="Device-local end (inclusive), 'YYYY-MM-DD HH:MM:SS'."),
        click.option("--hours", type=float, help="Instead of --start/--end: the last N hours."),
    ]

    def with_window(fn: Any) -> Any:
        for opt in reversed(window_options):
            fn = opt(fn)
        return fn

    @adms.command("backfill")
    @CONFIG_OPTION
    @click.argument("device_id")
    @with_window
    def backfill(config_path: Path, device_id: str, start: str | None, end: str | None,
                 hours: float | None) -> None:  # fmt: skip
        """Ask a terminal to re-send its punches of a time range (DATA QUERY ATTLOG)."""
        _queue(tools, config_path, device_id, "backfill", start, end, hours)

    @adms.command("verify")
    @CONFIG_OPTION
    @click.argument("device_id")
    @with_window
    def verify(config_path: Path, device_id: str, start: str | None, end: str | None,
               hours: float | None) -> None:  # fmt: skip
        """Reconcile: ask a terminal how many punches it holds in a range (VERIFY SUM ATTLOG)
        and compare with the hub's records; a mismatch marks it DEGRADED and queues a backfill."""
        _queue(tools, config_path, device_id, "verify", start, end, hours)

    @adms.command("info")
    @CONFIG_OPTION
    @click.argument("device_id")
    def info(config_path: Path, device_id: str) -> None:
        """Ask a terminal for its INFO (firmware, counts); shown in device health."""
        _queue(tools, config_path, device_id, "info", None, None, None)

    @adms.command("commands")
    @CONFIG_OPTION
    @click.argument("device_id", required=False)
    @click.option("--status", type=click.Choice(["queued", "sent", "done", "failed", "expired"]),
                  help="Only commands in this state.")  # fmt: skip
    @click.option("--limit", type=click.IntRange(1), default=50, show_default=True,
                  help="Commands at most (the newest).")  # fmt: skip
    @tools.format_option()
    def commands(
        config_path: Path, device_id: str | None, status: str | None, limit: int, fmt: str
    ) -> None:
        """Queued and answered commands with their results and reconciliation verdicts."""
        from . import db

        _cfg, store, _device = _setup(tools, config_path, device_id)
        rows = db.commands(store, device_id, status, limit)
        if fmt == "json":
            for r in rows:
                click.echo(json.dumps(r, ensure_ascii=False))
            return
        t = _table(f"{len(rows)} command(s)")
        for col in ("id", "device", "command", "origin", "status", "return", "verdict"):
            t.add_column(col)
        for r in rows:
            t.add_row(r["cmd_id"], r["device_id"], r["command"].replace("\t", " "), r["origin"],
                      r["status"], "" if r["return_code"] is None else str(r["return_code"]),
                      r["verdict"] or "")  # fmt: skip
        _print(t)

    @adms.command("pending")
    @CONFIG_OPTION
    @tools.format_option()
    def pending(config_path: Path, fmt: str) -> None:
        """Terminals that called with an unknown serial number (refused until you add them)."""
        from . import db
        from .adapter import KIND

        _cfg, store, _device = _setup(tools, config_path)
        rows = db.pending(store)
        if fmt == "json":
            for r in rows:
                click.echo(json.dumps(r, ensure_ascii=False))
            return
        t = _table(f"{len(rows)} unknown terminal(s) — add them as kind: {KIND}, serial: <SN>")
        for col in ("serial", "first seen", "last seen", "requests", "from", "detail"):
            t.add_column(col)
        for r in rows:
            t.add_row(r["serial"], r["first_seen"], r["last_seen"], str(r["requests"]),
                      r["remote"] or "", json.dumps(r["detail"])[:60])  # fmt: skip
        _print(t)

    @adms.command("users")
    @CONFIG_OPTION
    @click.argument("device_id")
    def users(config_path: Path, device_id: str) -> None:
        """A terminal's user directory (PIN, name, card) from its OPERLOG uploads."""
        from . import db

        _cfg, store, device = _setup(tools, config_path, device_id)
        t = _table(f"users on {device_id}")
        for col in ("PIN", "name", "card", "privilege", "updated"):
            t.add_column(col)
        for u in db.users(store, device_id):
            t.add_row(
                u["pin"], u["name"] or "", u["card"] or "", u["privilege"] or "", u["updated_at"]
            )
        _print(t)

    simulate = tools.simulate

    @simulate.command("adms")
    @click.option("--url", required=True, help="Hub base URL, e.g. http://127.0.0.1:8080")
    @click.option("--sn", required=True, help="Serial number the terminal reports.")
    @click.option("--records", type=int, default=10, show_default=True, help="Punches to post.")
    @click.option("--gps", is_flag=True, help="Extended lines with GPS ExtendData and TimeOffset.")
    @click.option(
        "--lat", type=float, default=2.9264, show_default=True, help="GPS centre latitude."
    )
    @click.option(
        "--lon", type=float, default=101.6964, show_default=True, help="GPS centre longitude."
    )
    @click.option(
        "--radius-m", type=float, default=300, show_default=True, help="GPS scatter radius."
    )
    @click.option("--users", default="1,2,3,4", show_default=True, help="PINs, comma-separated.")
    @click.option("--withhold", type=int, default=0, help="Keep N punches back (a lost post).")
    @click.option(
        "--polls", type=int, default=3, show_default=True, help="Command polls after posting."
    )
    @click.option(
        "--delay", type=float, default=None, help="Seconds between polls (default: Delay=)."
    )
    @click.option(
        "--every", type=float, default=None, help="With --forever: a new punch every N s."
    )
    @click.option("--forever", is_flag=True, help="Keep punching and polling until Ctrl-C.")
    def simulate_adms(url: str, sn: str, records: int, gps: bool, lat: float, lon: float,
                      radius_m: float, users: str, withhold: int, polls: int, delay: float | None,
                      every: float | None, forever: bool) -> None:  # fmt: skip
        """A ZKTeco push terminal: handshake, punches (optionally with GPS), command polls."""
        from .simulator import PushTerminal

        async def main() -> None:
            term = PushTerminal(url, sn, gps=gps, center=(lat, lon), radius_m=radius_m,
                                users=[u.strip() for u in users.split(",") if u.strip()],
                                log=click.echo)  # fmt: skip
            try:
                await term.run(records, withhold=withhold, polls=polls, every=every, delay=delay,
                               forever=forever)  # fmt: skip
            finally:
                await term.close()
            click.echo(f"{sn}: " + ", ".join(f"{k}={v}" for k, v in sorted(term.stats.items())))

        asyncio.run(main())
