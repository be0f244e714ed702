"""`spotme-hub forward status|dead|retry-dead` and `spotme-hub simulate core`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..contract import CommandTools


def register(cli: click.Group, tools: CommandTools) -> None:
    CONFIG_OPTION = tools.config_option  # noqa: N806
    load_config, open_store = tools.load_config, tools.open_store

    @cli.group()
    def forward() -> None:
        """Forwarding to the SPOT-Me core: backlog, dead letters, replay."""

    @forward.command("status")
    @CONFIG_OPTION
    @tools.format_option()
    @click.option("--json", "as_json", is_flag=True, hidden=True, help="The same as --format json.")
    def status(config_path: Path, fmt: str, as_json: bool) -> None:
        """Backlog size and age, delivery counters, dead letters and alert state."""
        from rich.console import Console

        from .outbox import forward_status

        cfg = load_config(config_path)
        st = forward_status(open_store(cfg), cfg)
        if as_json or fmt == "json":
            click.echo(json.dumps(st, indent=2))
            return
        Console().print("\n".join(status_lines(st)), highlight=False, soft_wrap=True)

    @forward.command("dead")
    @CONFIG_OPTION
    @click.option("--all", "show_all", is_flag=True, help="Also delivered (replayed) ones.")
    @click.option("--limit", type=click.IntRange(1), default=100, show_default=True,
                  help="Dead letters at most.")  # fmt: skip
    @tools.format_option()
    @click.option("--json", "as_json", is_flag=True, hidden=True, help="The same as --format json.")
    def dead(config_path: Path, show_all: bool, limit: int, fmt: str, as_json: bool) -> None:
        """List dead letters: records the core refused, with its reason."""
        from rich.console import Console
        from rich.table import Table

        from .outbox import dead_letters

        console = Console()
        cfg = load_config(config_path)
        rows = dead_letters(open_store(cfg), None if show_all else "open", limit)
        if as_json or fmt == "json":
            click.echo(json.dumps(rows, indent=2))
            return
        table = Table("dlid", "seq", "record id", "status", "tries", "reason", "since")
        for r in rows:
            table.add_row(str(r["dlid"]), str(r["seq"]), r["record_id"], r["status"],
                          str(r["attempts"]), r["reason"], r["created_at"])  # fmt: skip
        console.print(table)

    @forward.command("retry-dead")
    @CONFIG_OPTION
    @click.option("--id", "dlids", multiple=True, type=int, help="Only these dead letters.")
    def retry_dead(config_path: Path, dlids: tuple[int, ...]) -> None:
        """Send open dead letters to the core again; those it takes now are marked delivered."""
        from .forwarder import Forwarder

        cfg = load_config(config_path)
        if not cfg.core.url:
            raise click.ClickException(f"{config_path}: core.url is not set")
        fwd = Forwarder(cfg, open_store(cfg))
        result = asyncio.run(fwd.retry_dead(list(dlids) or None))
        click.echo(
            f"sent {result['sent']}: {result['delivered']} delivered, "
            f"{result['rejected']} still rejected"
        )
        if result["rejected"]:
            raise SystemExit(1)

    simulate: Any = tools.simulate

    @simulate.command("core")
    @click.option("--port", type=int, default=8900, show_default=True, help="Port to listen on.")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
    @click.option("--db", default=":memory:", show_default=True, help="SQLite file for records.")
    @click.option("--token", default=None, help="Require this bearer token.")
    @click.option("--path", default="/api/v1/attendance/batch", show_default=True,
                  help="Where batches are posted (core.path).")  # fmt: skip
    @click.option("--error-rate", type=float, default=None, help="Fraction answered 503.")
    @click.option("--latency-ms", type=float, default=None, help="Added to every batch.")
    @click.option("--down-for", type=float, default=None, help="Answer 503 for S seconds.")
    @click.option("--retry-after", type=float, default=None, help="Retry-After on 429/503.")
    @click.option("--reject-ids", multiple=True, help="Reject these record ids.")
    @click.option("--reject-mode", type=click.Choice(["list", "batch"]), default=None,
                  help="Refuse --reject-ids in the answer's list (default) or the whole batch (422).")  # fmt: skip
    def core(port: int, host: str, db: str, token: str | None, path: str,
             error_rate: float | None, latency_ms: float | None, down_for: float | None,
             retry_after: float | None, reject_ids: tuple[str, ...],
             reject_mode: str | None) -> None:  # fmt: skip
        """A reference SPOT-Me core (docs/core-api.md) with failure injection; change failures at
        runtime with POST /admin/settings, read counts at GET /admin/stats."""
        from .core_sim import serve_core

        click.echo(f"reference core on http://{host}:{port}{path} (admin: /admin/stats)", err=True)
        serve_core(
            port, host, db, token, path, error_rate=error_rate, latency_ms=latency_ms,
            down_for=down_for, retry_after=retry_after, reject_ids=list(reject_ids) or None,
            reject_mode=reject_mode,
        )  # fmt: skip


def status_lines(st: dict[str, Any]) -> list[str]:
    """The forwarder's status for a person: what it is doing first, then the numbers."""
    if not st["enabled"]:
        return ["forwarding is off: core.url is not set"]
    state = st["state"]
    lines = [f"to {st['url']}"]
    if state == "retrying":
        lines.append(
            f"state: RETRYING — last error {st['last_error']} (since {st['last_error_at']})"
        )
    elif st.get("recovered_at"):
        lines.append(f"state: {state} (recovered {st['recovered_at']} after an outage from "
                     f"{st['last_error_at']})")  # fmt: skip
    else:
        lines.append(f"state: {state}")
    age = st["oldest_age_s"]
    waiting = f", the oldest waiting {age:.0f} s" if age is not None and st["backlog"] else ""
    lines.append(f"backlog: {st['backlog']:,} record(s){waiting}")
    lines.append(f"delivered: {st['delivered']:,} (accepted {st['accepted']:,}, already there "
                 f"{st['duplicates']:,}) in {st['batches']:,} batch(es), {st['retries']:,} "
                 f"retries; last delivery {st['last_delivery_at'] or 'never'}")  # fmt: skip
    lines.append(f"dead letters: {st['dead_letters']:,} open, "
                 f"{st['dead_letters_delivered']:,} delivered later")  # fmt: skip
    for name, box in (st.get("outboxes") or {}).items():
        lines.append(f"outbox {name}: cursor {box.get('cursor', 0)}, delivered "
                     f"{box.get('delivered', 0):,}, state {box.get('state', 'idle')}")  # fmt: skip
    lines += [f"ALERT {a}" for a in st["alerts"]]
    return lines
