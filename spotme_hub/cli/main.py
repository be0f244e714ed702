"""The `spotme-hub` command line.

Core commands live here; every part (device kinds, forwarding, days) adds its own through the
composition root (`service.add_commands`), handed the shared tools (`CommandTools`), so the CLI
grows without this module knowing any kind.

A command pays only for what it uses: this module imports click and nothing of the hub at the
top; the parts' commands load when one of them is asked for or the commands are listed, and each
command imports the store, the API or a kind's libraries when it runs (`tests/test_startup.py`
keeps the list).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .init import DEVICES as STARTER_DEVICES

if TYPE_CHECKING:
    from ..config import HubConfig
    from ..pipeline.runtime import Hub
    from ..store import Store

CONFIG_OPTION = click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    default="spotme-hub.yaml", show_default=True, envvar="SPOTME_HUB_CONFIG",
    help="Hub configuration file (YAML).",
)  # fmt: skip


_FORMATS = {
    "table": "table: for reading, fitted to the terminal",
    "json": "json: for programs (one JSON object per line, or one document)",
    "csv": "csv: a header, then one row each",
    "xlsx": "xlsx: an Excel workbook",
}


def format_option(*choices: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--format` on every command that prints data (the contract's `CommandTools`)."""
    choices = choices or ("table", "json")
    return click.option(
        "--format", "fmt", type=click.Choice(choices), default=choices[0], show_default=True,
        help="; ".join(_FORMATS[c] for c in choices) + ".",
    )  # fmt: skip


class PartsGroup(click.Group):
    """A group whose commands the parts also add to: loads them (once, for the whole CLI) when
    asked for a command it does not have of its own, or for the list."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and _add_part_commands():
            cmd = super().get_command(ctx, cmd_name)
        return cmd

    def list_commands(self, ctx: click.Context) -> list[str]:
        _add_part_commands()
        return super().list_commands(ctx)


class HubGroup(PartsGroup):
    """Turns known errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as exc:
            from ..yamlsource import ConfigError

            if isinstance(exc, ConfigError):
                for issue in exc.issues:
                    click.echo(f"{click.style('error', fg='red')} {issue}", err=True)
                click.echo(f"{len(exc.issues)} problem(s) in the configuration", err=True)
                sys.exit(2)
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            click.echo(f"{click.style('error:', fg='red')} {type(exc).__name__}: {exc}", err=True)
            sys.exit(1)


@click.group(cls=HubGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug and tracebacks).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="text for people, json for a log collector (one object per event, with its "
              "device, kind and record counts); default: hub.log_format, else text.")  # fmt: skip
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the log here, rotated (hub.log_file_max_mb, hub.log_file_backups); "
              "default: hub.log_file, else stderr.")  # fmt: skip
@click.version_option(package_name="spotme-hub")
@click.pass_context
def cli(ctx: click.Context, verbose: int, log_format: str | None, log_file: Path | None) -> None:
    """spotme-hub: collect punches from time clocks, card readers, MQTT door devices and HR
    exports, normalise them into one attendance record, store them durably and forward them to
    SPOT-Me."""
    from .logs import setup

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    ctx.obj = {"log_level": level, "log_format": log_format, "log_file": log_file}
    setup(level, log_format or "text", log_file)


def _log_as_configured(cfg: HubConfig) -> None:
    """The configuration's log settings, where the command line did not choose (`run`)."""
    from .logs import setup

    given = click.get_current_context().find_root().obj or {}
    hub = cfg.hub
    file = given.get("log_file") or (cfg.resolve_path(hub.log_file) if hub.log_file else None)
    fmt = given.get("log_format") or hub.log_format
    level = given.get("log_level", logging.WARNING)
    if given.get("log_level") == logging.WARNING and hub.log_level:
        level = logging.getLevelName(hub.log_level.upper())
    setup(level, fmt, file, hub.log_file_max_mb, hub.log_file_backups)


# --- run --------------------------------------------------------------------------------------


