"""The network side of `kind: mqtt`, in a process of its own.

paho-mqtt is pure Python: receiving a QoS 1 message and sending its PUBACK costs about as much CPU
as mapping, normalising and committing it. In one process both halves share one interpreter lock;
here the paho client runs in a child process (one thread, paho's external-loop API over `select`)
and talks to the adapter through a pipe:

    child → adapter   ("connack", session_present) | ("suback", [codes]) | ("msgs", [Message])
                      | ("lost", category, text)
    adapter → child   ("ack", [(mid, qos), ...]) | ("stop",)

The child acknowledges nothing on its own: a PUBACK leaves only when the adapter sends "ack",
after the commit. At most `max_inflight + batch_max` messages are handed over and not yet acked;
beyond that the child stops reading its socket (back-pressure up to the broker). When the adapter
process dies the pipe closes and the child disconnects and exits; unacked messages stay in the
broker's session and are redelivered.
"""

from __future__ import annotations

import contextlib
import select
import ssl
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

#: (topic, payload, qos, mid, retain, dup, received at: epoch seconds)
Message = tuple[str, bytes, int, int, bool, bool, float]

_READ_SIZE = 65536
_DRAIN_MAX = 2000  # packets parsed from the buffer before the loop looks at the pipe again


class _BufferedClient(paho.Client):
    """paho reads a packet in three `recv` calls (command byte, length, body) and `loop_read`
    handles one packet per call: at thousands of messages a second that is a `select` and three
    system calls per message. Here one `recv` fills a buffer that those small reads are served
    from, and the loop drains what is buffered before it selects again. Only the socket read
    hook changes; paho's parsing, state and acks are its own."""

    _rbuf = b""
    _rpos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(_READ_SIZE)  # BlockingIOError when nothing is there
            if not data:
                return data  # the connection closed
            self._rbuf, self._rpos = data, 0
        out = self._rbuf[self._rpos : self._rpos + bufsize]
        self._rpos += len(out)
        return out

    def buffered(self) -> bool:
        """Bytes already read from the socket and not yet parsed."""
        return self._rpos < len(self._rbuf)


@dataclass(frozen=True)
class LinkSettings:
    host: str
    port: int
    client_id: str
    v5: bool
    subscriptions: list[tuple[str, int, bool]]  # filter, qos, skip retained (MQTT 5)
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 86400
    max_inflight: int = 1000
    batch_max: int = 1000
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_files: dict[str, str | None] = field(default_factory=dict)  # ca_certs, certfile, keyfile
    tls_insecure: bool = False


def serve(s: LinkSettings, conn: Connection) -> None:
    """The child process: connect, subscribe, hand messages over, ack what the adapter says."""
    out: list[Message] = []
    state = {"unacked": 0, "done": False}

    def on_connect(client: paho.Client, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            cat = "unauthorized" if rc.value in (4, 5, 134, 135, 138) else "protocol"
            conn.send(("lost", cat, f"broker refused the connection: {rc}"))
            state["done"] = True
            return
        conn.send(("connack", bool(flags.session_present)))
        if s.v5:
            subs: list[Any] = [
                (f, SubscribeOptions(qos=q, retainHandling=2 if skip else 0))
                for f, q, skip in s.subscriptions
            ]
        else:
            subs = [(f, q) for f, q, _ in s.subscriptions]
        client.subscribe(subs)

    def on_subscribe(_c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        conn.send(("suback", [int(c.value if hasattr(c, "value") else c) for c in codes]))

    def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not state["done"]:  # not our own disconnect at the end
            with contextlib.suppress(OSError):
                conn.send(("lost", "unreachable", f"connection lost: {rc}"))
        state["done"] = True

    def on_message(_c: Any, _u: Any, m: paho.MQTTMessage) -> None:
        out.append((m.topic, bytes(m.payload), m.qos, m.mid, m.retain, m.dup, time.time()))

    client = _BufferedClient(
        CallbackAPIVersion.VERSION2,
        client_id=s.client_id,
        clean_session=None if s.v5 else False,
        protocol=paho.MQTTv5 if s.v5 else paho.MQTTv311,
        manual_ack=True,
        reconnect_on_failure=False,  # the runtime reconnects (backoff + jitter), not paho
    )
    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_disconnect, client.on_message = on_disconnect, on_message
    if s.username is not None:
        client.username_pw_set(s.username, s.password)
    where = f"{s.host}:{s.port}"
    try:
        if s.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED, **s.tls_files)  # type: ignore[arg-type]
            if s.tls_insecure:
                client.tls_insecure_set(True)
        props = None
        if s.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry_s
            props.ReceiveMaximum = s.max_inflight
        session: dict[str, Any] = {"clean_start": False, "properties": props} if s.v5 else {}
        client.connect(s.host, s.port, s.keepalive_s, **session)
    except (OSError, ssl.SSLError, ValueError) as exc:
        if isinstance(exc, ssl.SSLError):
            conn.send(("lost", "unauthorized", f"TLS with {where} failed: {exc}"))
        elif isinstance(exc, FileNotFoundError | ValueError):
            conn.send(("lost", "config", f"TLS files: {exc}"))
        else:
            tls = " with TLS" if s.tls else ""
            conn.send(("lost", "unreachable", f"cannot connect to {where}{tls}: {exc}"))
        conn.close()
        return
    try:
        _loop(client, conn, out, state, s.max_inflight + s.batch_max, s.batch_max)
    except (EOFError, OSError):  # the adapter's process is gone
        pass
    finally:
        state["done"] = True
        client.disconnect()  # unacked messages stay in the broker's session
        conn.close()


def _loop(
    client: _BufferedClient,
    conn: Connection,
    out: list[Message],
    state: dict[str, Any],
    limit: int,
    batch_max: int,
) -> None:
    sock: Any = client.socket()
    misc_at = time.monotonic() + 1.0
    while not state["done"] and sock is not None:
        reading = state["unacked"] + len(out) < limit
        rlist: list[Any] = [conn, sock] if reading else [conn]
        wlist = [sock] if client.want_write() else []
        pending = reading and (
            client.buffered() or (hasattr(sock, "pending") and sock.pending() > 0)
        )
        ready, writable, _ = select.select(rlist, wlist, [], 0 if (out or pending) else 1.0)
        if sock in ready or pending:
            client.loop_read()
            drained = 1
            while client.buffered() and drained < _DRAIN_MAX:
                if state["unacked"] + len(out) >= limit:
                    break  # back-pressure: the rest waits in the buffer
                client.loop_read()
                drained += 1
        if writable:
            client.loop_write()
        if conn in ready:
            try:
                while conn.poll():
                    msg = conn.recv()
                    if msg[0] == "ack":
                        for mid, qos in msg[1]:
                            client.ack(mid, qos)
                        state["unacked"] -= len(msg[1])
                    elif msg[0] == "stop":
                        return
            except (EOFError, OSError):  # the adapter's process is gone
                return
        if out and (len(out) >= batch_max or not (ready or writable)):
            conn.send(("msgs", out[:]))
            state["unacked"] += len(out)
            out.clear()
        if time.monotonic() >= misc_at:
            client.loop_misc()  # keepalive PINGREQ, timeouts
            misc_at = time.monotonic() + 1.0
        sock = client.socket()
