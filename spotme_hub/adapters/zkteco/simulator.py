"""A ZKTeco terminal on the binary protocol (TCP and UDP, port 4370 on real devices).

Faithful enough that unmodified pyzk talks to it: framing, checksums, session ids, reply
numbers, comm-key auth, options, time, free sizes, users (28/72-byte), attendance in 8, 16, 40
and 49-byte layouts through buffered reads, realtime EF_ATTLOG events, disable/enable, clear,
state. Faults can be injected to rehearse what goes wrong on real sites (docs/zkteco.md).

    sim = ZKSimulator(records=20_000, record_size=40).start()   # free port, background threads
    sim.add_punch("3")                                          # also sent as a realtime event
    sim.stop()
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ...clock import DEFAULT_TZ, zone
from . import wire as w

log = logging.getLogger(__name__)

NAMES = ["Siti", "Tan Wei", "Muthu", "Aisyah", "Dayang", "Lim Mei", "Ahmad", "Nurul", "Kumar"]


@dataclass
class Faults:
    """Injected faults. Counters say how many more times a fault fires (-1 = always)."""

    drop_mid_transfer: int = 0  # cut the connection half-way through a chunk
    delay_s: float = 0.0  # delay replies by this many seconds ...
    delay_replies: int = 0  # ... this many times
    corrupt_checksum: int = 0  # send this many data packets with a wrong checksum
    wrong_count: int = 0  # add this to the record count GET_FREE_SIZES reports
    #: options answered ACK_ERROR, as older firmwares do ("~Platform", ...; "version": the
    #: firmware version query)
    refuse: tuple[str, ...] = ()

    def take(self, name: str) -> bool:
        left = getattr(self, name)
        if left == 0:
            return False
        if left > 0:
            setattr(self, name, left - 1)
        return True


@dataclass
class Punch:
    uid: int
    user_id: str
    when: datetime | int  # an int is a raw packed time (e.g. a corrupt one)
    verify: int = 1
    punch: int = 0


@dataclass
class _Session:
    id: int
    authed: bool
    send: Any  # callable(bytes) -> None
    tcp: bool
    events: int = 0
    buffer: bytes = b""
    alive: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


class ZKSimulator:
    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        udp: bool = False,
        comm_key: int = 0,
        record_size: int = 40,
        users: int = 6,
        records: int = 0,
        serial: str = "SIM0001234567",
        clock_offset_s: float = 0.0,
        punch_every: float | None = None,
        user_size: int | None = None,
        start_time: datetime | None = None,
        faults: Faults | None = None,
        seed: int = 1,
        timezone: str = DEFAULT_TZ,
    ):
        if record_size not in (8, 16) and record_size < 40:
            raise ValueError("record size must be 8, 16 or ≥40 (e.g. 40, 49)")
        self.host, self.port, self.udp = host, port, udp
        self.comm_key = comm_key
        self.record_size = record_size
        self.user_size = user_size or (28 if record_size in (8, 16) else 72)
        self.serial = serial
        self.clock_offset_s = clock_offset_s
        self.punch_every = punch_every
        self.faults = faults or Faults()
        self.tz = zone(timezone)
        self.rng = random.Random(seed)
        self.users = [(i, str(i), NAMES[(i - 1) % len(NAMES)]) for i in range(1, users + 1)]
        self.punches: list[Punch] = []
        self.enabled = True
        self.disable_count = 0
        self.clear_count = 0
        self.state = 0
        self._lock = threading.RLock()
        self._cache: bytes | None = None
        self._sessions: dict[int, _Session] = {}
        self._session_ids = itertools.count(0x3A5C)
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._server: Any = None
        start = start_time or datetime(2026, 1, 5, 7, 30, 0)
        self._add_many(records, start)

    # -- the device's data ------------------------------------------------------------------
    def _add_many(self, n: int, start: datetime) -> None:
        users = self.users or [(1, "1", "x")]
        for i in range(n):
            uid, user_id, _ = users[i % len(users)]
            when = start + timedelta(seconds=37 * i)
            self.punches.append(Punch(uid, user_id, when, 1 + (i % 2) * 14, (i // len(users)) % 2))

    def now(self) -> datetime:
        """The device clock: wall time in the device's zone plus the configured offset."""
        return (self._wall() + timedelta(seconds=self.clock_offset_s)).replace(microsecond=0)

    def _wall(self) -> datetime:
        return datetime.now(self.tz).replace(tzinfo=None)

    def add_punch(self, user_id: str | None = None, punch: int = 0, verify: int = 1,
                  when: datetime | int | None = None) -> Punch:  # fmt: skip
        """Someone punches: appended to the log and sent to sessions that registered events."""
        uid, uid_str = 1, user_id or "1"
        for u, s, _ in self.users:
            if s == uid_str:
                uid = u
        p = Punch(uid, uid_str, when or self.now(), verify, punch)
        with self._lock:
            self.punches.append(p)
            self._cache = None
            sessions = [s for s in self._sessions.values() if s.events & w.EF_ATTLOG]
        for session in sessions:
            self._event(session, p)
        return p

    @property
    def event_listeners(self) -> int:
        """Sessions that registered for realtime attendance events."""
        with self._lock:
            return sum(1 for s in self._sessions.values() if s.events & w.EF_ATTLOG)

    @property
    def record_count(self) -> int:
        return len(self.punches)

    def attlog(self) -> bytes:
        with self._lock:
            if self._cache is None:
                size = self.record_size
                body = b"".join(
                    w.encode_attendance(size, p.uid, p.user_id, p.when, p.verify, p.punch)
                    for p in self.punches
                )
                self._cache = struct.pack("<I", len(body)) + body
            return self._cache

    def user_table(self) -> bytes:
        body = b"".join(w.encode_user(self.user_size, u, s, n) for u, s, n in self.users)
        return struct.pack("<I", len(body)) + body

    def free_sizes(self) -> bytes:
        f = [0] * 23
        f[4], f[6] = len(self.users), 0
        f[8] = len(self.punches) + self.faults.wrong_count
        f[14], f[15], f[16] = 3000, 10000, 200000
        f[17], f[18], f[19] = 3000, 10000 - len(self.users), 200000 - len(self.punches)
        return struct.pack("<23i", *f)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> ZKSimulator:
        """Listen (again, after stop(): same port, same log) in background threads."""
        sim = self
        self._stop.clear()

        if self.udp:

            class UDPHandler(socketserver.BaseRequestHandler):
                def handle(self) -> None:
                    data, sock = self.request
                    addr = self.client_address
                    sim._handle_udp(data, sock, addr)

            self._server = socketserver.ThreadingUDPServer((self.host, self.port), UDPHandler)
        else:

            class TCPHandler(socketserver.BaseRequestHandler):
                def handle(self) -> None:
                    sim._serve_tcp(self.request)

            socketserver.ThreadingTCPServer.allow_reuse_address = True
            self._server = socketserver.ThreadingTCPServer((self.host, self.port), TCPHandler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        t = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                             name="zk-sim", daemon=True)  # fmt: skip
        t.start()
        self._threads.append(t)
        if self.punch_every:
            g = threading.Thread(target=self._generate, name="zk-sim-punches", daemon=True)
            g.start()
            self._threads.append(g)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            for s in self._sessions.values():
                s.alive = False
            self._sessions.clear()

    def __enter__(self) -> ZKSimulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _generate(self) -> None:
        assert self.punch_every
        while not self._stop.wait(self.punch_every):
            if self.enabled and self.users:
                _, user_id, _ = self.rng.choice(self.users)
                self.add_punch(user_id, punch=self.rng.choice([0, 1, 0, 1, 2, 3]),
                               verify=self.rng.choice([1, 4, 15]))  # fmt: skip

    # -- transports -------------------------------------------------------------------------
    def _serve_tcp(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        # a terminal sends PREPARE_DATA, DATA and ACK_OK back to back: no Nagle wait between them
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session: _Session | None = None
        buf = b""
        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 8:
                    if buf[:4] != w.TCP_MAGIC:
                        return  # garbage: a real terminal drops the connection
                    (length,) = struct.unpack_from("<I", buf, 4)
                    if len(buf) < 8 + length:
                        break
                    body, buf = buf[8 : 8 + length], buf[8 + length :]
                    if session is None or not session.alive:
                        session = self._new_session(conn.sendall, tcp=True)
                    if not self._dispatch(session, body):
                        return
        except OSError:
            return
        finally:
            if session is not None:
                self._drop(session)
            with contextlib.suppress(OSError):
                conn.close()

    def _handle_udp(self, data: bytes, sock: socket.socket, addr: Any) -> None:
        if len(data) < 8:
            return
        cmd = w.parse_header(data)[0]
        key = hash(addr)
        with self._lock:
            session = self._sessions.get(key)
        if cmd == w.CMD_CONNECT:
            session = self._new_session(lambda b: sock.sendto(b, addr), tcp=False, key=key)
        elif session is None:
            return  # no session (never connected, or dropped): a terminal stays silent
        with session.lock:  # one UDP client, one command at a time
            if not self._dispatch(session, data):
                self._drop(session, key)

    def _new_session(self, send: Any, tcp: bool, key: int | None = None) -> _Session:
        sid = next(self._session_ids) & 0xFFFF
        s = _Session(id=sid, authed=self.comm_key == 0, send=send, tcp=tcp)
        with self._lock:
            self._sessions[key if key is not None else id(s)] = s
        return s

    def _drop(self, session: _Session, key: int | None = None) -> None:
        session.alive = False
        with self._lock:
            for k, v in list(self._sessions.items()):
                if v is session or k == key:
                    del self._sessions[k]

    # -- the protocol -----------------------------------------------------------------------
    def _reply(self, s: _Session, code: int, reply: int, data: bytes = b"",
               session_field: int | None = None, corrupt: bool = False) -> None:  # fmt: skip
        pkt = bytearray(w.packet(code, s.id if session_field is None else session_field, reply,
                                 data, tcp=s.tcp))  # fmt: skip
        if corrupt:
            off = 10 if s.tcp else 2
            pkt[off] ^= 0x5A
        s.send(bytes(pkt))

    def _dispatch(self, s: _Session, body: bytes) -> bool:
        """Handle one command; False ends the connection."""
        cmd, _chk, _sid, reply = w.parse_header(body)
        data = body[8:]
        if cmd == w.CMD_ACK_OK:  # a client acknowledging a realtime event
            return True
        if not w.checksum_ok(body):
            self._reply(s, w.CMD_ACK_ERROR, reply)
            return True
        if self.faults.delay_s and self.faults.take("delay_replies"):
            time.sleep(self.faults.delay_s)
        if cmd == w.CMD_CONNECT:
            self._reply(s, w.CMD_ACK_OK if s.authed else w.CMD_ACK_UNAUTH, reply)
            return True
        if cmd == w.CMD_AUTH:
            expected = w.make_commkey(self.comm_key, s.id, data[2] if len(data) >= 4 else 0)
            s.authed = s.authed or data[:4] == expected
            self._reply(s, w.CMD_ACK_OK if s.authed else w.CMD_ACK_UNAUTH, reply)
            return True
        if not s.authed:
            self._reply(s, w.CMD_ACK_UNAUTH, reply)
            return True
        handler = self._handlers.get(cmd)
        if handler is None:
            self._reply(s, w.CMD_ACK_UNKNOWN, reply)
            return True
        return handler(self, s, reply, data) is not False

    def _exit(self, s: _Session, reply: int, data: bytes) -> bool:
        self._reply(s, w.CMD_ACK_OK, reply)
        return False

    def _ok(self, s: _Session, reply: int, data: bytes) -> None:
        self._reply(s, w.CMD_ACK_OK, reply)

    def _enable(self, s: _Session, reply: int, data: bytes) -> None:
        self.enabled = True
        self._reply(s, w.CMD_ACK_OK, reply)

    def _disable(self, s: _Session, reply: int, data: bytes) -> None:
        self.enabled = False
        self.disable_count += 1
        self._reply(s, w.CMD_ACK_OK, reply)

    def _version(self, s: _Session, reply: int, data: bytes) -> None:
        if "version" in self.faults.refuse:
            self._reply(s, w.CMD_ACK_ERROR, reply)
            return
        self._reply(s, w.CMD_ACK_OK, reply, b"Ver 6.60 Apr 28 2021\x00")

    def options(self) -> dict[str, str]:
        return {
            "~SerialNumber": self.serial,
            "~Platform": "ZMM220_TFT" if self.record_size >= 40 else "ZEM560",
            "~DeviceName": {8: "F4", 16: "MA300", 40: "iClock680"}.get(
                self.record_size, "MB560-VL"
            ),
            "MAC": "00:17:61:12:34:56",
            "~ZKFPVersion": "10",
            "ZKFaceVersion": "7" if self.record_size >= 49 else "0",
            "~ExtendFmt": "1" if self.record_size >= 40 else "0",
            "~UserExtFmt": "1" if self.user_size == 72 else "0",
            "FaceFunOn": "1" if self.record_size >= 49 else "0",
            "CompatOldFirmware": "0",
            "IPAddress": self.host,
            "NetMask": "255.255.255.0",
            "GATEIPAddress": "0.0.0.0",
            "~OS": "1",
            "WorkCode": "0",
        }

    def _options_rrq(self, s: _Session, reply: int, data: bytes) -> None:
        name = data.split(b"\x00", 1)[0].decode(errors="replace")
        value = None if name in self.faults.refuse else self.options().get(name)
        if value is None:
            self._reply(s, w.CMD_ACK_ERROR, reply)
        else:
            self._reply(s, w.CMD_ACK_OK, reply, f"{name}={value}\x00".encode())

    def _get_time(self, s: _Session, reply: int, data: bytes) -> None:
        self._reply(s, w.CMD_ACK_OK, reply, struct.pack("<I", w.encode_time(self.now())))

    def _set_time(self, s: _Session, reply: int, data: bytes) -> None:
        when = w.decode_time(struct.unpack("<I", data[:4])[0])
        self.clock_offset_s = round((when - self._wall()).total_seconds())
        self._reply(s, w.CMD_ACK_OK, reply)

    def _sizes(self, s: _Session, reply: int, data: bytes) -> None:
        self._reply(s, w.CMD_ACK_OK, reply, self.free_sizes())

    def _state(self, s: _Session, reply: int, data: bytes) -> None:
        self._reply(s, w.CMD_ACK_OK, reply, session_field=self.state)

    def _pin_width(self, s: _Session, reply: int, data: bytes) -> None:
        self._reply(s, w.CMD_ACK_OK, reply, b"\x09")

    def _reg_event(self, s: _Session, reply: int, data: bytes) -> None:
        s.events = struct.unpack("<I", data[:4].ljust(4, b"\x00"))[0]
        self._reply(s, w.CMD_ACK_OK, reply)

    def _clear_attlog(self, s: _Session, reply: int, data: bytes) -> None:
        with self._lock:
            self.punches.clear()
            self._cache = None
            self.clear_count += 1
        self._reply(s, w.CMD_ACK_OK, reply)

    def _prepare_buffer(self, s: _Session, reply: int, data: bytes) -> None:
        _one, command, fct, _ext = struct.unpack("<bhii", data[:11])
        if command == w.CMD_ATTLOG_RRQ:
            s.buffer = self.attlog()
        elif command == w.CMD_USERTEMP_RRQ and fct == w.FCT_USER:
            s.buffer = self.user_table()
        else:
            s.buffer = struct.pack("<I", 0)  # templates and other tables: empty
        if len(s.buffer) <= 1000:  # small sets come back at once
            self._reply(s, w.CMD_DATA, reply, s.buffer)
            return
        size = len(s.buffer)
        self._reply(s, w.CMD_ACK_OK, reply, struct.pack("<BIII", 0, size, size, sum(s.buffer[:64])))

    def _read_buffer(self, s: _Session, reply: int, data: bytes) -> bool:
        start, size = struct.unpack("<ii", data[:8])
        chunk = s.buffer[start : start + size]
        self._reply(
            s, w.CMD_PREPARE_DATA, reply, struct.pack("<I", len(chunk)) + b"\x00\x10\x00\x00"
        )
        drop = self.faults.take("drop_mid_transfer")
        parts = (
            [chunk]
            if s.tcp
            else [chunk[i : i + w.UDP_PACKET] for i in range(0, len(chunk), w.UDP_PACKET)]
        )
        corrupt_at = self.rng.randrange(len(parts)) if self.faults.take("corrupt_checksum") else -1
        for i, part in enumerate(parts):
            if drop and i >= len(parts) // 2:
                if s.tcp:  # half a DATA packet, then the line goes dead
                    pkt = w.packet(w.CMD_DATA, s.id, reply, part)
                    s.send(pkt[: len(pkt) // 2])
                return False
            self._reply(s, w.CMD_DATA, reply, part, corrupt=i == corrupt_at)
        self._reply(s, w.CMD_ACK_OK, reply)
        return True

    def _free_data(self, s: _Session, reply: int, data: bytes) -> None:
        s.buffer = b""
        self._reply(s, w.CMD_ACK_OK, reply)

    def _event(self, s: _Session, p: Punch) -> None:
        """A realtime EF_ATTLOG packet: command 500, event code in the session field, reply 0."""
        if isinstance(p.when, int):
            return  # a corrupt log entry makes no realtime event
        when = w.encode_event_time(p.when)
        if self.record_size in (8, 16):
            payload = struct.pack("<IBB", int(p.user_id), p.verify, p.punch) + when
        else:
            extra = 20 if self.record_size >= 49 else 4
            payload = struct.pack("<24sBB", p.user_id.encode(), p.verify, p.punch) + when
            payload += b"\x00" * extra
        with contextlib.suppress(OSError):
            self._reply(s, w.CMD_REG_EVENT, 0, payload, session_field=w.EF_ATTLOG)

    _handlers: dict[int, Any] = {
        w.CMD_EXIT: _exit,
        w.CMD_ENABLEDEVICE: _enable,
        w.CMD_DISABLEDEVICE: _disable,
        w.CMD_GET_VERSION: _version,
        w.CMD_OPTIONS_RRQ: _options_rrq,
        w.CMD_OPTIONS_WRQ: _ok,
        w.CMD_GET_TIME: _get_time,
        w.CMD_SET_TIME: _set_time,
        w.CMD_GET_FREE_SIZES: _sizes,
        w.CMD_STATE_RRQ: _state,
        w.CMD_GET_PINWIDTH: _pin_width,
        w.CMD_REG_EVENT: _reg_event,
        w.CMD_STARTVERIFY: _ok,
        w.CMD_CANCELCAPTURE: _ok,
        w.CMD_REFRESHDATA: _ok,
        w.CMD_CLEAR_ATTLOG: _clear_attlog,
        w.CMD_CLEAR_DATA: _clear_attlog,
        w.CMD_PREPARE_BUFFER: _prepare_buffer,
        w.CMD_READ_BUFFER: _read_buffer,
        w.CMD_FREE_DATA: _free_data,
    }