@cli.command()
@CONFIG_OPTION
@click.option("--no-api", is_flag=True, help="Do not serve the HTTP API.")
def run(config_path: Path, no_api: bool) -> None:
    """Run the hub: every configured device, the store and the API, until SIGINT/SIGTERM."""
    import asyncio

    from ..service import load_config, run_hub

    cfg = load_config(config_path)
    _log_as_configured(cfg)
    announce = functools.partial(click.echo, err=True)
    try:
        asyncio.run(run_hub(cfg, serve_api=cfg.api.enabled and not no_api, announce=announce))
    except Exception as exc:
        from ..api.app import ListenError  # (the API's modules load only when it serves)

        if isinstance(exc, ListenError):
            raise click.ClickException(str(exc)) from None
        raise


@cli.command()
@CONFIG_OPTION
def reload(config_path: Path) -> None:
    """Make the running hub re-read its configuration (it also does on SIGHUP): devices added,
    removed or changed are started or stopped without touching the others; officers and
    offices are replaced. The file is checked first: with errors, nothing is sent."""
    import os
    import signal

    from ..service import load_config

    cfg = load_config(config_path)  # a file with errors stops here (exit 2): the hub keeps its own
    pid = _running_hub(cfg)
    if pid is None:
        raise click.ClickException(
            f"no running hub for {config_path} (no live process in {cfg.pid_file})"
        )
    os.kill(pid, signal.SIGHUP)
    click.echo(f"asked the hub (pid {pid}) to reload {config_path}; its log says what changed")


# --- init -----------------------------------------------------------------------------------


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--kind", "kinds", multiple=True,
              type=click.Choice(list(STARTER_DEVICES)),
              help="A device of this kind in the starter configuration (repeat for more).")  # fmt: skip
@click.option("--office", default="hq", show_default=True, help="The office's id.")
@click.option("--state", default="PJY", show_default=True,
              help="The office's state code (JHR, KDH, KTN, ..., PJY, SGR, SWK, WPKL...).")  # fmt: skip
@click.option("--hub-id", default="spotme-hub", show_default=True,
              help="How this hub names itself to the core.")  # fmt: skip
def init(directory: Path, kinds: tuple[str, ...], office: str, state: str, hub_id: str) -> None:
    """Write a commented starter configuration (one office, a device of each --kind) and an env
    file for its secrets in DIRECTORY, then say what to do next."""
    from .init import write_starter

    try:
        config, env = write_starter(directory, list(kinds), office, state, hub_id)
    except FileExistsError as exc:
        raise click.UsageError(f"{exc} exists: init writes only new files") from None
    click.echo(f"wrote {config} and {env} (secrets; readable by you only). Next:")
    click.echo(f"  1. edit {config}: the devices' addresses, the office, the core URL")
    click.echo(f"  2. put the secrets in {env}")
    click.echo(f"  3. set -a; . {env}; set +a")
    click.echo(f"  4. spotme-hub config check -c {config}")
    click.echo(f"  5. spotme-hub run -c {config}   (as a service: docs/deploy.md)")


# --- backup / restore -------------------------------------------------------------------------


