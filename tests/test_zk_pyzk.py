"""Unmodified pyzk 0.9 against the ZK simulator over real sockets."""

from __future__ import annotations

import struct
import threading
from datetime import datetime, timedelta

import pytest
from zk import ZK, const
from zk.exception import ZKErrorResponse

from spotme_hub.adapters.zkteco import wire as w
from spotme_hub.adapters.zkteco.client import ZKClient
from spotme_hub.adapters.zkteco.simulator import ZKSimulator
from spotme_hub.contract import DeviceError

N = 2500


def client(sim: ZKSimulator, key: int = 0) -> ZK:
    return ZK("127.0.0.1", port=sim.port, timeout=10, password=key, force_udp=sim.udp,
              ommit_ping=True)  # fmt: skip


def test_wire_vectors() -> None:
    assert w.packet(w.CMD_CONNECT, 0, 0) == bytes.fromhex("5050827D08000000E80317FC00000000")
    attlog = bytes.fromhex("010D000000000000000000")
    assert w.packet(w.CMD_PREPARE_BUFFER, 0x1234, 3, attlog) == bytes.fromhex(
        "5050827D13000000DF05E8DA34120300010D000000000000000000"
    )
    assert w.packet(w.CMD_OPTIONS_RRQ, 0xC0C5, 5, b"~OS\x00") == bytes.fromhex(
        "5050827D0C0000000B0058EFC5C005007E4F5300"
    )
    assert w.make_commkey(12345, 0x1234) == bytes.fromhex("6DE1326B")
    assert w.encode_time(datetime(2024, 1, 15, 8, 30)) == 0x2E0D3C88
    assert w.decode_time(0x2E0D3C88) == datetime(2024, 1, 15, 8, 30)


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
@pytest.mark.parametrize("size", [8, 16, 40])
@pytest.mark.parametrize("key", [0, 4321], ids=["no-key", "comm-key"])
def test_pyzk_reads_everything(udp: bool, size: int, key: int) -> None:
    with ZKSimulator(udp=udp, record_size=size, records=N, comm_key=key, users=6,
                     clock_offset_s=-120) as sim:  # fmt: skip
        zk = client(sim, key).connect()
        try:
            assert zk.get_serialnumber() == sim.serial
            assert zk.get_firmware_version().startswith("Ver ")
            assert zk.get_platform() and zk.get_device_name() and zk.get_mac()
            assert zk.get_fp_version() == 10
            assert zk.get_extend_fmt() == (1 if size >= 40 else 0)
            zk.read_sizes()
            assert (zk.users, zk.records) == (6, N)
            users = zk.get_users()
            assert sorted(u.user_id for u in users) == [str(i) for i in range(1, 7)]
            assert users[0].name == "Siti"
            drift = (zk.get_time() - datetime.now(sim.tz).replace(tzinfo=None)).total_seconds()
            assert -130 < drift < -110
            att = zk.get_attendance()
            assert len(att) == N
            assert att[0].user_id == "1" and att[0].timestamp == datetime(2026, 1, 5, 7, 30)
            assert att[7].user_id == "2" and att[7].punch == 1
            assert att[-1].timestamp == datetime(2026, 1, 5, 7, 30) + timedelta(
                seconds=37 * (N - 1)
            )
            zk.disable_device()
            assert not sim.enabled
            zk.enable_device()
            assert sim.enabled
            zk.set_time(datetime(2026, 3, 1, 9, 0, 0))
            assert abs((zk.get_time() - datetime(2026, 3, 1, 9, 0, 0)).total_seconds()) < 5
            zk.clear_attendance()
            assert sim.record_count == 0 and sim.clear_count == 1
            assert zk.get_attendance() == []
        finally:
            zk.disconnect()


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
def test_49_byte_records(udp: bool) -> None:
    """pyzk 0.9 reads the 49-byte dataset but parses it as 40-byte records (its known gap);
    our client extension decodes it from total ÷ count."""
    with ZKSimulator(udp=udp, record_size=49, records=N, comm_key=77) as sim:
        zk = client(sim, 77).connect()
        try:
            data, _size = zk.read_with_buffer(const.CMD_ATTLOG_RRQ)
            assert struct.unpack("<I", data[:4])[0] == 49 * N == len(data) - 4
        finally:
            zk.disconnect()
        ours = ZKClient("127.0.0.1", sim.port, timeout=5, comm_key=77, udp=udp).open()
        try:
            ours.read_sizes()
            data = ours.read_attlog()
            rows = w.decode_attendance(49, data[4:])
            assert len(rows) == ours.records == N
            assert rows[-1][1] == str((N - 1) % 6 + 1)
            assert w.decode_time(rows[-1][2]) == datetime(2026, 1, 5, 7, 30) + timedelta(
                seconds=37 * (N - 1)
            )
        finally:
            ours.close()


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
def test_wrong_comm_key_is_refused(udp: bool) -> None:
    with ZKSimulator(udp=udp, comm_key=4321) as sim:
        with pytest.raises(ZKErrorResponse, match="Unauthenticated"):
            client(sim, 1234).connect()
        with pytest.raises(DeviceError) as err:
            ZKClient("127.0.0.1", sim.port, timeout=3, comm_key=1234, udp=udp).open()
        assert err.value.category == "unauthorized"


def test_unreachable_is_classified() -> None:
    with ZKSimulator() as sim:
        port = sim.port
    with pytest.raises(DeviceError) as err:
        ZKClient("127.0.0.1", port, timeout=3).open()
    assert err.value.category == "unreachable"


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
@pytest.mark.parametrize("size", [16, 40, 49])
def test_pyzk_live_capture(udp: bool, size: int) -> None:
    with ZKSimulator(udp=udp, record_size=size, records=10) as sim:
        zk = client(sim).connect()
        got: list[object] = []
        done = threading.Event()

        def listen() -> None:
            for event in zk.live_capture(new_timeout=1):
                if event is not None:
                    got.append(event)
                    zk.end_live_capture = True
                if done.is_set():
                    zk.end_live_capture = True
            done.set()

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        for _ in range(600):
            if sim.event_listeners:
                break
            done.wait(0.05)
        assert sim.event_listeners == 1
        sim.add_punch("4", punch=1, verify=15, when=datetime(2026, 2, 2, 8, 1, 2))
        t.join(60)
        done.set()
        assert len(got) == 1
        event = got[0]
        assert (event.user_id, event.punch, event.status) == ("4", 1, 15)  # type: ignore[attr-defined]
        assert event.timestamp == datetime(2026, 2, 2, 8, 1, 2)  # type: ignore[attr-defined]
        zk.disconnect()
