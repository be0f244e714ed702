"""`kind: mqtt` — door controllers, DIY readers and smart locks that publish to an MQTT broker.

The whole story (guarantees, options, presets, mapping engine) is in docs/mqtt.md. In short:
persistent session (stable client id; MQTT 5 clean start off + session expiry, 3.1.1 clean session
off; `session_present` in health); manual acks sent only after `ctx.submit()` committed the batch,
in receipt order; identity of punches without a trustworthy time = payload hash + first receipt,
remembered in a checkpoint so DUP redeliveries map to the same record; at most `max_inflight`
unacked messages and a bounded hand-over (the network side stops reading when it is full);
reconnects by the runtime (exponential backoff + jitter), never TLS → plaintext; QoS 2 refused.
The paho client itself runs in a process of its own (`mqtt_link`), so receiving and committing
do not share one interpreter lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import multiprocessing
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from ...config import Device
from ...contract import (
    DeviceContext,
    DeviceError,
    HasDemo,
    Options,
    Replayable,
    Streaming,
    sibling,
)
from ...normalize.mapping import Ignored, Mapping, MappingError
from ...record import Flag, RawPunch, Rejection
from .presets import apply_first, mappings_for

if TYPE_CHECKING:  # paho loads in the network process's module when a device starts
    from .link import LinkSettings, Message

_UNTIMED_KEEP = 2000  # recent untimed payload hashes kept for DUP redeliveries
_PIPELINE = 4  # batches being committed at once


class MqttOptions(Options):
    broker: str = Field(description="mqtt://host[:1883] or mqtts://host[:8883] (TLS).")
    username: str | None = None
    password: SecretStr | None = None
    ca_file: str | None = Field(None, description="mqtts: CA bundle (default: system CAs).")
    cert_file: str | None = Field(None, description="mqtts: client certificate (mutual TLS).")
    key_file: str | None = Field(None, description="mqtts: client key.")
    tls_insecure: bool = Field(
        False, description="mqtts: do not verify the broker's certificate (still encrypted)."
    )
    client_id: str | None = Field(
        None, description="Stable client id (default spotme-<hub id>-<device id>)."
    )
    protocol: Literal["5", "3.1.1"] = "5"
    topics: list[str] = Field(min_length=1, description="Topic filters (+ and # allowed).")
    qos: Literal[0, 1] = Field(
        1, description="Subscription QoS. QoS 2 is refused: paho keeps no state across a crash."
    )
    shared_group: str | None = Field(
        None, pattern=r"^[^/+#$]+$", description="Subscribe as $share/<group>/<filter>."
    )
    preset: Literal["tasmota", "esp_rfid", "zigbee2mqtt_lock", "generic"] | None = None
    mapping: Mapping | list[Mapping] | None = None
    ignore_retained: bool = Field(True, description="Skip (and ack) retained messages.")
    punch: str | None = Field(None, description="Punch type when the payload gives none.")
    session_expiry_s: int = Field(7 * 86400, ge=1, description="MQTT 5 session expiry.")
    keepalive_s: int = Field(30, ge=5, le=65535)
    max_inflight: int = Field(1000, ge=1, le=65535, description="Unacked messages at most.")
    batch_max: int = Field(
        250, ge=1, le=10_000,
        description="Messages per commit at most (smaller batches keep publish→commit latency low).",
    )  # fmt: skip
    connect_timeout_s: float = Field(15, gt=0)

    @field_validator("protocol", mode="before")
    @classmethod
    def _proto(cls, v: Any) -> Any:
        return {5: "5", "v5": "5", 311: "3.1.1", "3": "3.1.1"}.get(v, str(v))

    @field_validator("broker")
    @classmethod
    def _broker(cls, v: str) -> str:
        u = urlsplit(v)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError("broker must look like mqtt://host:1883 or mqtts://host:8883")
        u.port  # noqa: B018 - raises ValueError on a bad port
        return v

    @field_validator("topics")
    @classmethod
    def _filters(cls, topics: list[str]) -> list[str]:
        for t in topics:
            parts = t.split("/")
            bad = any(("+" in p and p != "+") or ("#" in p and p != "#") for p in parts)
            if not t or bad or "#" in parts[:-1] or t.startswith("$share/"):
                raise ValueError(f"invalid topic filter {t!r} (use shared_group for $share)")
        return topics

    @model_validator(mode="after")
    def _consistent(self) -> MqttOptions:
        tls_opts = self.ca_file or self.cert_file or self.key_file or self.tls_insecure
        if tls_opts and not self.broker.startswith("mqtts://"):
            raise ValueError("TLS options need an mqtts:// broker (no silent plaintext)")
        if self.preset in (None, "generic") and self.mapping is None:
            raise ValueError("give a preset (tasmota, esp_rfid, zigbee2mqtt_lock) or a mapping")
        if self.preset not in (None, "generic") and self.mapping is not None:
            raise ValueError(f"preset {self.preset} has its own mapping; use preset: generic")
        return self


@dataclass(slots=True)
class _Msg:
    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool
    dup: bool
    received_at: datetime

    @classmethod
    def of(cls, m: Message) -> _Msg:
        topic, payload, qos, mid, retain, dup, at = m
        return cls(topic, payload, qos, mid, retain, dup, datetime.fromtimestamp(at, UTC))


class MqttAdapter(Streaming, Replayable, HasDemo):
    kind: ClassVar[str] = "mqtt"
    options_model: ClassVar[type[Options]] = MqttOptions
    #: until its subscriptions are acknowledged: `/readyz` waits, the devices table says so
    starting: ClassVar[str] = "subscribing"

    demo_part = sibling("demo", "part")

    def __init__(self, device: Device, options: MqttOptions):
        self.device = device
        self.opts = options
        self.mappings = mappings_for(options.preset, options.mapping)
        u = urlsplit(options.broker)
        self.tls = u.scheme == "mqtts"
        self.host = u.hostname or ""
        self.port = u.port or (8883 if self.tls else 1883)
        self.where = f"{self.host}:{self.port}"
        self.untimed: OrderedDict[str, str] = OrderedDict()
        self.zone = ""  # the device's time zone, resolved in `run` (it needs the config)

    # -- the session ---------------------------------------------------------------------------
    async def run(self, ctx: DeviceContext) -> None:
        opts = self.opts
        client_id = opts.client_id or f"spotme-{ctx.config.hub.id}-{self.device.id}"
        self.untimed = OrderedDict((k, v) for k, v in (ctx.checkpoint("untimed", []) or []))
        self.zone = self.device.zone
        filters = [
            f"$share/{opts.shared_group}/{t}" if opts.shared_group else t for t in opts.topics
        ]
        from .link import LinkSettings

        path = lambda p: str(ctx.config.resolve_path(p)) if p else None  # noqa: E731
        settings = LinkSettings(
            host=self.host, port=self.port, client_id=client_id, v5=opts.protocol == "5",
            subscriptions=[(f, opts.qos, opts.ignore_retained) for f in filters],
            keepalive_s=opts.keepalive_s, session_expiry_s=opts.session_expiry_s,
            max_inflight=opts.max_inflight, batch_max=opts.batch_max, username=opts.username,
            password=opts.password.get_secret_value() if opts.password else None,
            tls=self.tls, tls_insecure=opts.tls_insecure,
            tls_files={"ca_certs": path(opts.ca_file), "certfile": path(opts.cert_file),
                       "keyfile": path(opts.key_file)},
        )  # fmt: skip
        link = _Link(asyncio.get_running_loop(), settings, f"spotme-mqtt-{self.device.id}")
        tasks: list[asyncio.Task[None]] = []
        try:
            present = await link.first(link.connack, opts.connect_timeout_s, "CONNACK")
            # a resumed session delivers its backlog right after CONNACK, before our SUBACK:
            # consume from now on
            consumer = asyncio.create_task(self._consume(ctx, link))
            tasks.append(consumer)
            codes = await link.first(link.suback, opts.connect_timeout_s, "SUBACK", consumer)
            refused = [f for f, c in zip(filters, codes, strict=False) if c >= 0x80]
            if refused:
                raise DeviceError("unauthorized", f"broker refused subscription to {refused}")
            if not present:
                ctx.count("sessions_new")
                ctx.log.warning(
                    "broker %s had no session for client id %s: messages published while the "
                    "hub was away are not there (first start, expired session or broker reset)",
                    self.where, client_id,
                )  # fmt: skip
            ctx.mark_up(broker=self.where, client_id=client_id, session_present=present,
                        subscribed=filters)  # fmt: skip
            await consumer
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await link.close()  # unacked messages stay in the broker's session

    async def _consume(self, ctx: DeviceContext, link: _Link) -> None:
        """Drain the hand-over queue in batches. Up to `_PIPELINE` batches are being committed at
        once (the group writer merges them into one transaction); acks still go out in receipt
        order, each batch's only after its own commit."""
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(_PIPELINE)
        failed: asyncio.Future[BaseException] = loop.create_future()
        tasks: set[asyncio.Task[None]] = set()
        previous: asyncio.Future[None] | None = None

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            slots.release()
            if not task.cancelled() and task.exception() and not failed.done():
                failed.set_result(task.exception())  # type: ignore[arg-type]

        try:
            while True:
                waiter = asyncio.ensure_future(link.wake.wait())
                watched: list[asyncio.Future[Any]] = [waiter, link.lost, failed]
                done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if link.lost in done or failed in done:
                    waiter.cancel()
                    if failed.done():
                        raise failed.result()
                    raise link.lost.result()
                link.wake.clear()
                inbox = link.inbox
                while inbox:
                    take = min(len(inbox), self.opts.batch_max)
                    batch = [_Msg.of(inbox.popleft()) for _ in range(take)]
                    await slots.acquire()
                    acked: asyncio.Future[None] = loop.create_future()
                    task = asyncio.create_task(self._handle(ctx, link, batch, previous, acked))
                    tasks.add(task)
                    task.add_done_callback(finished)
                    previous = acked
        finally:
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(
        self,
        ctx: DeviceContext,
        link: _Link,
        batch: list[_Msg],
        previous: asyncio.Future[None] | None,
        acked: asyncio.Future[None],
    ) -> None:
        try:
            await self._commit(ctx, batch)
            if previous is not None:
                await previous  # the batch before ours has sent its acks
            # only now: everything in the batch is committed (or was skipped)
            link.ack([(m.mid, m.qos) for m in batch])
            ctx.count("messages", len(batch))
            ctx.mark_seen()
        finally:
            if not acked.done():
                acked.set_result(None)

    async def _commit(self, ctx: DeviceContext, batch: list[_Msg]) -> None:
        punches: list[RawPunch] = []
        rejections: list[Rejection] = []
        untimed_before = len(self.untimed)
        remembered = False
        for m in batch:
            if m.retain and self.opts.ignore_retained:
                ctx.count("retained_ignored")
                continue
            out = self._parse(ctx, m)
            if isinstance(out, Rejection):
                rejections.append(out)
            elif out is not None:
                remembered |= self._identity(out, m)
                punches.append(out)
        if not punches and not rejections:
            return
        checkpoint = None
        if remembered or len(self.untimed) != untimed_before:
            checkpoint = {"untimed": list(self.untimed.items())}
        result = await ctx.submit(punches, rejections, checkpoint=checkpoint)
        redelivered = sum(m.dup for m in batch)
        if redelivered:
            ctx.count("redelivered", redelivered)
            ctx.log.info("%d redelivered message(s); %d punch(es) were already committed",
                         redelivered, len(result.duplicate))  # fmt: skip

    def _parse(self, ctx: DeviceContext, m: _Msg) -> RawPunch | Rejection | None:
        source = {"kind": "mqtt", "topic": m.topic, "broker": self.where}
        try:
            raw = apply_first(self.mappings, m.payload, m.topic, m.received_at,
                              self.zone, source)  # fmt: skip
        except Ignored:
            ctx.count("ignored")
            return None
        except MappingError as exc:
            text, encoding = _payload_text(m.payload)
            return ctx.reject(str(exc), text, {**source, "payload_encoding": encoding})
        if raw.punch is None and self.opts.punch is not None:
            raw.punch = self.opts.punch
        return raw

    def _identity(self, raw: RawPunch, m: _Msg) -> bool:
        """Give punches without a trustworthy device time an identity that survives redelivery.
        Returns True when the remembered set changed."""
        if raw.device_time is not None and Flag.DEVICE_TIME_UNTRUSTED not in raw.flags:
            return False
        digest = hashlib.sha1(m.topic.encode() + b"\0" + m.payload).hexdigest()[:24]
        seen = self.untimed.get(digest)
        if m.dup and seen is not None:
            raw.received_at = datetime.fromisoformat(seen)
            raw.identity = f"mqtt:{digest}:{seen}"
            return False
        stamp = m.received_at.isoformat(timespec="microseconds")
        raw.identity = f"mqtt:{digest}:{stamp}"
        self.untimed[digest] = stamp
        self.untimed.move_to_end(digest)
        while len(self.untimed) > _UNTIMED_KEEP:
            self.untimed.popitem(last=False)
        return True

    # -- quarantine replay ---------------------------------------------------------------------
    @classmethod
    def replay(cls, device: Device, raw: Any, source: dict[str, Any]) -> list[RawPunch] | Rejection:
        opts: MqttOptions = device.options
        payload = bytes.fromhex(raw) if source.get("payload_encoding") == "hex" else str(raw)
        try:
            punch = apply_first(mappings_for(opts.preset, opts.mapping), payload,
                                source.get("topic"), None, device.zone,
                                source)  # fmt: skip
        except (Ignored, MappingError) as exc:
            return Rejection(str(exc), raw, source, device.id)
        if punch.punch is None and opts.punch is not None:
            punch.punch = opts.punch
        return [punch]


