"""pyzk 0.9 extended where it falls short — a subclass, not a fork.

pyzk stays the protocol client (connect and comm key, sizes, users, time, enable/disable,
clear). This module adds what large logs and new firmware need:

* the attendance log read sequentially chunk by chunk, each with its own timeout, reply-number
  and checksum checks and tenacity retries; a progress callback per chunk;
* every record size from total ÷ count (8, 16, 40 and ≥40 such as 49-byte firmware);
* realtime EF_ATTLOG events read with proper framing (several events per segment);
* errors classified as `DeviceError` categories (unreachable, timeout, unauthorized, protocol).

pyzk keeps its socket, session and reply number in name-mangled attributes; the three
properties below are the only place this module reaches into them.
"""

from __future__ import annotations

import functools
import socket
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt
from zk import ZK
from zk.exception import ZKErrorConnection, ZKErrorResponse, ZKNetworkError

from ...contract import DeviceError
from . import wire as w

Progress = Callable[[int, int], None]


class ChunkError(Exception):
    """A chunk that came back wrong (bad checksum, short, timed out): worth a retry."""


def classify(exc: BaseException) -> DeviceError:
    """A pyzk / socket exception as the health category an admin understands."""
    if isinstance(exc, DeviceError):
        return exc
    text = str(exc)
    low = text.lower()
    if "unauthenticated" in low or "unauth" in low:
        return DeviceError("unauthorized", "the device refused the comm key (check comm_key)")
    if isinstance(exc, TimeoutError | socket.timeout) or "timed out" in low:
        return DeviceError("timeout", f"no answer in time ({text})")
    if isinstance(exc, ConnectionRefusedError) or "refused" in low:
        return DeviceError("unreachable", f"connection refused ({text})")
    if isinstance(exc, OSError) or any(
        s in low for s in ("broken pipe", "reset", "errno", "closed", "unreachable")
    ):
        return DeviceError("unreachable", text or type(exc).__name__)
    if isinstance(exc, ZKErrorResponse | ZKErrorConnection | ZKNetworkError | struct.error):
        return DeviceError("protocol", text or type(exc).__name__)
    return DeviceError("protocol", f"{type(exc).__name__}: {text}")


