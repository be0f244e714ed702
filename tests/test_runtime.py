"""The runtime: supervision, health transitions, isolation between devices, clean shutdown."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from hub_helpers import wait_until

from spotme_hub import registry
from spotme_hub.contract import DeviceContext, DeviceError, Options, Polling, Streaming
from spotme_hub.pipeline.runtime import Hub
from spotme_hub.record import RawPunch
from spotme_hub.service import open_hub

ROOT = Path(__file__).resolve().parent.parent
ATTEMPTS: dict[str, int] = defaultdict(int)


class FlakyOptions(Options):
    fail_times: int = 0
    crash: bool = False
    concurrent_submits: int = 0


@registry.register
class FlakyAdapter(Streaming):
    """Fails `fail_times` times (unreachable), then answers and submits one punch a run."""

    kind: ClassVar[str] = "test_flaky"
    options_model: ClassVar[type[Options]] = FlakyOptions

    def __init__(self, device: Any, options: FlakyOptions):
        self.device, self.opts = device, options

    async def run(self, ctx: DeviceContext) -> None:
        ATTEMPTS[self.device.id] += 1
        if self.opts.crash:
            raise RuntimeError("driver bug")
        if ATTEMPTS[self.device.id] <= self.opts.fail_times:
            raise DeviceError("unreachable", f"no route to {self.device.id}")
        ctx.mark_up(firmware="flaky-1")
        if self.opts.concurrent_submits:
            from datetime import datetime, timedelta

            t0 = datetime(2026, 2, 1, 8, 0)
            tasks = [
                asyncio.create_task(
                    ctx.submit([RawPunch(device_time=t0 + timedelta(seconds=i), user_id="1")])
                )
                for i in range(self.opts.concurrent_submits)
            ]
            await asyncio.sleep(0)
            ctx.count("enqueued", len(tasks))
            await asyncio.sleep(3600)
        await ctx.sleep(3600)


def hub_for(make_config, *devices: dict[str, Any], **hub: Any) -> Hub:  # type: ignore[no-untyped-def]
    cfg = make_config(
        hub={
            "data_dir": "data",
            "failures_to_down": 2,
            "restart_min_s": 0.01,
            "restart_max_s": 0.05,
            **hub,
        },
        devices=list(devices),
    )
    return open_hub(cfg)


async def test_down_after_failures_then_up(make_config) -> None:  # type: ignore[no-untyped-def]
    hub = hub_for(
        make_config, {"id": "flaky1", "kind": "test_flaky", "office": "hq", "fail_times": 4}
    )
    states: list[str] = []
    await hub.start()
    try:
        h = hub.health["flaky1"]

        def up_again() -> bool:
            if not states or states[-1] != h.state:
                states.append(h.state)
            return h.state == "UP"

        await wait_until(up_again, every=0.001)
    finally:
        await hub.stop()
    assert "DOWN" in states, states
    assert states.index("DOWN") < len(states) - 1 and states[-1] == "UP"
    assert h.consecutive_failures == 0 and h.counters["failures"] == 4
    assert h.last_error == "unreachable: no route to flaky1"
    row = next(r for r in hub.store.health() if r["device_id"] == "flaky1")
    assert row["state"] == "UP" and row["detail"]["firmware"] == "flaky-1"


async def test_crashing_device_does_not_stop_others(make_config) -> None:  # type: ignore[no-untyped-def]
    hub = hub_for(
        make_config,
        {"id": "broken", "kind": "test_flaky", "office": "hq", "crash": True},
        {
            "id": "sim",
            "kind": "simulated",
            "office": "hq",
            "every": 0.01,
            "sequence": True,
            "total": 200,
        },
    )
    await hub.start()
    try:
        await wait_until(lambda: hub.store.count_records() == 200)
        await wait_until(lambda: hub.health["broken"].state == "DOWN")
    finally:
        await hub.stop()
    assert hub.health["sim"].state == "UP"
    assert "RuntimeError: driver bug" in (hub.health["broken"].last_error or "")
    assert ATTEMPTS["broken"] >= 2


async def test_stop_commits_everything_already_submitted(make_config) -> None:  # type: ignore[no-untyped-def]
    hub = hub_for(
        make_config,
        {"id": "burst", "kind": "test_flaky", "office": "hq", "concurrent_submits": 300},
    )
    await hub.start()
    await wait_until(lambda: hub.health["burst"].counters["enqueued"] == 300)
    await hub.stop()
    assert hub.store.count_records() == 300


async def test_running_hub_collects_garbage_less_often_and_restores_it(make_config) -> None:  # type: ignore[no-untyped-def]
    """While the hub runs: young collections every `gc_young_threshold` allocations and the start
    heap frozen; after stop the interpreter's settings are back. 0 leaves them alone."""
    import gc

    before = gc.get_threshold()
    hub = hub_for(make_config, {"id": "off", "kind": "test_flaky", "office": "hq",
                                "enabled": False}, gc_young_threshold=12_345)  # fmt: skip
    await hub.start()
    try:
        assert gc.get_threshold()[0] == 12_345
        assert gc.get_freeze_count() > 0
    finally:
        await hub.stop()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    untouched = hub_for(make_config, {"id": "off", "kind": "test_flaky", "office": "hq",
                                      "enabled": False}, gc_young_threshold=0)  # fmt: skip
    await untouched.start()
    try:
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    finally:
        await untouched.stop()


