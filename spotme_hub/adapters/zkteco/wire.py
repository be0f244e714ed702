"""ZK binary protocol primitives shared by the simulator and the client extension: codes,
framing, checksum, packed times and the attendance / user record layouts (docs/zkteco.md)."""

from __future__ import annotations

import struct
from datetime import datetime

# commands and replies
CMD_CONNECT, CMD_EXIT, CMD_ENABLEDEVICE, CMD_DISABLEDEVICE = 1000, 1001, 1002, 1003
CMD_REFRESHDATA, CMD_GET_VERSION, CMD_AUTH = 1013, 1100, 1102
CMD_PREPARE_DATA, CMD_DATA, CMD_FREE_DATA = 1500, 1501, 1502
CMD_PREPARE_BUFFER, CMD_READ_BUFFER = 1503, 1504
CMD_OPTIONS_RRQ, CMD_OPTIONS_WRQ, CMD_ATTLOG_RRQ = 11, 12, 13
CMD_CLEAR_DATA, CMD_CLEAR_ATTLOG, CMD_USERTEMP_RRQ, CMD_DB_RRQ = 14, 15, 9, 7
CMD_GET_TIME, CMD_SET_TIME, CMD_REG_EVENT, CMD_GET_FREE_SIZES = 201, 202, 500, 50
CMD_STARTVERIFY, CMD_CANCELCAPTURE, CMD_STATE_RRQ, CMD_GET_PINWIDTH = 60, 62, 64, 69
CMD_ACK_OK, CMD_ACK_ERROR, CMD_ACK_DATA, CMD_ACK_UNAUTH, CMD_ACK_UNKNOWN = (
    2000,
    2001,
    2002,
    2005,
    0xFFFF,
)
FCT_USER = 5
EF_ATTLOG = 1
USHRT_MAX = 65535
TCP_MAGIC = b"\x50\x50\x82\x7d"
MAX_CHUNK_TCP = 0xFFC0
MAX_CHUNK_UDP = 16 * 1024
UDP_PACKET = 1024

ATTENDANCE_SIZES = (8, 16, 40, 49)


def checksum(data: bytes) -> int:
    """One's complement of the 16-bit LE word sum (odd byte padded, carries folded)."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"<{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def packet(command: int, session: int, reply: int, data: bytes = b"", tcp: bool = True) -> bytes:
    chk = checksum(struct.pack("<4H", command, 0, session, reply) + data)
    body = struct.pack("<4H", command, chk, session, reply) + data
    return TCP_MAGIC + struct.pack("<I", len(body)) + body if tcp else body


def parse_header(body: bytes) -> tuple[int, int, int, int]:
    """(command, checksum, session, reply) of a packet body (TCP prefix already removed)."""
    cmd, chk, session, reply = struct.unpack_from("<4H", body)
    return cmd, chk, session, reply


def checksum_ok(body: bytes) -> bool:
    cmd, chk, session, reply = parse_header(body)
    return checksum(struct.pack("<4H", cmd, 0, session, reply) + body[8:]) == chk


def make_commkey(key: int, session: int, ticks: int = 50) -> bytes:
    """The CMD_AUTH token for a numeric comm key (docs/zkteco.md §1.3)."""
    k = 0
    for i in range(32):
        k = (k << 1) | ((key >> i) & 1)
    k = (k + session) & 0xFFFFFFFF
    b = bytes(x ^ y for x, y in zip(struct.pack("<I", k), b"ZKSO", strict=True))
    b = b[2:4] + b[0:2]
    t = ticks & 0xFF
    return bytes((b[0] ^ t, b[1] ^ t, t, b[3] ^ t))


def encode_time(t: datetime) -> int:
    return (
        ((t.year % 100) * 12 * 31 + (t.month - 1) * 31 + t.day - 1) * 86400
        + (t.hour * 60 + t.minute) * 60
        + t.second
    )


def decode_time(v: int) -> datetime:
    second, v = v % 60, v // 60
    minute, v = v % 60, v // 60
    hour, v = v % 24, v // 24
    day, v = v % 31 + 1, v // 31
    month, v = v % 12 + 1, v // 12
    return datetime(v + 2000, month, day, hour, minute, second)


def encode_event_time(t: datetime) -> bytes:
    return bytes((t.year - 2000, t.month, t.day, t.hour, t.minute, t.second))


def decode_event_time(b: bytes) -> datetime:
    return datetime(b[0] + 2000, b[1], b[2], b[3], b[4], b[5])


def encode_attendance(
    size: int, uid: int, user_id: str, when: datetime | int, verify: int, punch: int
) -> bytes:
    """One attendance record in the layout of `size` (8, 16, 40 or ≥40 bytes); `when` may be a
    packed time already (to write what broken firmware writes)."""
    t = when if isinstance(when, int) else encode_time(when)
    if size == 8:
        return struct.pack("<HBIB", uid, verify, t, punch)
    if size == 16:
        return struct.pack("<IIBB2sI", int(user_id), t, verify, punch, b"\x00\x00", 0)
    rec = struct.pack("<H24sBIB8s", uid, user_id.encode()[:24], verify, t, punch,
                      b"\x00\x00\x00\x00\xff\x00\x00\x00")  # fmt: skip
    return rec + b"\x00" * (size - 40)


#: struct formats of the attendance layouts: (uid | user id, verify, time, punch) in some order
_ATT8 = struct.Struct("<HBIB")
_ATT16 = struct.Struct("<IIBB6x")
_ATT40 = struct.Struct("<H24sBIB")


def decode_attendance(size: int, data: bytes) -> list[tuple[int, str, int, int, int]]:
    """Records of `size` bytes → (uid, user_id, packed time, first byte, second byte).

    The two bytes are (verify, punch) in pyzk's reading; firmware that swaps them is handled by
    the caller. For 8-byte records user_id is "" (resolve the uid through the user table)."""
    n = len(data) // size
    out: list[tuple[int, str, int, int, int]] = []
    if size == 8:
        for uid, a, t, b in _ATT8.iter_unpack(data[: n * 8]):
            out.append((uid, "", t, a, b))
    elif size == 16:
        for user, t, a, b in _ATT16.iter_unpack(data[: n * 16]):
            out.append((0, str(user), t, a, b))
    elif size >= 40:
        unpack = _ATT40.unpack_from
        for off in range(0, n * size, size):
            uid, user, a, t, b = unpack(data, off)
            out.append((uid, user.split(b"\x00", 1)[0].decode(errors="replace"), t, a, b))
    else:
        raise ValueError(f"unsupported attendance record size {size}")
    return out


def encode_user(size: int, uid: int, user_id: str, name: str, card: int = 0) -> bytes:
    if size == 28:
        return struct.pack("<HB5s8sIxBhI", uid, 0, b"", name.encode()[:8], card, 1, 0, int(user_id))
    return struct.pack("<HB8s24sIx7sx24s", uid, 0, b"", name.encode()[:24], card, b"1",
                       user_id.encode()[:24])  # fmt: skip
