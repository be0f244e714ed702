"""`kind: mqtt` — door controllers, DIY readers and smart locks that publish to an MQTT broker.

The whole story (guarantees, options, presets, mapping engine) is in docs/mqtt.md. In short:
persistent session (stable client id; MQTT 5 clean start off + session expiry, 3.1.1 clean session
off; `session_present` in health); manual acks sent only after `ctx.submit()` committed the batch,
in receipt order; identity of punches without a trustworthy time = payload hash + first receipt,
remembered in a checkpoint so DUP redeliveries map to the same record; at most `max_inflight`
unacked messages and a bounded hand-over queue (the network thread waits when it is full);
reconnects by the runtime (exponential backoff + jitter), never TLS → plaintext; QoS 2 refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import queue
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import Field, SecretStr, field_validator, model_validator

from ..config import Device
from ..normalize.mapping import Ignored, Mapping, MappingError
from ..normalize.presets import apply_first, mappings_for
from ..record import Flag, RawPunch, Rejection
from .base import DeviceContext, DeviceError, Options

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
    batch_max: int = Field(1000, ge=1, le=10_000, description="Messages per commit at most.")
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


class MqttAdapter:
    kind: ClassVar[str] = "mqtt"
    options_model: ClassVar[type[Options]] = MqttOptions

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

    # -- the session ---------------------------------------------------------------------------
    async def run(self, ctx: DeviceContext) -> None:
        loop = asyncio.get_running_loop()
        opts = self.opts
        v5 = opts.protocol == "5"
        client_id = opts.client_id or f"spotme-{ctx.config.hub.id}-{self.device.id}"
        self.untimed = OrderedDict((k, v) for k, v in (ctx.checkpoint("untimed", []) or []))
        inbox: queue.Queue[_Msg] = queue.Queue(maxsize=opts.max_inflight + opts.batch_max)
        wake = asyncio.Event()
        stop = threading.Event()
        pending = threading.Event()  # a wake-up is already scheduled
        connack: asyncio.Future[bool] = loop.create_future()
        suback: asyncio.Future[list[Any]] = loop.create_future()
        lost: asyncio.Future[str] = loop.create_future()

        def settle(
            fut: asyncio.Future[Any], value: Any = None, exc: Exception | None = None
        ) -> None:
            if not fut.done():
                fut.set_exception(exc) if exc else fut.set_result(value)

        def on_connect(_c: Any, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
            if rc.is_failure:
                cat = "unauthorized" if rc.value in (4, 5, 134, 135, 138) else "protocol"
                err = DeviceError(cat, f"broker refused the connection: {rc}")
                loop.call_soon_threadsafe(settle, connack, None, err)
            else:
                loop.call_soon_threadsafe(settle, connack, bool(flags.session_present))

        def on_subscribe(_c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
            loop.call_soon_threadsafe(settle, suback, list(codes))

        def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(settle, lost, str(rc))

        def on_message(_c: Any, _u: Any, m: paho.MQTTMessage) -> None:
            item = _Msg(m.topic, bytes(m.payload), m.qos, m.mid, m.retain, m.dup, datetime.now(UTC))
            while not stop.is_set():
                try:
                    inbox.put(item, timeout=0.2)  # full: the network thread waits (bounded)
                    break
                except queue.Full:
                    continue
            if not pending.is_set():
                pending.set()
                loop.call_soon_threadsafe(wake.set)

        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if v5 else False,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            manual_ack=True,
            reconnect_on_failure=False,  # the runtime reconnects (backoff + jitter), not paho
        )
        client.on_connect, client.on_subscribe = on_connect, on_subscribe
        client.on_disconnect, client.on_message = on_disconnect, on_message
        if opts.username is not None:
            pw = opts.password.get_secret_value() if opts.password else None
            client.username_pw_set(opts.username, pw)
        if self.tls:
            self._setup_tls(client, ctx)
        props = None
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = opts.session_expiry_s
            props.ReceiveMaximum = opts.max_inflight
        where = f"{self.host}:{self.port}"
        session: dict[str, Any] = {"clean_start": False, "properties": props} if v5 else {}
        try:
            await ctx.to_thread(client.connect, self.host, self.port, opts.keepalive_s, **session)
        except ssl.SSLError as exc:
            raise DeviceError("unauthorized", f"TLS with {where} failed: {exc}") from exc
        except OSError as exc:
            raise DeviceError(
                "unreachable", f"cannot connect to {where}{' with TLS' if self.tls else ''}: {exc}"
            ) from exc

        client.loop_start()  # paho's network thread; it ends when the connection does
        tasks: list[asyncio.Task[None]] = []
        try:
            try:
                present = await asyncio.wait_for(connack, opts.connect_timeout_s)
            except TimeoutError as exc:
                raise DeviceError("timeout", f"no CONNACK from {where}") from exc
            filters = [
                f"$share/{opts.shared_group}/{t}" if opts.shared_group else t for t in opts.topics
            ]
            if v5:
                handling = 2 if opts.ignore_retained else 0
                subs: list[Any] = [(f, SubscribeOptions(qos=opts.qos, retainHandling=handling))
                                   for f in filters]  # fmt: skip
            else:
                subs = [(f, opts.qos) for f in filters]
            # a resumed session delivers its backlog right after CONNACK, before our SUBACK:
            # consume from now on, or a full hand-over queue would stall the network thread
            consumer = asyncio.create_task(self._consume(ctx, client, inbox, wake, pending, lost))
            tasks.append(consumer)
            client.subscribe(subs)
            first: list[asyncio.Future[Any]] = [suback, consumer]
            await asyncio.wait(first, timeout=opts.connect_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            if consumer.done():
                consumer.result()  # raises why it ended
            if not suback.done():
                raise DeviceError("timeout", f"no SUBACK from {where}")
            refused = [
                f for f, c in zip(filters, suback.result(), strict=False) if _code(c) >= 0x80
            ]
            if refused:
                raise DeviceError("unauthorized", f"broker refused subscription to {refused}")
            if not present:
                ctx.count("sessions_new")
                ctx.log.warning(
                    "broker %s had no session for client id %s: messages published while the "
                    "hub was away are not there (first start, expired session or broker reset)",
                    where, client_id,
                )  # fmt: skip
            ctx.mark_up(broker=where, client_id=client_id, session_present=present,
                        subscribed=filters)  # fmt: skip
            await consumer
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            client.disconnect()  # unacked messages stay in the broker's session
            stop.set()  # a network thread waiting on a full queue gives up
            await ctx.to_thread(client.loop_stop)

    async def _consume(
        self,
        ctx: DeviceContext,
        client: paho.Client,
        inbox: queue.Queue[_Msg],
        wake: asyncio.Event,
        pending: threading.Event,
        lost: asyncio.Future[str],
    ) -> None:
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
                waiter = asyncio.ensure_future(wake.wait())
                watched: list[asyncio.Future[Any]] = [waiter, lost, failed]
                done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if lost in done or failed in done:
                    waiter.cancel()
                    if failed.done():
                        raise failed.result()
                    raise DeviceError("unreachable", f"connection lost: {lost.result()}")
                wake.clear()
                pending.clear()
                while True:
                    batch: list[_Msg] = []
                    while len(batch) < self.opts.batch_max:
                        try:
                            batch.append(inbox.get_nowait())
                        except queue.Empty:
                            break
                    if not batch:
                        break
                    await slots.acquire()
                    acked: asyncio.Future[None] = loop.create_future()
                    task = asyncio.create_task(self._handle(ctx, client, batch, previous, acked))
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
        client: paho.Client,
        batch: list[_Msg],
        previous: asyncio.Future[None] | None,
        acked: asyncio.Future[None],
    ) -> None:
        try:
            await self._commit(ctx, batch)
            if previous is not None:
                await previous  # the batch before ours has sent its acks
            for m in batch:  # only now: everything in the batch is committed (or was skipped)
                client.ack(m.mid, m.qos)
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
                              self._zone(ctx), source)  # fmt: skip
        except Ignored:
            ctx.count("ignored")
            return None
        except MappingError as exc:
            text, encoding = _payload_text(m.payload)
            return ctx.reject(str(exc), text, {**source, "payload_encoding": encoding})
        if raw.punch is None and self.opts.punch is not None:
            raw.punch = self.opts.punch
        return raw

    def _zone(self, ctx: DeviceContext) -> str:
        return self.device.timezone or ctx.config.office(self.device.office).timezone

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

    def _setup_tls(self, client: paho.Client, ctx: DeviceContext) -> None:
        o = self.opts
        path = lambda p: str(ctx.config.resolve_path(p)) if p else None  # noqa: E731
        try:
            client.tls_set(ca_certs=path(o.ca_file), certfile=path(o.cert_file),
                           keyfile=path(o.key_file), cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
        except (OSError, ssl.SSLError) as exc:
            raise DeviceError("config", f"TLS files: {exc}") from exc
        if o.tls_insecure:
            client.tls_insecure_set(True)

    # -- quarantine replay ---------------------------------------------------------------------
    @classmethod
    def replay(cls, device: Device, raw: Any, source: dict[str, Any]) -> list[RawPunch] | Rejection:
        opts: MqttOptions = device.options
        payload = bytes.fromhex(raw) if source.get("payload_encoding") == "hex" else str(raw)
        try:
            punch = apply_first(mappings_for(opts.preset, opts.mapping), payload,
                                source.get("topic"), None, device.timezone or "Asia/Kuala_Lumpur",
                                source)  # fmt: skip
        except (Ignored, MappingError) as exc:
            return Rejection(str(exc), raw, source, device.id)
        if punch.punch is None and opts.punch is not None:
            punch.punch = opts.punch
        return [punch]


def _code(c: Any) -> int:
    return int(c.value if hasattr(c, "value") else c)


def _payload_text(payload: bytes) -> tuple[str, str]:
    try:
        return payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return payload.hex(), "hex"