def _running_hub(cfg: HubConfig) -> int | None:
    """The pid of a live hub on this configuration's data (its `hub.pid`), or None."""
    import os

    try:
        pid = int(cfg.pid_file.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _sqlite_path(cfg: HubConfig, verb: str) -> Path:
    """The store's SQLite file; on PostgreSQL the line to run instead (exit 2)."""
    from ..service import redact

    url = cfg.database_url
    if not url.startswith("sqlite"):
        plain = redact(url).replace("postgresql+psycopg://", "postgresql://")
        tool = {
            "backup": "pg_dump --format=custom --file DEST",
            "restore": "pg_restore --clean --dbname",
        }[verb]
        raise click.UsageError(
            f"the store is PostgreSQL: {verb} it with its own tools, e.g.\n  {tool} '{plain}'"
            + (" SRC" if verb == "restore" else "")
        )
    from sqlalchemy.engine import make_url

    return Path(make_url(url).database or "")


@cli.command()
@CONFIG_OPTION
@click.argument("dest", type=click.Path(path_type=Path))
def backup(config_path: Path, dest: Path) -> None:
    """A consistent copy of the store (SQLite's online backup: records, quarantine,
    checkpoints and the forward cursor as of one commit), while the hub runs. DEST: a file, or a
    directory for a dated one."""
    from ..forward.outbox import SCOPE
    from ..service import load_config
    from ..store.backup import backup as take

    cfg = load_config(config_path)
    db = _sqlite_path(cfg, "backup")
    if not db.exists():
        raise click.ClickException(f"no store at {db}")
    copy = take(db, dest, (SCOPE, "cursor"))
    click.echo(f"{copy.path}: {copy.bytes / 1e6:,.1f} MB, records up to seq {copy.last_seq:,}, "
               f"forward cursor {copy.cursor:,}")  # fmt: skip


@cli.command()
@CONFIG_OPTION
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore(config_path: Path, src: Path) -> None:
    """Put a copy made by `backup` in place of the store (never while a hub runs on it); the
    store it replaces is kept beside it. The forwarder then resends what came after the copy's
    cursor, and the core keeps each record once."""
    from ..forward.outbox import SCOPE
    from ..service import load_config
    from ..store.backup import NotAStore
    from ..store.backup import restore as put

    cfg = load_config(config_path)
    db = _sqlite_path(cfg, "restore")
    pid = _running_hub(cfg)
    if pid is not None:
        raise click.ClickException(f"a hub (pid {pid}) is running on {db}: stop it first")
    try:
        copy, kept = put(src, db, (SCOPE, "cursor"))
    except NotAStore as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {src} to {db}: records up to seq {copy.last_seq:,}, forward cursor "
               f"{copy.cursor:,}" + (f"; the store it replaced is {kept}" if kept else ""))  # fmt: skip


# --- config -----------------------------------------------------------------------------------


@cli.group()
def config() -> None:
    """Check a configuration file or print its JSON Schema."""


@config.command("check")
@CONFIG_OPTION
def config_check(config_path: Path) -> None:
    """Validate a configuration: every error with file, line and field; exit 0 when valid."""
    from ..service import load_config

    cfg = load_config(config_path)
    kinds: dict[str, int] = {}
    for d in cfg.devices:
        kinds[d.kind] = kinds.get(d.kind, 0) + 1
    per_kind = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no devices"
    click.echo(
        f"{config_path}: OK — {len(cfg.offices)} office(s), {len(cfg.devices)} device(s) "
        f"({per_kind}), {len(cfg.employees)} employee(s)"
    )


@config.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the configuration (for editors)."""
    from ..service import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


# --- records / devices / quarantine -----------------------------------------------------------


def _time_bound(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A --since/--until as the API reads one; anything else is a usage error (exit 2)."""
    if value is None:
        return None
    from ..clock import DEFAULT_TZ, utc_bound

    try:
        return utc_bound(value, date_zone=DEFAULT_TZ)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@CONFIG_OPTION
@click.option("--office", help="Only this office's records (its id).")
@click.option("--employee", help="Only this officer's records (the employee id).")
@click.option("--device", help="Only this device's records (its id).")
@click.option("--since", callback=_time_bound, metavar="TIME",
              help="occurred_at >= this: RFC 3339 with an offset or Z (2026-12-07T05:00:00+08:00), "
              "or a date (its midnight, Malaysian time)")  # fmt: skip
