"""Demo part: a Mosquitto of our own on a free port, and door devices publishing to it.

Publishes Tasmota (RDM6300 + Wiegand) and esp-rfid payloads as the real firmwares do, with their
heartbeats, so the `mqtt` devices in configs/demo.yaml have something to ingest. Needs the
`mosquitto` binary (apt install mosquitto); without it the MQTT devices show DOWN and the rest of
the demo runs as usual.
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
from zoneinfo import ZoneInfo

import orjson

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
    local = datetime.now(ZoneInfo("Asia/Kuala_Lumpur")).replace(tzinfo=None, microsecond=0)
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
    try:
        broker = await asyncio.to_thread(start_mosquitto, demo.data_dir / "mosquitto", port)
    except (FileNotFoundError, RuntimeError) as exc:
        demo.note(f"mqtt: no broker ({exc}); the MQTT devices will show DOWN")
        yield
        return
    demo.note(f"mqtt: mosquitto on 127.0.0.1:{port}; Tasmota and esp-rfid doors publish")
    demo.spawn(_publish(demo, port))
    try:
        yield
    finally:
        broker.terminate()
        await asyncio.to_thread(broker.wait, 10)


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
