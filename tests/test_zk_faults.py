"""Injected terminal faults: a clear error, DOWN after N failures, recovery, and never partial
or duplicate data; the terminal is always re-enabled; clear_after_sync only after commit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from zk_helpers import DEVICE, hub_config, running, stored, wait_for

from spotme_hub.adapters.zkteco.simulator import Faults, ZKSimulator
from spotme_hub.store import RecordFilter

N = 5000

FAULTS = {
    "drop-mid-transfer": (Faults(drop_mid_transfer=-1), "unreachable"),
    "delay-beyond-timeout": (Faults(delay_s=3.0, delay_replies=-1), "timeout"),
    "corrupt-checksum": (Faults(corrupt_checksum=-1), "protocol"),
    "wrong-count": (Faults(wrong_count=3), "mismatch"),
}


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_down_then_recovery(tmp_path: Path, fault: str, udp: bool) -> None:
    faults, category = FAULTS[fault]
    if udp and fault == "drop-mid-transfer":
        category = "timeout"  # a UDP terminal that goes silent cannot be told from a slow one

    async def main() -> None:
        with ZKSimulator(udp=udp, records=N, record_size=40,
                         faults=Faults(**vars(faults))) as sim:  # fmt: skip
            async with running(hub_config(tmp_path, sim, timeout=1)) as hub:
                h = hub.health[DEVICE]
                await wait_for(lambda: h.state == "DOWN", what="DOWN")
                assert h.consecutive_failures >= 2
                assert h.last_error and h.last_error.startswith(category), h.last_error
                if fault == "wrong-count":
                    assert "reports 5003 records" in h.last_error
                assert stored(hub) == 0  # nothing partial
                assert hub.store.quarantine_count() == 0
                await wait_for(lambda: sim.enabled, what="re-enabled")
                sim.faults = Faults()  # the site is fixed
                await wait_for(lambda: stored(hub) == N, what="recovery")
                await wait_for(lambda: h.state == "UP")
                polls = h.counters["polls"]
                await wait_for(lambda: h.counters["polls"] > polls)
                assert stored(hub) == N and h.counters["new"] == N
                assert sim.enabled
                if fault in ("drop-mid-transfer", "corrupt-checksum"):
                    assert sim.disable_count >= 2  # it was disabled for reads that failed ...

    asyncio.run(main())


def test_single_bad_chunk_is_retried(tmp_path: Path) -> None:
    async def main() -> None:
        with ZKSimulator(records=N, faults=Faults(corrupt_checksum=1)) as sim:
            async with running(hub_config(tmp_path, sim)) as hub:
                await wait_for(lambda: stored(hub) == N)
                h = hub.health[DEVICE]
                assert h.counters["failures"] == 0 and sim.faults.corrupt_checksum == 0

    asyncio.run(main())


def test_clear_after_sync_clears_only_after_commit(tmp_path: Path) -> None:
    async def main() -> None:
        with ZKSimulator(records=3000, record_size=16) as sim:
            async with running(hub_config(tmp_path, sim, clear_after_sync=True)) as hub:
                commits: list[tuple[int, int]] = []
                hub.commit_listeners.append(
                    lambda recs, res: commits.append((len(res.new), sim.clear_count))
                )
                await wait_for(lambda: sim.clear_count >= 1, what="clear")
                assert stored(hub) == 3000
                assert sum(n for n, cleared in commits if cleared == 0) == 3000  # all before
                await wait_for(lambda: sim.enabled)
                sim.add_punch("2")
                await wait_for(lambda: stored(hub) == 3001 and sim.clear_count >= 2)
                assert hub.health[DEVICE].counters["duplicate"] == 0

    asyncio.run(main())


@pytest.mark.parametrize("fault", ["wrong-count", "drop-mid-transfer"])
def test_clear_after_sync_never_clears_on_failure(tmp_path: Path, fault: str) -> None:
    faults, _ = FAULTS[fault]

    async def main() -> None:
        with ZKSimulator(records=3000, faults=Faults(**vars(faults))) as sim:
            async with running(hub_config(tmp_path, sim, clear_after_sync=True, timeout=1)) as hub:
                await wait_for(lambda: hub.health[DEVICE].state == "DOWN")
                await wait_for(lambda: sim.enabled, what="re-enabled")
                assert sim.clear_count == 0 and sim.record_count == 3000
                assert stored(hub) == 0

    asyncio.run(main())


def test_mismatch_detail_names_the_numbers(tmp_path: Path) -> None:
    async def main() -> None:
        with ZKSimulator(records=100, faults=Faults(wrong_count=-1)) as sim:
            async with running(hub_config(tmp_path, sim)) as hub:
                h = hub.health[DEVICE]
                await wait_for(lambda: h.state in ("DEGRADED", "DOWN"))
                detail: Any = h.detail.get("reconcile", "")
                assert "99" in detail and h.counters["reconcile_retries"] >= 1
                recs = hub.store.records(0, 10, RecordFilter(device_id=DEVICE))
                assert recs == []

    asyncio.run(main())
