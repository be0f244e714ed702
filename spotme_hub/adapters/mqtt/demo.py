"""Demo part: an MQTT broker of our own on a free port, and door devices publishing to it.

The broker is `mosquitto` when installed (MQTT 5), otherwise amqtt's pure-Python broker embedded
in the demo's event loop (MQTT 3.1.1: the demo devices' `protocol` follows). Publishes Tasmota
(RDM6300 + Wiegand) and esp-rfid payloads as the real firmwares do, heartbeats included, so the
`mqtt` devices in the demo's demo.yaml have something to ingest. SPOTME_DEMO_MQTT_BROKER=embedded
uses the embedded broker even when mosquitto is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from ...clock import DEFAULT_TZ, zone

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_PATHS if os.path.exists(p)), None)


def start_mosquitto(workdir: Path, port: int, persistence: bool = False) -> subprocess.Popen[bytes]:
    """Start `mosquitto` on 127.0.0.1:`port` with a config in `workdir`; wait until it listens."""
    binary = mosquitto_binary()
    if binary is None:
        raise FileNotFoundError("mosquitto is not installed (apt install mosquitto)")
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        f"user {getpass.getuser()}",  # started as root it would switch to 'mosquitto'
        "max_queued_messages 200000",
        "max_inflight_messages 1000",
        f"log_dest file {workdir}/mosquitto.log",
    ]
    if persistence:
        lines += ["persistence true", f"persistence_location {workdir}/"]
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"mosquitto did not start on port {port}")


def _payloads(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    now = time.time()
    local = datetime.now(zone(DEFAULT_TZ)).replace(tzinfo=None, microsecond=0)
    tasmota_time = local.isoformat()
    card = rng.choice(["86F444", "E9F35959", "94D8FC5F"])  # 86F444 = Siti's 0008844356
    return [
        ("tele/pjy-lobby/SENSOR", {"Time": tasmota_time, "RDM6300": {"UID": card}}),
        ("tele/pjy-lobby/SENSOR", {"Time": tasmota_time, "Wiegand": {"UID": 8844356, "Size": 26}}),
        ("esprfid/kb-main/send", {"type": "heartbeat", "time": int(now), "ip": "10.1.2.3"}),
        (
            "esprfid/kb-main/send",
            {
                "type": "access",
                "time": int(now),
                "isKnown": "true",
                "access": "Always",
                "username": "Staff",
                "hostname": "kb-main",
                "uid": rng.choice(["86f444", "3a0b21c"]),
            },
        ),  # fmt: skip
    ]


@contextlib.asynccontextmanager
async def part(demo: Any) -> AsyncIterator[None]:
    port = demo.free_port()
    demo.env["DEMO_MQTT_PORT"] = str(port)
    async with contextlib.AsyncExitStack() as stack:
        forced = os.environ.get("SPOTME_DEMO_MQTT_BROKER") == "embedded"  # try the fallback
        if mosquitto_binary() is not None and not forced:
            broker = await asyncio.to_thread(start_mosquitto, demo.data_dir / "mosquitto", port)
            stack.push_async_callback(_stop_process, broker)
            demo.env["DEMO_MQTT_PROTOCOL"] = "5"
            name = "mosquitto"
        else:
            await stack.enter_async_context(_embedded_broker(port))
            demo.env["DEMO_MQTT_PROTOCOL"] = "3.1.1"
            name = "embedded amqtt broker"
        demo.note(f"mqtt: {name} on 127.0.0.1:{port}; Tasmota and esp-rfid doors publish")
        demo.spawn(_publish(demo, port))
        yield


async def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    await asyncio.to_thread(proc.wait, 10)


@contextlib.asynccontextmanager
async def _embedded_broker(port: int) -> AsyncIterator[None]:
    from amqtt.broker import Broker

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        yield
    finally:
        await broker.shutdown()


async def _publish(demo: Any, port: int) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    await demo.started.wait()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="demo-doors")
    await asyncio.to_thread(client.connect, "127.0.0.1", port)
    client.loop_start()
    rng = random.Random()
    try:
        while True:
            topic, body = rng.choice(_payloads(rng))
            client.publish(topic, orjson.dumps(body), qos=1)
            await asyncio.sleep(rng.uniform(1.0, 3.0))
    finally:
        client.disconnect()
        client.loop_stop()
