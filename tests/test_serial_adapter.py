"""`kind: serial` end to end: a pty pair stands in for the reader, pyserial opens its device path,
and a running Hub commits punches to the store and bad frames to quarantine."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest
import serial
from serial_helpers import (
    DEVICE,
    health,
    quarantined,
    records,
    running_hub,
    serial_config,
    wait_for,
)

from spotme_hub.adapters.serial.simulator import (
    VirtualPort,
    line_frame,
    rdm6300_frame,
    wiegand_line,
)
from spotme_hub.pipeline.replay import replay_item
from spotme_hub.service import load_config
from spotme_hub.yamlsource import ConfigError

FRAME = rdm6300_frame("0008844356")
OTHER = rdm6300_frame("0012345678")


def up(hub) -> bool:  # type: ignore[no-untyped-def]
    return health(hub).state == "UP"


def test_rdm6300_split_joined_noisy_and_malformed_frames(tmp_path: Path) -> None:
    port = VirtualPort()

    async def main() -> None:
        cfg = serial_config(tmp_path, port=port.path, framing="rdm6300", punch="in", debounce=0)
        async with running_hub(cfg) as hub:
            await wait_for(lambda: up(hub), what="port open")
            port.write(b"\x00\xff" + FRAME[:5])  # leading noise, then a frame split across reads
            await asyncio.sleep(0.05)
            port.write(FRAME[5:])
            await wait_for(lambda: len(records(hub)) == 1, what="first punch")
            port.write(rdm6300_frame("0008844356", bad_checksum=True) + rdm6300_frame(0))
            port.write(OTHER[:6] + rdm6300_frame("12345678", version=0x01, lowercase=True))
            await wait_for(lambda: len(quarantined(hub)) == 3, what="3 bad frames")
            await wait_for(lambda: len(records(hub)) == 2, what="second punch")
            recs = records(hub)
            q = quarantined(hub)
            assert hub.health[DEVICE].counters["noise_bytes"] >= 2

        assert [r["card"] for r in recs] == ["0008844356", "0012345678"]
        assert [r["employee_id"] for r in recs] == ["J0001", "J0002"]
        first = recs[0]
        assert (
            first["punch"] == "in"
            and first["verify"] == "card"
            and first["device_kind"] == "serial"
        )
        assert first["raw"] == FRAME.hex()
        assert first["source"]["framing"] == "rdm6300" and first["source"]["w26"] == "134,62532"
        assert first["flags"] == []
        reasons = sorted(i["reason"] for i in q)
        assert reasons[0] == "all-zero card id"
        assert reasons[1].startswith("bad checksum")
        assert reasons[2] == "truncated frame: STX before the frame ended"
        assert all(
            i["source"]["port"] == port.path and i["source"]["framing"] == "rdm6300" for i in q
        )
        assert {i["raw"] for i in q} >= {rdm6300_frame(0).hex(), OTHER[:6].hex()}
        assert all(isinstance(i["source"]["offset"], int) for i in q)
        port.close()

    asyncio.run(main())


def test_held_card_gives_one_punch_per_debounce_window(tmp_path: Path) -> None:
    port = VirtualPort()

    async def main() -> None:
        cfg = serial_config(tmp_path, port=port.path, debounce=1.0)
        async with running_hub(cfg) as hub:
            await wait_for(lambda: up(hub), what="port open")
            port.write(FRAME * 20)  # a card held on the reader: frames arrive back to back
            await wait_for(lambda: hub.health[DEVICE].counters["debounced"] == 19, what="repeats")
            assert len(records(hub)) == 1
            await asyncio.sleep(1.1)  # the next window (at least 1 s later)
            port.write(FRAME * 5 + OTHER)
            await wait_for(lambda: len(records(hub)) == 3, what="second window")
            await wait_for(lambda: hub.health[DEVICE].counters["debounced"] == 23, what="repeats")
            recs = records(hub)
        assert [r["card"] for r in recs] == ["0008844356", "0008844356", "0012345678"]
        assert len({r["id"] for r in recs}) == 3
        assert recs[0]["received_at"] < recs[1]["received_at"]
        port.close()

    asyncio.run(main())


def test_line_reader_decimal_with_keypad_noise(tmp_path: Path) -> None:
    port = VirtualPort()

    async def main() -> None:
        cfg = serial_config(tmp_path, port=port.path, framing="line", debounce=0, punch="out")
        async with running_hub(cfg) as hub:
            await wait_for(lambda: up(hub), what="port open")
            port.write(b"1\r\n#\r\n" + line_frame("0008844356") + b"not a card\r\n")
            port.write(line_frame("0012345678")[:4])
            await asyncio.sleep(0.05)
            port.write(line_frame("0012345678")[4:])
            await wait_for(lambda: len(records(hub)) == 2, what="2 punches")
            await wait_for(lambda: len(quarantined(hub)) == 1, what="garbage line quarantined")
            recs, q = records(hub), quarantined(hub)
        assert [(r["card"], r["punch"]) for r in recs] == [
            ("0008844356", "out"),
            ("0012345678", "out"),
        ]
        assert q[0]["reason"] == "not a decimal card number: 'not a card'"
        assert bytes.fromhex(q[0]["raw"]) == b"not a card"
        port.close()

    asyncio.run(main())


def test_line_reader_hex_with_regex(tmp_path: Path) -> None:
    port = VirtualPort()

    async def main() -> None:
        cfg = serial_config(tmp_path, port=port.path, framing="line", encoding="hex",
                            regex=r"UID:(?P<card>[0-9A-F]{8})", delimiter=";", debounce=0)  # fmt: skip
        async with running_hub(cfg) as hub:
            await wait_for(lambda: up(hub), what="port open")
            port.write(b"UID:0086F444;UID:00BC614E;")
            await wait_for(lambda: len(records(hub)) == 2, what="2 punches")
            recs = records(hub)
        assert [r["employee_id"] for r in recs] == ["J0001", "J0002"]
        port.close()

    asyncio.run(main())


@pytest.mark.parametrize(("text", "bits"), [("hex", 26), ("bits", 34), ("decimal", 26)])
def test_wiegand_converter(tmp_path: Path, text: str, bits: int) -> None:
    port = VirtualPort()

    async def main() -> None:
        cfg = serial_config(tmp_path, port=port.path, framing="wiegand", text=text, debounce=0)
        async with running_hub(cfg) as hub:
            await wait_for(lambda: up(hub), what="port open")
            port.write(wiegand_line("0008844356", bits, text))
            if text != "decimal":
                port.write(wiegand_line("0012345678", bits, text, parity_error=True))
            port.write(wiegand_line("0012345678", bits, text))
            await wait_for(lambda: len(records(hub)) == 2, what="2 punches")
            if text != "decimal":
                await wait_for(lambda: len(quarantined(hub)) == 1, what="parity error")
                assert "parity" in quarantined(hub)[0]["reason"]
            recs = records(hub)
        assert [r["employee_id"] for r in recs] == ["J0001", "J0002"]
        assert recs[0]["source"]["facility"] == 134 and recs[0]["source"]["number"] == 62532
        port.close()

    asyncio.run(main())


def test_unplug_and_replug(tmp_path: Path) -> None:
    port = VirtualPort(link=tmp_path / "ttyUSB-door")

    async def main() -> None:
        cfg = serial_config(tmp_path, port=port.path, debounce=0)
        async with running_hub(cfg) as hub:
            await wait_for(lambda: up(hub), what="port open")
            port.write(FRAME + OTHER[:6])
            await wait_for(lambda: len(records(hub)) == 1, what="punch before unplug")
            port.unplug()  # the pty closes and the path disappears, cutting a frame short
            await wait_for(lambda: health(hub).state == "DOWN", what="DOWN after unplug")
            h = health(hub)
            assert h.last_error.startswith("unreachable")
            assert h.consecutive_failures >= 2
            port.replug()  # a new pty behind the same path
            await wait_for(lambda: up(hub), what="UP after replug")
            port.write(OTHER)
            await wait_for(lambda: len(records(hub)) == 2, what="punch after replug")
            recs = records(hub)
            q = quarantined(hub)
            assert [(i["reason"], i["raw"]) for i in q] == [
                ("truncated frame: no ETX before the line went idle", OTHER[:6].hex())
            ]
            saved = hub.store  # health is persisted for `spotme-hub devices`
            hub.flush_health(True)
            assert saved.health(DEVICE)[0]["state"] == "UP"
        assert [r["card"] for r in recs] == ["0008844356", "0012345678"]
        port.close()

    asyncio.run(main())


def test_confirm_filters_single_ghost_frames(tmp_path: Path) -> None:
    """Cheap clones emit ghost ids that pass the XOR; a real card held on the reader repeats."""
    port = VirtualPort()

    async def main() -> None:
        cfg = serial_config(tmp_path, port=port.path, confirm=2, debounce=5)
        async with running_hub(cfg) as hub:
            await wait_for(lambda: up(hub), what="port open")
            port.write(OTHER)  # one lone frame: a ghost
            await wait_for(lambda: health(hub).counters["unconfirmed"] == 1, what="ghost seen")
            port.write(FRAME * 4)  # a card held on the reader
            await wait_for(lambda: len(records(hub)) == 1, what="confirmed card")
            await wait_for(lambda: health(hub).counters["debounced"] == 2, what="repeats")
            assert [r["card"] for r in records(hub)] == ["0008844356"]

    asyncio.run(main())
    port.close()


def test_port_held_by_another_program(tmp_path: Path) -> None:
    port = VirtualPort()
    other = serial.Serial(port.path, exclusive=True)  # e.g. a vendor tool left running

    async def main() -> None:
        cfg = serial_config(tmp_path, port=port.path)
        async with running_hub(cfg) as hub:
            await wait_for(lambda: health(hub).state == "DOWN", what="DOWN")
            assert "unreachable: cannot open" in health(hub).last_error
            assert "lock" in health(hub).last_error
            other.close()
            await wait_for(lambda: up(hub), what="UP once the other program lets go")

    asyncio.run(main())
    port.close()


def test_missing_port_is_unreachable(tmp_path: Path) -> None:
    async def main() -> None:
        cfg = serial_config(tmp_path, port=str(tmp_path / "no-such-tty"))
        async with running_hub(cfg) as hub:
            await wait_for(lambda: health(hub).state == "DOWN", what="DOWN")
            assert "unreachable: cannot open" in health(hub).last_error

    asyncio.run(main())


def test_socket_url_serial_over_ip_converter(tmp_path: Path) -> None:
    """A Wiegand→Ethernet converter reached with pyserial's socket:// URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    host, tcp = server.getsockname()
    conns: list[socket.socket] = []
    threading.Thread(target=lambda: conns.append(server.accept()[0]), daemon=True).start()

    async def main() -> None:
        cfg = serial_config(tmp_path, port=f"socket://{host}:{tcp}", framing="wiegand", debounce=0)
        async with running_hub(cfg) as hub:
            await wait_for(lambda: up(hub) and conns, what="connected")
            conns[0].sendall(b"86F444\r" + b"30DE88")
            await asyncio.sleep(0.05)
            conns[0].sendall(b"8\r\n")
            await wait_for(lambda: len(records(hub)) == 2, what="2 punches")
            assert [r["card"] for r in records(hub)] == ["0008844356"] * 2
            conns[0].close()  # the converter reboots: connection gone, nothing listening
            server.close()
            await wait_for(lambda: health(hub).state == "DOWN", what="DOWN")
            assert health(hub).last_error.startswith("unreachable")

    asyncio.run(main())


