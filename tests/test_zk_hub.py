"""The hub pulling a simulated ZKTeco terminal: volume, idempotency, live mode, clock, keys."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest
from fileimport_helpers import attlog_line
from zk_helpers import DEVICE, hub_config, running, stored, wait_for

from spotme_hub.adapters.csv.importer import import_file, options_for
from spotme_hub.adapters.zkteco.simulator import ZKSimulator
from spotme_hub.store import RecordFilter, Store


def test_pull_20k_once_then_only_new(tmp_path: Path) -> None:
    async def main() -> None:
        with ZKSimulator(records=20_000, record_size=40, users=6) as sim:
            async with running(hub_config(tmp_path, sim)) as hub:
                health = hub.health[DEVICE]
                await wait_for(lambda: stored(hub) == 20_000, what="20k records")
                assert hub.store.get_checkpoint(DEVICE, "attlog")["hwm"] == 20_000
                polls = health.counters["polls"]
                await wait_for(lambda: health.counters["polls"] >= polls + 2, what="two re-polls")
                assert stored(hub) == 20_000
                assert health.counters["new"] == 20_000
                assert health.counters["duplicate"] == 0  # the high-water mark skipped the old log
                assert health.state == "UP" and health.detail["records_on_device"] == 20_000
                assert sim.enabled
                sim.add_punch("3", punch=1)
                sim.add_punch("5", punch=0)
                # the health counters move on the event loop right after the commit is visible
                await wait_for(
                    lambda: stored(hub) == 20_002 and health.counters["new"] >= 20_002,
                    what="new punches",
                )
                assert stored(hub) == 20_002
                assert health.counters["new"] == 20_002
        recs = hub.store.records(0, 30_000, RecordFilter(device_id=DEVICE))
        assert len({r["id"] for r in recs}) == 20_002
        first = min(recs, key=lambda r: r["local_time"])
        assert first["local_time"].startswith("2026-01-05T07:30:00")
        assert first["employee_id"] == "E1" and first["punch"] == "in"
        assert first["device_serial"] == sim.serial
        assert all(r["clock_skew_s"] is not None for r in recs)

    asyncio.run(main())


def test_repull_from_scratch_adds_nothing(tmp_path: Path) -> None:
    """Ids are stable: a hub that lost its checkpoint re-reads everything and adds no record."""

    async def main() -> None:
        with ZKSimulator(records=3000, record_size=16) as sim:
            cfg = hub_config(tmp_path, sim)
            async with running(cfg) as hub:
                await wait_for(lambda: stored(hub) == 3000)
            hub.store.set_checkpoint(DEVICE, "attlog", {})
            async with running(cfg) as hub:
                h = hub.health[DEVICE]
                await wait_for(lambda: h.counters["duplicate"] == 3000, what="re-read")
                assert h.counters["new"] == 0 and stored(hub) == 3000

    asyncio.run(main())


@pytest.mark.parametrize("size", [8, 49])
def test_udp_pull(tmp_path: Path, size: int) -> None:
    async def main() -> None:
        with ZKSimulator(udp=True, records=2000, record_size=size, comm_key=999) as sim:
            async with running(hub_config(tmp_path, sim, comm_key=999)) as hub:
                await wait_for(lambda: stored(hub) == 2000)
                rec = hub.store.records(0, 1, RecordFilter(device_id=DEVICE))[0]
                assert rec["source_user_id"] == "1" and rec["employee_id"] == "E1"
                assert rec["source"]["record_size"] == size

    asyncio.run(main())


def test_swapped_layout(tmp_path: Path) -> None:
    async def main() -> None:
        with ZKSimulator(records=0, record_size=40) as sim:
            sim.add_punch(
                "2", punch=4, verify=1, when=datetime(2026, 1, 6, 8, 0)
            )  # verify=1, punch=4
            async with running(hub_config(tmp_path, sim, record_layout="swapped")) as hub:
                await wait_for(lambda: stored(hub) == 1)
                rec = hub.store.records(0, 1, RecordFilter(device_id=DEVICE))[0]
                assert rec["punch"] == "out"  # byte 26 (1) read as the punch state
                assert rec["verify"] == "card"  # byte 31 (4) read as the verify method

    asyncio.run(main())


@pytest.mark.parametrize(("udp", "size"), [(False, 40), (True, 16), (False, 49)])
def test_live_mode_delivers_a_punch(tmp_path: Path, udp: bool, size: int) -> None:
    async def main() -> None:
        with ZKSimulator(records=500, record_size=size, udp=udp) as sim:
            cfg = hub_config(tmp_path, sim, mode="live", poll_every=3600)
            async with running(cfg) as hub:
                await wait_for(lambda: stored(hub) == 500 and sim.event_listeners == 1)
                sim.add_punch("6", punch=1, verify=15)
                await wait_for(lambda: stored(hub) == 501, what="the realtime punch")
                recs = hub.store.records(0, 1000, RecordFilter(device_id=DEVICE))
                live = [r for r in recs if r["source"].get("realtime")]
                assert len(live) == 1
                assert (live[0]["employee_id"], live[0]["punch"], live[0]["verify"]) == (
                    "E6",
                    "out",
                    "face",
                )
                assert hub.health[DEVICE].counters["realtime_events"] == 1

    asyncio.run(main())


def test_clock_skew_recorded_and_flagged(tmp_path: Path) -> None:
    async def main() -> None:
        with ZKSimulator(records=10, clock_offset_s=900) as sim:
            async with running(hub_config(tmp_path, sim)) as hub:
                await wait_for(lambda: stored(hub) == 10)
                rec = hub.store.records(0, 1, RecordFilter(device_id=DEVICE))[0]
                assert 890 < rec["clock_skew_s"] < 910 and "clock_skew" in rec["flags"]
                await wait_for(lambda: hub.health[DEVICE].counters["polls"] >= 2)
                assert abs(sim.clock_offset_s - 900) < 1  # trust: never rewritten

    asyncio.run(main())


def test_clock_correct_sets_device_time(tmp_path: Path) -> None:
    async def main() -> None:
        with ZKSimulator(records=10, clock_offset_s=900) as sim:
            async with running(hub_config(tmp_path, sim, clock="correct")) as hub:
                await wait_for(lambda: abs(sim.clock_offset_s) <= 2, what="clock corrected")
                assert hub.health[DEVICE].counters["clock_corrected"] >= 1

    asyncio.run(main())


def test_wrong_comm_key_goes_down_as_unauthorized(tmp_path: Path) -> None:
    async def main() -> None:
        with ZKSimulator(records=10, comm_key=4321) as sim:
            async with running(hub_config(tmp_path, sim, comm_key=1111)) as hub:
                h = hub.health[DEVICE]
                await wait_for(lambda: h.state == "DOWN")
                assert h.last_error and h.last_error.startswith("unauthorized")
                assert stored(hub) == 0
            saved = hub.store.health(DEVICE)[0]
            assert saved["state"] == "DOWN" and saved["last_error"].startswith("unauthorized")

    asyncio.run(main())


def test_unreachable_device(tmp_path: Path) -> None:
    async def main() -> None:
        sim = ZKSimulator().start()
        sim.stop()
        async with running(hub_config(tmp_path, sim)) as hub:
            h = hub.health[DEVICE]
            await wait_for(lambda: h.state == "DOWN")
            assert h.last_error and h.last_error.startswith("unreachable")

    asyncio.run(main())


def test_user_directory_maps_uids_and_refreshes(tmp_path: Path) -> None:
    """8-byte records hold only the internal uid: the user directory turns it into the user id
    (PIN), and it is re-read so users enrolled later map too."""

    async def main() -> None:
        with ZKSimulator(records=0, record_size=8, users=0) as sim:
            sim.users.extend([(1, "1001", "Ali"), (2, "1002", "Chong")])
            sim.add_punch("1002", when=datetime(2026, 1, 6, 8, 0))
            cfg = hub_config(tmp_path, sim, users_refresh_s=0.2)
            async with running(cfg) as hub:
                await wait_for(lambda: stored(hub) == 1)
                rec = hub.store.records(0, 1, RecordFilter(device_id=DEVICE))[0]
                assert rec["source_user_id"] == "1002" and rec["source"]["name"] == "Chong"
                assert rec["source"]["uid"] == 2
                sim.users.append((3, "1003", "Devi"))
                sim.add_punch("1003", when=datetime(2026, 1, 6, 8, 5))
                await wait_for(lambda: stored(hub) == 2)
                recs = hub.store.records(0, 5, RecordFilter(device_id=DEVICE))
                assert {r["source_user_id"] for r in recs} == {"1002", "1003"}

    asyncio.run(main())


def test_bad_records_are_quarantined_once(tmp_path: Path) -> None:
    async def main() -> None:
        with ZKSimulator(records=5, record_size=40) as sim:
            feb31 = ((26 * 12 * 31 + 1 * 31 + 30) * 86400) + 8 * 3600  # 2026-02-31 08:00
            sim.add_punch("2", when=feb31)
            sim.add_punch("3", when=datetime(2031, 5, 1, 8, 0))  # years ahead: implausible
            async with running(hub_config(tmp_path, sim)) as hub:
                h = hub.health[DEVICE]
                await wait_for(lambda: stored(hub) == 5 and h.counters["quarantined"] == 2)
                polls = h.counters["polls"]
                await wait_for(lambda: h.counters["polls"] >= polls + 2)
                items = hub.store.quarantine_items()
                assert len(items) == 2
                reasons = sorted(i["reason"] for i in items)
                assert reasons[1].startswith("undecodable device time")
                bad = next(i for i in items if i["reason"].startswith("undecodable"))
                assert bad["raw"]["size"] == 40 and len(bytes.fromhex(bad["raw"]["hex"])) == 40
                from spotme_hub.adapters.zkteco.adapter import ZKTecoAdapter

                dev = hub.cfg.device(DEVICE)
                again = ZKTecoAdapter.replay(dev, bad["raw"], bad["source"])
                assert not isinstance(again, list)  # still undecodable: stays in quarantine

    asyncio.run(main())


def test_live_mode_catches_up_after_an_outage(tmp_path: Path) -> None:
    """Punches made while the hub was cut off come in with the pull that follows reconnection."""

    async def main() -> None:
        with ZKSimulator(records=100, record_size=40) as sim:
            cfg = hub_config(tmp_path, sim, mode="live", poll_every=3600, timeout=1)
            async with running(cfg) as hub:
                h = hub.health[DEVICE]
                await wait_for(lambda: stored(hub) == 100 and sim.event_listeners == 1)
                sim.stop()  # the terminal goes off the network ...
                await wait_for(lambda: h.consecutive_failures >= 1, what="the outage noticed")
                sim.add_punch("5", punch=1, when=datetime(2026, 1, 7, 17, 0))  # ... someone punches
                sim.start()
                await wait_for(lambda: stored(hub) == 101, what="catch-up pull")
                await wait_for(lambda: h.state == "UP")
                recs = hub.store.records(0, 200, RecordFilter(device_id=DEVICE))
                assert not any(r["source"].get("realtime") for r in recs)

    asyncio.run(main())


def test_the_usb_export_of_a_pulled_terminal_adds_nothing(tmp_path: Path) -> None:
    """The terminal was pulled over the network; its `attlog.dat` from a USB stick, imported for
    the same device (`spotme-hub import --device`), holds the same punches: the same ids."""

    async def pull(sim: ZKSimulator) -> None:
        async with running(hub_config(tmp_path, sim)) as hub:
            await wait_for(lambda: stored(hub) == 300, what="300 records")

    with ZKSimulator(records=300, record_size=40, users=6) as sim:
        asyncio.run(pull(sim))
        usb = "".join(
            attlog_line(p.user_id, p.when.strftime("%Y-%m-%d %H:%M:%S"), p.punch, p.verify)
            for p in sim.punches
            if isinstance(p.when, datetime)
        )
        cfg = hub_config(tmp_path, sim)
    path = tmp_path / "1_attlog.dat"
    path.write_text(usb)
    store = Store(cfg.database_url)
    device = cfg.device(DEVICE)
    s = import_file(cfg, store, path, device, options_for(device))
    assert (s.rows_read, s.imported, s.duplicates, s.quarantined) == (300, 0, 300, 0), s.problems
    assert store.count_records() == 300
    store.close()
