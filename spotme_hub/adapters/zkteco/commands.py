"""ZKTeco commands: `spotme-hub simulate zk` (a terminal on the binary protocol) and
`spotme-hub pull DEVICE_ID` (one-shot pull with a progress bar and a summary)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ...contract import CommandTools


def register(cli: click.Group, tools: CommandTools) -> None:
    tools.simulate.add_command(simulate_zk)
    cli.add_command(pull_command(tools))


@click.command("zk")
@click.option("--port", type=int, default=4370, show_default=True, help="0 = any free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--udp", is_flag=True, help="Speak UDP instead of TCP.")
@click.option("--comm-key", type=int, default=0, help="Comm key clients must present.")
@click.option(
    "--record-size",
    type=click.IntRange(8),
    default=40,
    show_default=True,
    help="Attendance record layout: 8, 16, 40 or ≥40 (49 = MB560-VL/SpeedFace).",
)
@click.option("--users", type=int, default=6, show_default=True, help="Users 1..N.")
@click.option(
    "--user-size",
    type=click.Choice(["28", "72"]),
    default=None,
    help="User record size (default 28 for 8/16-byte logs, else 72).",
)
@click.option("--records", type=int, default=0, show_default=True, help="Punches in the log.")
@click.option("--serial", default="SIM0001234567", show_default=True,
              help="Serial number the terminal reports.")  # fmt: skip
@click.option("--clock-offset", type=float, default=0.0, help="Device clock minus real time, s.")
@click.option("--punch-every", type=float, default=None, help="Generate a punch every S seconds.")
@click.option(
    "--drop-mid-transfer", type=int, default=0, help="Cut N transfers half-way (-1 = all)."
)
@click.option("--delay", type=float, default=0.0, help="Delay replies by S seconds ...")
@click.option(
    "--delay-count", type=int, default=-1, show_default=True, help="... N times (-1 = all)."
)
@click.option("--corrupt-checksum", type=int, default=0, help="N data packets with a bad checksum.")
@click.option("--wrong-count", type=int, default=0, help="Add this to the reported record count.")
def simulate_zk(port: int, host: str, udp: bool, comm_key: int, record_size: int, users: int,
                user_size: str | None, records: int, serial: str, clock_offset: float,
                punch_every: float | None, drop_mid_transfer: int, delay: float,
                delay_count: int, corrupt_checksum: int, wrong_count: int) -> None:  # fmt: skip
    """A ZKTeco terminal on the binary protocol (pyzk, ZKAccess and the hub can talk to it)."""
    from .simulator import Faults, ZKSimulator

    faults = Faults(drop_mid_transfer, delay, delay_count if delay else 0, corrupt_checksum,
                    wrong_count)  # fmt: skip
    sim = ZKSimulator(port=port, host=host, udp=udp, comm_key=comm_key, record_size=record_size,
                      users=users, records=records, serial=serial, clock_offset_s=clock_offset,
                      punch_every=punch_every, user_size=int(user_size) if user_size else None,
                      faults=faults)  # fmt: skip
    sim.start()
    click.echo(
        f"ZK terminal {serial} on {'udp' if udp else 'tcp'}://{host}:{sim.port}: {records} records "
        f"of {record_size} bytes, {users} users" + (f", comm key {comm_key}" if comm_key else "")
        + (f", a punch every {punch_every}s" if punch_every else "") + " — Ctrl-C to stop"
    )  # fmt: skip
    seen = sim.record_count
    try:
        while True:
            time.sleep(1)
            if sim.record_count != seen:
                click.echo(f"{sim.record_count} records (enabled={sim.enabled})")
                seen = sim.record_count
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


def pull_command(tools: CommandTools) -> click.Command:
    @click.command()
    @click.argument("device_id")
    @tools.config_option
    def pull(device_id: str, config_path: Path) -> None:
        """Pull a ZKTeco terminal's attendance log once: progress bar, then a summary."""
        _pull_once(tools, device_id, config_path)

    return pull


def _pull_once(tools: CommandTools, device_id: str, config_path: Path) -> None:
    cfg = tools.load_config(config_path)
    try:
        dev = cfg.device(device_id)
    except KeyError:
        raise click.ClickException(f"no device {device_id!r} in {config_path}") from None
    if dev.kind != "zkteco":
        raise click.ClickException(f"{device_id} is a {dev.kind} device; pull is for zkteco")
    from rich.console import Console

    stats = asyncio.run(_pull(tools, cfg, device_id))
    out = Console()
    out.print(
        f"[bold]{device_id}[/bold]: read {stats.read}, new {stats.new}, duplicate "
        f"{stats.duplicate + stats.skipped}, quarantined {stats.quarantined}"
        + (", device log cleared" if stats.cleared else ""),
        highlight=False,
    )


async def _pull(tools: CommandTools, cfg: Any, device_id: str) -> Any:
    """One pull through the hub's own context: same normalisation, commit and checkpoints."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from ...contract import DeviceError
    from .adapter import ZKTecoAdapter

    hub = tools.open_hub(cfg)
    dev = cfg.device(device_id)
    ctx = hub.contexts[device_id]
    hub.writer.start()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                        TimeRemainingColumn(), transient=False)  # fmt: skip
    task = progress.add_task(f"reading {device_id}", total=None)

    def step(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    try:
        with progress:
            stats = await ZKTecoAdapter(dev, dev.options).pull(ctx, step)
    except DeviceError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        await hub.writer.close()
        await asyncio.to_thread(hub.flush_health, True)
    return stats
