"""OSDP: the hub as control panel (libosdp) on a pty; libosdp peripheral devices on the other end
report card reads, and go offline."""

from __future__ import annotations

import asyncio
from pathlib import Path

from serial_helpers import (
    DEVICE,
    health,
    quarantined,
    records,
    running_hub,
    serial_config,
    wait_for,
)

from spotme_hub.adapters.serial.simulator import OsdpReaders, VirtualPort


def test_osdp_card_reads_from_two_readers_on_one_bus(tmp_path: Path) -> None:
    port = VirtualPort()
    readers = OsdpReaders(port, addresses=[1, 2])
    readers.start()

    async def main() -> None:
        cfg = serial_config(tmp_path, port=port.path, framing="osdp", address=[1, 2],
                            reader_punch={1: "in", 2: "out"}, debounce=0,
                            offline_after=1.0)  # fmt: skip
        async with running_hub(cfg) as hub:
            await wait_for(lambda: readers.is_online(1) and readers.is_online(2), what="PDs online")
            await wait_for(
                lambda: health(hub).detail.get("readers") == {"1": "online", "2": "online"},
                what="readers online in health",
            )
            readers.card_read(1, "0008844356", bits=26)
            readers.card_read(2, "0012345678", bits=34)
            readers.card_read(2, "0012345678", bits=26, parity_error=True)
            await wait_for(lambda: len(records(hub)) == 2, what="2 punches")
            await wait_for(lambda: len(quarantined(hub)) == 1, what="parity error quarantined")
            recs = sorted(records(hub), key=lambda r: r["source"]["reader"])
            q = quarantined(hub)
            assert health(hub).state == "UP"

            readers.devices[2].stop()  # reader 2 loses power
            await wait_for(lambda: health(hub).state == "DEGRADED", timeout=40, what="DEGRADED")
            h = health(hub)
            assert h.last_error == "OSDP reader(s) offline: 2"
            assert h.detail["readers"] == {"1": "online", "2": "offline"}
            readers.card_read(1, "0012345678")  # the other reader still works
            await wait_for(lambda: len(records(hub)) == 3, what="punch while 2 is offline")

        assert [(r["card"], r["employee_id"], r["source"]["reader"], r["punch"]) for r in recs] == [
            ("0008844356", "J0001", 1, "in"), ("0012345678", "J0002", 2, "out"),
        ]  # fmt: skip
        assert recs[0]["device_serial"] == "osdp:1" and recs[0]["source"]["bits"] == 26
        assert recs[1]["source"]["bits"] == 34
        assert "parity" in q[0]["reason"] and q[0]["source"]["reader"] == 2
        readers.devices[1].stop()
        port.close()

    asyncio.run(main())


def test_osdp_secure_channel(tmp_path: Path) -> None:
    key = bytes(range(16))
    port = VirtualPort()
    readers = OsdpReaders(port, addresses=[5], scbk=key)
    readers.start()

    async def main() -> None:
        cfg = serial_config(tmp_path, port=port.path, framing="osdp", address=5, scbk=key.hex())
        async with running_hub(cfg) as hub:
            await wait_for(lambda: readers.devices[5].is_sc_active(), what="secure channel")
            readers.card_read(5, "0008844356")
            await wait_for(lambda: len(records(hub)) == 1, what="punch")
            assert records(hub)[0]["employee_id"] == "J0001"
        readers.stop()
        port.close()

    asyncio.run(main())


def test_osdp_port_unplugged(tmp_path: Path) -> None:
    port = VirtualPort(link=tmp_path / "rs485")
    readers = OsdpReaders(port, addresses=[0])
    readers.start()

    async def main() -> None:
        cfg = serial_config(tmp_path, port=port.path, framing="osdp")
        async with running_hub(cfg) as hub:
            await wait_for(lambda: readers.is_online(0), what="PD online")
            port.unplug()
            await wait_for(lambda: health(hub).state == "DOWN", what="DOWN")
            assert health(hub).last_error.startswith("unreachable")
        readers.stop()
        assert DEVICE in hub.health

    asyncio.run(main())