def test_quarantined_line_replays_after_the_regex_is_fixed(tmp_path: Path) -> None:
    port = VirtualPort()

    async def main() -> list[dict]:
        cfg = serial_config(tmp_path, port=port.path, framing="line", debounce=0)
        async with running_hub(cfg) as hub:
            await wait_for(lambda: up(hub), what="port open")
            port.write(b"CARD=86F444\r\n")
            await wait_for(lambda: len(quarantined(hub)) == 1, what="quarantined")
            return quarantined(hub)

    q = asyncio.run(main())
    port.close()
    fixed = serial_config(
        tmp_path, port=port.path, framing="line", encoding="hex", regex=r"CARD=(\w+)"
    )
    from spotme_hub.store import Store

    store = Store(fixed.database_url)
    outcome = replay_item(fixed, store, q[0])
    assert outcome.status == "replayed", outcome.detail
    rec = store.records(0, 10)[0]
    assert rec["card"] == "0008844356" and rec["employee_id"] == "J0001"
    assert rec["received_at"][:19] == q[0]["source"]["received_at"][:19]
    store.close()


def test_options_are_validated_with_clear_errors(tmp_path: Path) -> None:
    def errors(**opts: object) -> str:
        lines = "".join(f"    {k}: {v!r}\n" for k, v in opts.items())
        path = tmp_path / "hub.yaml"
        path.write_text(
            "offices:\n  - id: hq\ndevices:\n  - id: d\n    kind: serial\n    office: hq\n" + lines
        )
        with pytest.raises(ConfigError) as exc:
            load_config(path)
        return str(exc.value)

    bad_framing = errors(port="/dev/ttyUSB0", framing="em5000")
    assert "hub.yaml" in bad_framing and ":8" in bad_framing and "framing" in bad_framing
    assert "regular expression" in errors(port="/dev/ttyUSB0", framing="line", regex="(")
    assert "applies to framing line" in errors(port="/dev/ttyUSB0", encoding="hex")
    assert "scbk" in errors(port="/dev/ttyUSB0", framing="osdp", scbk="1234")
    assert "not in `address`: [3]" in errors(
        port="/dev/ttyUSB0", framing="osdp", address=[1, 2], reader_punch={3: "in"}
    )
    assert "127 is broadcast" in errors(port="/dev/ttyUSB0", framing="osdp", address=127)
    assert "port" in errors(framing="rdm6300")
    assert "baudrat" in errors(port="/dev/ttyUSB0", baudrat=9600)


def test_many_readers_in_one_hub_do_not_starve_the_commits(tmp_path: Path) -> None:
    """Each port has its own thread: more readers than the default executor has workers."""
    ports = [VirtualPort() for _ in range(12)]
    base = serial_config(tmp_path, port=ports[0].path)
    data = base.model_dump(mode="python", exclude={"devices"})
    from spotme_hub.service import config_from_dict

    devices = [
        {"id": f"door-{i}", "kind": "serial", "office": "hq", "port": p.path, "debounce": 0}
        for i, p in enumerate(ports)
    ]
    data["devices"] = devices
    data["employees"] = [e.model_dump() for e in base.employees]
    cfg = config_from_dict(data, tmp_path)

    async def main() -> None:
        async with running_hub(cfg) as hub:
            await wait_for(
                lambda: all(h.state == "UP" for h in hub.health.values()), what="all ports open"
            )
            for p in ports:
                p.write(FRAME)
            await wait_for(lambda: len(records(hub)) == len(ports), what="a punch from each")
            assert {r["device_id"] for r in records(hub)} == {d["id"] for d in devices}

    asyncio.run(main())
    for p in ports:
        p.close()