class _Link:
    """The adapter's end of the network process (`mqtt_link`): a pipe read by the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, settings: LinkSettings, name: str):
        from .link import serve

        self.loop = loop
        mp = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=serve, args=(settings, child), daemon=True, name=name)
        self.proc.start()
        child.close()
        self.connack: asyncio.Future[bool] = loop.create_future()
        self.suback: asyncio.Future[list[int]] = loop.create_future()
        self.lost: asyncio.Future[DeviceError] = loop.create_future()
        self.inbox: deque[Message] = deque()
        self.wake = asyncio.Event()
        loop.add_reader(self.conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                msg = self.conn.recv()
                if msg[0] == "msgs":
                    self.inbox.extend(msg[1])
                    self.wake.set()
                elif msg[0] == "connack":
                    _settle(self.connack, msg[1])
                elif msg[0] == "suback":
                    _settle(self.suback, msg[1])
                elif msg[0] == "lost":
                    _settle(self.lost, DeviceError(msg[1], msg[2]))
        except (EOFError, OSError):
            self.loop.remove_reader(self.conn.fileno())
            _settle(self.lost, DeviceError("unreachable", "the MQTT network process ended"))

    async def first(
        self, fut: asyncio.Future[Any], timeout: float, what: str, *more: asyncio.Future[Any]
    ) -> Any:
        """`fut`'s result, unless the connection is lost (or one of `more` ends) first."""
        watched = [fut, self.lost, *more]
        done, _ = await asyncio.wait(watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if fut in done:
            return fut.result()
        if self.lost in done:
            raise self.lost.result()
        for other in more:
            if other in done:
                other.result()  # raises why it ended
        raise DeviceError("timeout", f"no {what} from the broker")

    def ack(self, items: list[tuple[int, int]]) -> None:
        if not self.lost.done():
            self.conn.send(("ack", items))

    async def close(self) -> None:
        if not self.conn.closed:
            self.loop.remove_reader(self.conn.fileno())
            with contextlib.suppress(OSError):
                self.conn.send(("stop",))
            self.conn.close()
        await asyncio.to_thread(self.proc.join, 5)
        if self.proc.is_alive():
            self.proc.terminate()
            await asyncio.to_thread(self.proc.join, 5)


def _settle(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _payload_text(payload: bytes) -> tuple[str, str]:
    try:
        return payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return payload.hex(), "hex"