async def test_disabled_device_is_not_started(make_config) -> None:  # type: ignore[no-untyped-def]
    hub = hub_for(
        make_config, {"id": "off", "kind": "test_flaky", "office": "hq", "enabled": False}
    )
    await hub.start()
    await asyncio.sleep(0.05)
    await hub.stop()
    assert ATTEMPTS["off"] == 0 and hub.health["off"].state == "DISABLED"


def test_third_party_adapter_via_entry_point(tmp_path: Path) -> None:
    """A package that declares `spotme_hub.adapters` adds a device kind without forking."""
    pkg = tmp_path / "acme_reader"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        from typing import ClassVar
        from spotme_hub.contract import Options, Streaming

        class AcmeOptions(Options):
            door: str

        class AcmeAdapter(Streaming):
            kind: ClassVar[str] = "acme"
            options_model: ClassVar[type] = AcmeOptions
            def __init__(self, device, options): ...
            async def run(self, ctx): ...
    """)
    )
    dist = tmp_path / "acme_reader-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-reader\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[spotme_hub.adapters]\nacme = acme_reader:AcmeAdapter\n"
    )
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(
        "offices: [{id: a}]\ndevices:\n  - {id: r1, kind: acme, office: a, door: front}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    ok = subprocess.run([sys.executable, "-m", "spotme_hub.cli", "config", "check", "-c", str(cfg)],
                        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "1 acme" in ok.stdout
    cfg.write_text(
        "offices: [{id: a}]\ndevices:\n  - {id: r1, kind: acme, office: a, dor: front}\n"
    )
    bad = subprocess.run([sys.executable, "-m", "spotme_hub.cli", "config", "check", "-c", str(cfg)],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)  # fmt: skip
    assert bad.returncode != 0
    assert "devices[0].door: required key is missing" in bad.stderr
    assert "devices[0].dor: unknown key" in bad.stderr


class PollOptions(Options):
    poll_every: float = 0.01
    script: list[str] = []  # per poll: "ok", "degraded" or "fail"


SEEN_AT_POLL: dict[str, list[str]] = defaultdict(list)


@registry.register
class ScriptedPoller(Polling):
    """A polling adapter whose polls follow a script (then stay "ok"). At the start of each poll
    it notes the device's health, i.e. what the runtime made of the previous poll."""

    kind: ClassVar[str] = "test_poller"
    options_model: ClassVar[type[Options]] = PollOptions

    def __init__(self, device: Any, options: PollOptions):
        self.device, self.opts = device, options

    async def poll(self, ctx: Any) -> None:
        SEEN_AT_POLL[self.device.id].append(ctx.health.state)
        n = ATTEMPTS[self.device.id]
        ATTEMPTS[self.device.id] += 1
        step = self.opts.script[n] if n < len(self.opts.script) else "ok"
        if step == "fail":
            raise DeviceError("timeout", "no answer in 1s")
        if step == "degraded":
            ctx.mark_degraded("device reports 100 records, read 99", reported=100, read=99)


async def test_polling_health_follows_each_poll(make_config) -> None:  # type: ignore[no-untyped-def]
    script = ["ok", "degraded", "degraded", "fail", "fail", "ok"]
    hub = hub_for(
        make_config, {"id": "p1", "kind": "test_poller", "office": "hq", "script": script}
    )
    await hub.start()
    try:
        await wait_until(lambda: len(SEEN_AT_POLL["p1"]) >= len(script) + 1)
    finally:
        await hub.stop()
    h = hub.health["p1"]
    # after: ok → UP; degraded ×2 → DEGRADED; 1st failure keeps the state; 2nd → DOWN; ok → UP
    assert SEEN_AT_POLL["p1"][1:7] == ["UP", "DEGRADED", "DEGRADED", "DEGRADED", "DOWN", "UP"]
    assert h.counters["failures"] == 2 and h.last_error == "timeout: no answer in 1s"
