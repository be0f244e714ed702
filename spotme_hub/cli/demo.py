"""`spotme-hub demo`: a whole hub on one machine with nothing external.

`demo.yaml` (beside this module, in the package) describes the estate; each part's demo part (`HasDemo`: the device kinds'
`adapters/<kind>/demo.py`, forwarding's `forward/demo.py`) starts the simulator it points at. The
screen shows devices and punches as they commit, and today's attendance per office from the stored
days (what the dashboard's Today panel shows); the last line says where today stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import socket
import tempfile
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from ..attendance.ledger import DayLedger, today, today_summary
from ..config import HubConfig
from ..contract import BulkCounts
from ..record import Record
from ..service import demo_parts, load_config, run_hub
from ..store import CommitResult

DEMO_CONFIG = Path(__file__).resolve().with_name("demo.yaml")  # shipped in the package


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    def __init__(self, data_dir: Path, port: int):
        self.data_dir = data_dir
        self.port = port
        self.env: dict[str, str] = {"DEMO_DATA_DIR": str(data_dir), "DEMO_API_PORT": str(port)}
        self.hub: Any = None
        self.cfg: HubConfig | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.notes: list[str] = []
        self.started = asyncio.Event()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.tasks.append(asyncio.create_task(coro))

    def note(self, text: str) -> None:
        """A line shown under the live view (e.g. what a simulator is doing)."""
        self.notes.append(text)

    free_port = staticmethod(free_port)


def today_line(date: dt.date, rows: Sequence[dict[str, Any]]) -> str:
    """One line for today's counts per office (`today_summary`'s rows): `today 2026-12-07: pjy-hq
    12 officers, 10 present (2 late), 2 not yet in; …`."""
    if not rows:
        return f"today {date.isoformat()}: no days stored"
    parts = []
    for r in rows:
        text = (
            f"{r['office_id']} {r['officers']} officers, {r['present']} present ({r['late']} late)"
        )
        for key, label in TODAY_LABELS:
            if r[key]:
                text += f", {r[key]} {label}"
        parts.append(text)
    return f"today {date.isoformat()}: " + "; ".join(parts)


TODAY_LABELS = (
    ("not_yet_in", "not yet in"), ("bdr", "on BDR"), ("leave", "on leave"), ("absent", "absent"),
    ("off", "off"),
)  # fmt: skip


def _today(cfg: HubConfig, hub: Any, settle: bool = False) -> tuple[dt.date, list[dict[str, Any]]]:
    """Today's counts per office from the stored days; `settle`: one more pass of the ledger
    first (the hub has stopped, its last commits may not have been worked out yet)."""
    if settle and cfg.employees and cfg.attendance.enabled:
        DayLedger(cfg, hub.store).step()
    date = today(cfg)
    return date, today_summary(cfg, hub.store, date, None)


async def run_demo(
    duration: float = 0, port: int = 8080, data_dir: Path | None = None, keep: bool = False
) -> None:
    """The demo; with `keep`, `data_dir` keeps its store and a configuration the CLI can read
    (`hub.yaml`, the demo's own with its simulators' addresses written in)."""
    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="spotme-demo-")
        data_dir = Path(tmp.name)
    data_dir.mkdir(parents=True, exist_ok=True)
    demo = Demo(data_dir, port)
    console = Console()
    recent: deque[Record] = deque(maxlen=12)
    totals = {"new": 0, "duplicate": 0}

    def on_commit(records: Sequence[Record], result: CommitResult | BulkCounts) -> None:
        if isinstance(result, BulkCounts):  # a file's chunk: counted, not listed
            totals["new"] += result.new
            totals["duplicate"] += result.duplicate
            return
        new = set(result.new)
        totals["new"] += len(result.new)
        totals["duplicate"] += len(result.duplicate)
        for r in records:
            if r.id in new:
                recent.append(r)

    async with contextlib.AsyncExitStack() as stack:
        for part in demo_parts():
            await stack.enter_async_context(part.demo_part(demo))  # type: ignore[attr-defined]
        saved = {k: os.environ.get(k) for k in demo.env}
        os.environ.update(demo.env)
        try:
            cfg = load_config(DEMO_CONFIG)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        demo.cfg = cfg
        if keep:
            _keep_config(data_dir / "hub.yaml", demo.env)
        stop = asyncio.Event()
        hub_task = asyncio.create_task(
            run_hub(cfg, serve_api=True, stop=stop, on_hub=lambda h: _attach(demo, h, on_commit))
        )
        await demo.started.wait()
        console.print(
            f"[bold]spotme-hub demo[/bold] — dashboard and API at [link]http://127.0.0.1:{port}/[/link] "
            f"(data in {data_dir}); Ctrl-C to stop"
        )
        started = time.monotonic()
        today: list[dict[str, Any]] = []
        try:
            with Live(console=console, refresh_per_second=2, transient=False) as live:
                while not hub_task.done():
                    with contextlib.suppress(Exception):  # the view waits for the store, not fails
                        _, today = await asyncio.to_thread(_today, cfg, demo.hub)
                    live.update(_view(demo, recent, totals, today))
                    if duration and time.monotonic() - started >= duration:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(hub_task), timeout=1.0)
                live.update(_view(demo, recent, totals, today))
        finally:
            stop.set()
            for t in demo.tasks:
                t.cancel()
            await asyncio.gather(*demo.tasks, return_exceptions=True)
            await hub_task
    console.print(
        f"demo stopped: {totals['new']} punches committed, {totals['duplicate']} duplicates ignored"
    )
    if demo.hub is not None:
        date, today = await asyncio.to_thread(_today, cfg, demo.hub, True)
        console.print(today_line(date, today), soft_wrap=True)
    if keep:
        kept = data_dir / "hub.yaml"
        console.print(
            f"kept in {data_dir}: look with `spotme-hub records -c {kept}` (and devices, "
            "quarantine list, days, report monthly; the simulators are gone, so `run` would not "
            "find its devices)", highlight=False, soft_wrap=True,
        )  # fmt: skip
    if tmp is not None:
        tmp.cleanup()


def _keep_config(path: Path, env: dict[str, str]) -> None:
    """demo.yaml with the demo's `${DEMO_…}` values written in, so the CLI reads the
    kept store without the demo's environment."""

    def value(m: re.Match[str]) -> str:
        return env.get(m.group(1), m.group(0))

    text = re.sub(r"\$\{(DEMO_[A-Z_]+)(?::-[^}]*)?\}", value, DEMO_CONFIG.read_text())
    path.write_text(
        f"# the spotme-hub demo's configuration as it ran ({dt.datetime.now():%Y-%m-%d %H:%M}), kept\n"
        + text, encoding="utf-8",
    )  # fmt: skip


