"""A lean MQTT load generator for the benchmarks: paced QoS 1 publishes over one plain socket.

Why not paho here: on the 2-core benchmark machine a paho publisher costs 136–216 µs of CPU per
message (its network thread, per-message locks and objects), about one whole core at 5,000/s —
as much as the hub under test, on the same two cores. The door devices it stands for do not run
on the hub's machine, so the benchmark uses this generator instead (about 30 µs per message):
MQTT 3.1.1, clean session, packets encoded by hand, sent in bursts every millisecond at the
target rate, each payload stamped with its send time. The hub itself always uses paho.

    publish(port, count, rate, client_id, payload)  # returns when the broker acked every message
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

TOPIC = "bench/door/punch"

_CONNACK_OK = b"\x20\x02\x00\x00"
_PUBACK = 0x40


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _connect_packet(client_id: str, keepalive: int = 60) -> bytes:
    cid = client_id.encode()
    # protocol name, level 4 (3.1.1), flags: clean session, keepalive; then the client id
    body = b"\x00\x04MQTT\x04\x02" + keepalive.to_bytes(2, "big")
    body += len(cid).to_bytes(2, "big") + cid
    return b"\x10" + _remaining_length(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    """One PUBLISH, QoS 1, not retained."""
    rest = len(topic).to_bytes(2, "big") + topic + packet_id.to_bytes(2, "big") + payload
    return b"\x32" + _remaining_length(len(rest)) + rest


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise ConnectionError("broker closed the connection")
        data += part
    return data


class _Acks:
    """Counts PUBACKs in the broker's byte stream (3.1.1: 0x40, length 2, packet id)."""

    def __init__(self) -> None:
        self.count = 0
        self._buf = b""

    def feed(self, data: bytes) -> None:
        buf = self._buf + data
        k = 0
        while len(buf) - k >= 2:
            kind, length = buf[k], buf[k + 1]
            if len(buf) - k < 2 + length:
                break
            if kind & 0xF0 == _PUBACK:
                self.count += 1
            k += 2 + length
        self._buf = buf[k:]


def publish(
    port: int,
    count: int,
    rate: float,
    client_id: str,
    payload: Callable[[int], bytes],
    host: str = "127.0.0.1",
    topic: str = TOPIC,
    timeout_s: float = 120.0,
) -> None:
    """Publish `payload(i)` for i in 0..count-1 at `rate` per second (QoS 1) and return once the
    broker has acknowledged all of them. `payload` is called just before its message is sent."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.sendall(_connect_packet(client_id))
        if _recv_exact(sock, 4) != _CONNACK_OK:
            raise ConnectionError("broker refused the connection")
        sock.settimeout(0.001)  # the pacing tick: wait for acks at most this long
        name = topic.encode()
        acks = _Acks()
        start = time.perf_counter()
        deadline = time.monotonic() + count / rate + timeout_s
        sent = 0
        while acks.count < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"broker acked {acks.count} of {count} messages")
            due = min(count, int((time.perf_counter() - start) * rate) + 1)
            if sent < due:
                burst = [publish_packet(name, i % 65535 + 1, payload(i)) for i in range(sent, due)]
                sock.settimeout(10)
                sock.sendall(b"".join(burst))
                sock.settimeout(0.001)
                sent = due
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionError("broker closed the connection")
            acks.feed(data)
        sock.sendall(b"\xe0\x00")  # DISCONNECT
    finally:
        sock.close()