@click.option(
    "--until", callback=_time_bound, metavar="TIME", help="occurred_at < this (as --since)"
)
@click.option("--flag", help="only records with this flag (e.g. unmapped_employee)")
@click.option("--limit", type=int, default=50, show_default=True, help="0 = all")
@format_option("table", "json", "csv")
def records(
    config_path: Path, office: str | None, employee: str | None, device: str | None,
    since: str | None, until: str | None, flag: str | None, limit: int, fmt: str,
) -> None:  # fmt: skip
    """Query the local store (newest last)."""
    from ..service import load_config, open_store
    from ..store import RecordFilter

    cfg = load_config(config_path)
    store = open_store(cfg)
    flt = RecordFilter(office, employee, device, since, until, flag)
    rows = store.last_records(limit, flt) if limit else list(store.iter_records(flt))
    if fmt == "json":
        for r in rows:
            click.echo(json.dumps(r, ensure_ascii=False))
    elif fmt == "csv":
        import csv

        if rows:
            w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                w.writerow(
                    {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in r.items()}
                )
    else:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        wide = console.width >= 100
        t = Table(title=f"{len(rows)} record(s)")
        t.add_column("when", no_wrap=True)
        for col in ("who", "punch", "how", "device", *(["office"] if wide else [])):
            t.add_column(col, overflow="fold")
        t.add_column("flags", overflow="fold")
        for r in rows:
            who = f"{r['employee_id'] or '—'} ({r['source_user_id'] or r['card'] or '?'})"
            t.add_row(
                r["local_time"][:19].replace("T", " "), who, r["punch"], r["verify"],
                r["device_id"], *([r["office_id"]] if wide else []), ", ".join(r["flags"]),
            )  # fmt: skip
        console.print(t)


