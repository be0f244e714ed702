"""MQTT test helpers: a real Mosquitto on a free port (with persistence, restartable), a paho
publisher, config builders and waits. Fixtures here are imported by the MQTT test modules."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from hub_helpers import running, wait_until, wait_until_sync  # noqa: F401 (re-exported)
from paho.mqtt.enums import CallbackAPIVersion

from spotme_hub.config import HubConfig
from spotme_hub.service import config_from_dict

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def aio(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body with asyncio.run (no pytest plug-in needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A Mosquitto process of our own; `restart()` keeps its persistent sessions."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            f"user {getpass.getuser()}\n"  # as root it would switch to 'mosquitto' (no access)
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 200000\n"
            "max_inflight_messages 1000\n"
            f"log_dest file {self.dir}/mosquitto.log\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "log_type subscribe\n"
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.dir / 'mosquitto.log').read_text()}")
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its persistence file on the way out."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def subscribed(self, client_id: str, topic_filter: str) -> bool:
        """True once the broker logged `client_id` subscribing to `topic_filter`."""
        log = self.dir / "mosquitto.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return any(
            f" {client_id} " in line and line.rstrip().endswith(f" {topic_filter}")
            for line in text.splitlines()
        )

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is not installed (scripts/test installs it)")
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


class Publisher:
    """A paho publisher that waits for every QoS 1 PUBACK (so 'published' means 'in the broker')."""

    def __init__(self, broker: Broker, client_id: str = "test-publisher"):
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: Any, qos: int = 1, retain: bool = False) -> None:
        if not isinstance(payload, str | bytes):
            import orjson

            payload = orjson.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos:
            info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def hub_config(tmp_path: Path, devices: list[dict[str, Any]], **hub: Any) -> dict[str, Any]:
    return {
        "hub": {"id": "t-hub", "data_dir": str(tmp_path / "data"), "sqlite_synchronous": "NORMAL"}
        | hub,
        "offices": [{"id": "hq", "state": "PJY"}],
        "employees": [{"id": "E1", "user_ids": ["1"], "cards": ["0008844356"]}],
        "devices": devices,
        "api": {"enabled": False},
    }


def make_hub_config(tmp_path: Path, devices: list[dict[str, Any]], **hub: Any) -> HubConfig:
    return config_from_dict(hub_config(tmp_path, devices, **hub), base_dir=tmp_path)