class ZKClient(ZK):
    def __init__(self, host: str, port: int = 4370, timeout: float = 10, comm_key: int = 0,
                 udp: bool = False, retries: int = 3):  # fmt: skip
        super().__init__(host, port=port, timeout=timeout, password=comm_key, force_udp=udp,
                         ommit_ping=True)  # fmt: skip
        self.host, self.port, self.udp = host, port, udp
        self.timeout, self.retries = timeout, retries
        self.pending_events: list[bytes] = []
        self._rx = b""

    # -- the pyzk state this extension shares ----------------------------------------------
    @property
    def sock(self) -> socket.socket:
        sock: socket.socket = self._ZK__sock
        return sock

    @property
    def session(self) -> int:
        return int(self._ZK__session_id)

    def _next_reply(self) -> int:
        current: int = getattr(self, "_ZK__reply_id")  # noqa: B009 (pyzk's mangled name)
        reply = (current + 1) % w.USHRT_MAX
        self._ZK__reply_id = reply
        return reply

    # -- connection ------------------------------------------------------------------------
    def open(self) -> ZKClient:
        if not self.udp:  # a clear "unreachable" before pyzk's connect_ex swallows the reason
            try:
                socket.create_connection((self.host, self.port), timeout=self.timeout).close()
            except OSError as exc:
                raise classify(exc) from exc
        try:
            self.connect()
        except Exception as exc:
            raise classify(exc) from exc
        return self

    def close(self) -> None:
        try:
            if getattr(self, "is_connect", False):
                self.disconnect()
        except Exception:
            pass
        finally:
            self.is_connect = False
            with suppress(OSError):
                self.sock.close()

    @contextmanager
    def call(self, what: str) -> Iterator[None]:
        """Run a pyzk call and turn its exceptions into classified DeviceErrors."""
        try:
            yield
        except DeviceError:
            raise
        except Exception as exc:
            err = classify(exc)
            raise DeviceError(err.category, f"{what}: {err.message}") from exc

    # -- framed packet I/O -----------------------------------------------------------------
    def _send(self, command: int, data: bytes = b"", reply: int | None = None) -> int:
        reply = self._next_reply() if reply is None else reply
        pkt = w.packet(command, self.session, reply, data, tcp=not self.udp)
        if self.udp:
            self.sock.sendto(pkt, (self.host, self.port))
        else:
            self.sock.sendall(pkt)
        return reply

    def _recv_exact(self, n: int) -> bytes:
        while len(self._rx) < n:
            more = self.sock.recv(max(65536, n - len(self._rx)))
            if not more:
                raise DeviceError("unreachable", "the device closed the connection mid-transfer")
            self._rx += more
        out, self._rx = self._rx[:n], self._rx[n:]
        return out

    def _recv_packet(self) -> bytes:
        """One packet body (header + data); realtime events met on the way are acknowledged and
        kept in `pending_events`."""
        while True:
            if self.udp:
                body = self.sock.recv(65536)
            else:
                top = self._recv_exact(8)
                if top[:4] != w.TCP_MAGIC:
                    raise ChunkError("lost TCP framing (bad prefix)")
                body = self._recv_exact(struct.unpack("<I", top[4:])[0])
            if len(body) < 8:
                raise ChunkError("short packet")
            if w.parse_header(body)[0] == w.CMD_REG_EVENT:
                self._send(w.CMD_ACK_OK, reply=0)
                self.pending_events.append(body)
                continue
            return body

    def _request(self, command: int, data: bytes = b"") -> tuple[int, bytes, int]:
        """Send a command; (reply code, data, reply number) of the matching answer.
        Stale answers (an earlier reply number, e.g. after a timed-out chunk) are skipped."""
        reply = self._send(command, data)
        while True:
            body = self._recv_packet()
            code, _chk, _sid, rno = w.parse_header(body)
            if rno != reply:
                continue
            if not w.checksum_ok(body):
                raise ChunkError(f"bad checksum in reply to command {command}")
            return code, body[8:], reply

    # -- attendance ------------------------------------------------------------------------
    def read_attlog(self, progress: Progress | None = None) -> bytes:
        """The attendance dataset (uint32 total size + records), read chunk by chunk."""
        self.sock.settimeout(self.timeout)
        self._rx = b""
        with self.call("prepare buffer"):
            cmd = struct.pack("<bhii", 1, w.CMD_ATTLOG_RRQ, 0, 0)
            code, data, _ = self._retry(lambda: self._request(w.CMD_PREPARE_BUFFER, cmd))
        if code == w.CMD_DATA:
            if progress:
                progress(len(data), len(data))
            return data
        if code != w.CMD_ACK_OK or len(data) < 5:
            raise DeviceError("protocol", f"the device refused the attendance read (code {code})")
        size = struct.unpack("<I", data[1:5])[0]
        step = w.MAX_CHUNK_UDP if self.udp else w.MAX_CHUNK_TCP
        parts: list[bytes] = []
        with self.call("read attendance"):
            for start in range(0, size, step):
                n = min(step, size - start)
                parts.append(self._retry(functools.partial(self._read_chunk, start, n)))
                if progress:
                    progress(start + n, size)
            self._request(w.CMD_FREE_DATA)
        return b"".join(parts)

    def _retry(self, fn: Callable[[], Any]) -> Any:
        for attempt in Retrying(stop=stop_after_attempt(self.retries), reraise=True,
                                retry=retry_if_exception_type((ChunkError, TimeoutError))):  # fmt: skip
            with attempt:
                return fn()
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_chunk(self, start: int, size: int) -> bytes:
        code, data, reply = self._request(w.CMD_READ_BUFFER, struct.pack("<ii", start, size))
        if code == w.CMD_DATA:
            if len(data) != size:
                raise ChunkError(f"chunk at {start}: {len(data)} of {size} bytes")
            return data
        if code != w.CMD_PREPARE_DATA:
            raise ChunkError(f"chunk at {start}: unexpected reply {code}")
        want = struct.unpack("<I", data[:4])[0]
        got: list[bytes] = []
        have = 0
        while True:
            body = self._recv_packet()
            c, _chk, _sid, rno = w.parse_header(body)
            if rno != reply:
                continue
            if not w.checksum_ok(body):
                self._drain(reply)
                raise ChunkError(f"chunk at {start}: bad checksum")
            if c == w.CMD_DATA:
                got.append(body[8:])
                have += len(body) - 8
            elif c == w.CMD_ACK_OK:
                break
            else:
                raise ChunkError(f"chunk at {start}: unexpected packet {c}")
        if have != want or want != size:
            raise ChunkError(f"chunk at {start}: {have} of {size} bytes")
        return b"".join(got)

    def _drain(self, reply: int) -> None:
        """Skip the rest of a bad burst (up to its ACK_OK) so the retry starts clean."""
        try:
            while True:
                body = self._recv_packet()
                if w.parse_header(body)[3] == reply and w.parse_header(body)[0] == w.CMD_ACK_OK:
                    return
        except (TimeoutError, ChunkError):
            return

    # -- realtime events -------------------------------------------------------------------
    def register_events(self, flags: int) -> None:
        with self.call("register events"):
            code, _, _ = self._request(w.CMD_REG_EVENT, struct.pack("<I", flags))
        if code != w.CMD_ACK_OK:
            raise DeviceError("protocol", f"the device refused REG_EVENT (code {code})")

    def wait_events(self, timeout: float) -> list[tuple[str, int, int, datetime]]:
        """Attendance events within `timeout` s: (user_id, verify, punch, device time)."""
        self.sock.settimeout(timeout)
        try:
            if not self.pending_events:
                with suppress(TimeoutError):
                    self._recv_packet()  # anything but an event is a stray answer: ignore it
        except DeviceError:
            raise
        except OSError as exc:
            raise classify(exc) from exc
        finally:
            self.sock.settimeout(self.timeout)
        out = []
        for body in self.pending_events:
            if w.parse_header(body)[2] & w.EF_ATTLOG:
                out.extend(parse_events(body[8:]))
        self.pending_events.clear()
        return out


def parse_events(data: bytes) -> list[tuple[str, int, int, datetime]]:
    """EF_ATTLOG payloads by length (10, 12, 14, 32, 36, 37, 52 bytes)."""
    out = []
    while len(data) >= 10:
        n = len(data)
        if n in (10, 14) or (n < 12):
            user, a, b = struct.unpack_from("<HBB", data)
            uid, t, step = str(user), data[4:10], 14 if n == 14 else 10
        elif n < 32:
            user, a, b = struct.unpack_from("<IBB", data)
            uid, t, step = str(user), data[6:12], 12
        else:
            raw, a, b = struct.unpack_from("<24sBB", data)
            uid, t = raw.split(b"\x00", 1)[0].decode(errors="replace"), data[26:32]
            step = {36: 36, 37: 37}.get(n, 52 if n >= 52 else 32)
        with suppress(ValueError):
            out.append((uid, a, b, w.decode_event_time(t)))
        data = data[step:]
    return out