@cli.command()
@CONFIG_OPTION
@format_option()
def devices(config_path: Path, fmt: str) -> None:
    """Device health: state, last seen, last error, counters."""
    from ..service import load_config, open_store

    cfg = load_config(config_path)
    store = open_store(cfg)
    rows = {h["device_id"]: h for h in store.health()}
    out = []
    for d in cfg.devices:
        h = rows.get(d.id) or {"state": "UNKNOWN" if d.enabled else "DISABLED", "counters": {}}
        out.append({"device_id": d.id, "kind": d.kind, "office": d.office, **h})
    if fmt == "json":
        click.echo(json.dumps(out, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    colors = {"UP": "green", "DOWN": "red", "DEGRADED": "yellow"}
    t = Table(title="devices")
    for col in (
        "device",
        "kind",
        "office",
        "state",
        "last seen",
        "new",
        "dup",
        "quar.",
        "last error",
    ):
        t.add_column(col)
    for h in out:
        c = h.get("counters") or {}
        color = colors.get(h["state"], "white")
        state = h["state"]
        if state == "STARTING" and (h.get("detail") or {}).get("starting"):
            state = f"STARTING ({h['detail']['starting']})"
        t.add_row(
            h["device_id"], h["kind"], h["office"], f"[{color}]{state}[/{color}]",
            h.get("last_seen") or "never", str(c.get("new", 0)), str(c.get("duplicate", 0)),
            str(c.get("quarantined", 0)), h.get("last_error") or "",
        )  # fmt: skip
    from ..pipeline.disk import disk_line, disk_status

    console = Console()
    console.print(t)
    console.print(disk_line(disk_status(cfg, store)), highlight=False, soft_wrap=True)


@cli.group()
def quarantine() -> None:
    """Inputs that could not become records: list them, replay them after a fix."""


@quarantine.command("list")
@CONFIG_OPTION
@click.option(
    "--status",
    type=click.Choice(["open", "replayed", "discarded", "all"]),
    default="open",
    show_default=True,
    help="Which items: still open, replayed into records, discarded, or all.",
)
@click.option("--device", help="Only this device's items.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True,
              help="Items at most (the newest).")  # fmt: skip
@format_option()
def quarantine_list(
    config_path: Path, status: str, device: str | None, limit: int, fmt: str
) -> None:
    """List quarantined inputs with their source and reason."""
    from ..service import load_config, open_store

    cfg = load_config(config_path)
    store = open_store(cfg)
    items = store.quarantine_items(None if status == "all" else status, limit, device)
    if fmt == "json":
        for it in items:
            click.echo(json.dumps(it, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    from ..store import source_text

    t = Table(title=f"{len(items)} quarantined item(s)")
    t.add_column("id", no_wrap=True)
    t.add_column("when (UTC)", no_wrap=True)
    for col in ("device", "from", "reason", "status"):
        t.add_column(col, overflow="fold")
    for it in items:
        t.add_row(str(it["qid"]), it["created_at"][:16].replace("T", " "), it["device_id"] or "",
                  source_text(it["source"]), it["reason"], it["status"])  # fmt: skip
    Console().print(t)


@quarantine.command("replay")
@CONFIG_OPTION
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True, help="Replay every open item.")
def quarantine_replay(config_path: Path, ids: tuple[int, ...], replay_all: bool) -> None:
    """Re-process quarantined inputs with the current configuration."""
    from ..pipeline.replay import replay_item
    from ..service import load_config, open_store

    cfg = load_config(config_path)
    store = open_store(cfg)
    if not ids and not replay_all:
        raise click.UsageError("give item ids or --all")
    items = store.quarantine_items("open", 1_000_000)
    if not replay_all:
        wanted = set(ids)
        items = [it for it in items if it["qid"] in wanted]
        missing = wanted - {it["qid"] for it in items}
        if missing:
            raise click.ClickException(f"not open in quarantine: {sorted(missing)}")
    done = 0
    for it in items:
        outcome = replay_item(cfg, store, it)
        done += outcome.status == "replayed"
        click.echo(f"#{outcome.qid}: {outcome.status} — {outcome.detail}")
    click.echo(f"{done} of {len(items)} replayed")
    if done < len(items):
        sys.exit(1)


# --- demo -------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--duration", type=float, default=0, help="Stop after this many seconds (0 = Ctrl-C)."
)
@click.option("--port", type=int, default=8080, show_default=True, help="API/dashboard port.")
@click.option("--keep", "keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the demo's store here, with a hub.yaml the other commands can read "
              "(default: a temporary directory, deleted at the end).")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              hidden=True, help="The same as --keep (its older name).")  # fmt: skip
def demo(duration: float, port: int, keep: Path | None, data_dir: Path | None) -> None:
    """Run a self-contained demo: simulated devices, embedded SQLite, the API — nothing external."""
    import asyncio

    from ..api.app import ListenError, listen_socket
    from .demo import run_demo

    try:
        listen_socket(f"127.0.0.1:{port}").close()  # before any simulator starts
        kept = keep or data_dir
        asyncio.run(run_demo(duration=duration, port=port, data_dir=kept, keep=kept is not None))
    except ListenError as exc:
        raise click.ClickException(str(exc)) from None


@cli.group(cls=PartsGroup)
def simulate() -> None:
    """Simulators for rehearsal and tests (terminals, readers, the SPOT-Me core...)."""


# --- the parts' commands ----------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    """The CLI's `contract.CommandTools`: the hub's pieces, each imported when first used."""

    config_option: Callable[[Callable[..., Any]], Callable[..., Any]]
    simulate: click.Group

    def format_option(self, *choices: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return format_option(*choices)

    def load_config(self, path: str | Path) -> HubConfig:
        from ..service import load_config

        return load_config(path)

    def open_store(self, cfg: HubConfig) -> Store:
        from ..service import open_store

        return open_store(cfg)

    def open_hub(self, cfg: HubConfig) -> Hub:
        from ..service import open_hub

        return open_hub(cfg)


_parts_added = False


def _add_part_commands() -> bool:
    """Add the parts' commands, once; False when they were already there."""
    global _parts_added
    if _parts_added:
        return False
    _parts_added = True
    from ..service import add_commands

    add_commands(cli, Tools(CONFIG_OPTION, simulate))
    return True


def main() -> None:
    cli(prog_name="spotme-hub")


if __name__ == "__main__":
    main()