def _attach(demo: Demo, hub: Any, on_commit: Any) -> None:
    demo.hub = hub
    hub.commit_listeners.append(on_commit)
    demo.started.set()


def _view(
    demo: Demo, recent: deque[Record], totals: dict[str, int], today: Sequence[dict[str, Any]] = ()
) -> Group:
    hub = demo.hub
    devices = Table(title="devices", expand=True)
    for col in ("device", "kind", "state", "new", "dup", "quarantined", "last error"):
        devices.add_column(col)
    colors = {"UP": "green", "DOWN": "red", "DEGRADED": "yellow"}
    if hub is not None:
        for h in hub.health.values():
            c = colors.get(h.state, "white")
            devices.add_row(
                h.device_id, h.kind, f"[{c}]{h.state}[/{c}]", str(h.counters.get("new", 0)),
                str(h.counters.get("duplicate", 0)), str(h.counters.get("quarantined", 0)),
                (h.last_error or "")[:50],
            )  # fmt: skip
    punches = Table(title=f"recent punches ({totals['new']} committed)", expand=True)
    for col in (
        "local time",
        "employee",
        "user/card",
        "punch",
        "verify",
        "device",
        "where",
        "flags",
    ):
        punches.add_column(col)
    for r in reversed(recent):
        where = r.location_source or ""
        if r.distance_m is not None and r.location_source != "office":
            where += f" {r.distance_m:.0f} m"
        punches.add_row(
            r.local_time[11:19], r.employee_id or "—", r.source_user_id or r.card or "", r.punch,
            r.verify, r.device_id, where, ",".join(r.flags),
        )  # fmt: skip
    parts: list[Any] = [devices, punches]
    if today:
        board = Table(title="today (stored days; the dashboard's Today panel)", expand=True)
        columns = ("officers", "present", "late", "not_yet_in", "bdr", "leave", "absent", "off")
        board.add_column("office", no_wrap=True)
        for head in ("officers", "present", "late", "not in", "BDR", "leave", "absent", "off"):
            board.add_column(head, justify="right")
        for row in today:
            board.add_row(row["office_id"], *(str(row[c]) for c in columns))
        parts.insert(1, board)
    if demo.notes:
        parts.append(Panel("\n".join(demo.notes[-6:]), title="simulators"))
    return Group(*parts)
