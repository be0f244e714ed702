"""Hub processes (`spotme-hub run`) against a real Mosquitto: kill -9 while messages stream in
loses nothing and stores nothing twice; two hubs in one shared group split the stream."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from mqtt_helpers import Broker, Publisher, broker, hub_config, wait_until_sync

from spotme_hub.store import Store

__all__ = ["broker"]
ROOT = Path(__file__).resolve().parent.parent


def start_hub(cfg_path: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "spotme_hub.cli", "-v", "run", "-c", str(cfg_path), "--no-api"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def stored(store: Store, device: str) -> list[dict[str, Any]]:
    return [r for r in store.iter_records() if r["device_id"] == device]


@pytest.mark.slow
def test_kill_9_between_receipt_and_commit_redelivers_and_stores_once(
    broker: Broker, tmp_path: Path
) -> None:
    total = 1500  # per device
    devices = [
        # punches with a device time: identity = (device, card, second, punch)
        {"id": "timed", "kind": "mqtt", "office": "hq", "broker": broker.url,
         "preset": "esp_rfid", "topics": ["k/timed/send"], "batch_max": 50},
        # no device time (z2m): identity = payload hash + first receipt, kept across redelivery
        {"id": "untimed", "kind": "mqtt", "office": "hq", "broker": broker.url,
         "preset": "zigbee2mqtt_lock", "topics": ["k/untimed"], "batch_max": 50},
    ]  # fmt: skip
    data = hub_config(tmp_path, devices, sqlite_synchronous="FULL", restart_min_s=0.1)
    cfg = write_config(tmp_path / "hub.yaml", data)
    log = tmp_path / "hub.log"
    store = Store(f"sqlite:///{tmp_path / 'data' / 'hub.db'}")

    # the hub must have subscribed once before anything is published (persistent session)
    proc = start_hub(cfg, log)
    wait_until_sync(lambda: broker.subscribed("spotme-t-hub-timed", "k/timed/send")
                    and broker.subscribed("spotme-t-hub-untimed", "k/untimed"), 60)  # fmt: skip

    def publish() -> None:
        pub = Publisher(broker, "crash-publisher")
        for i in range(total):
            pub.publish("k/timed/send", {"type": "access", "isKnown": "true",
                                         "uid": "86f444", "time": 1700000000 + i})  # fmt: skip
            pub.publish("k/untimed", {"action": "unlock", "action_user": 1, "seq": i})
            if i % 25 == 0:
                time.sleep(0.1)  # a stream over several seconds, so kills land mid-stream
        pub.close()

    publisher = threading.Thread(target=publish)
    publisher.start()
    rng = random.Random(6)
    kills = 0
    try:
        while publisher.is_alive() or kills < 3:
            time.sleep(rng.uniform(0.5, 1.5))
            os.kill(proc.pid, signal.SIGKILL)  # mid-batch: received, maybe committed, not acked
            proc.wait()
            kills += 1
            proc = start_hub(cfg, log)
        publisher.join()
        with contextlib.suppress(AssertionError):  # the asserts below say what is missing
            wait_until_sync(lambda: len(stored(store, "timed")) >= total
                            and len(stored(store, "untimed")) >= total, timeout=60)  # fmt: skip
        time.sleep(1.0)  # anything still redelivered would show up as an extra row now
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    timed = stored(store, "timed")
    untimed = stored(store, "untimed")
    assert kills >= 3
    text = log.read_text()
    print(f"kills: {kills}; redelivery log lines: {text.count('redelivered message')}")
    missing = sorted(set(range(total)) - {int(r["raw"]["time"]) - 1700000000 for r in timed})
    assert len(timed) == total, f"timed: {len(timed)} stored, missing {missing[:20]}"
    assert len({r["occurred_at"] for r in timed}) == total
    missing = sorted(set(range(total)) - {r["raw"]["seq"] for r in untimed})
    assert len(untimed) == total, f"untimed: {len(untimed)} stored, missing {missing[:20]}"
    assert sorted(r["raw"]["seq"] for r in untimed) == list(range(total))


@pytest.mark.slow
def test_two_hubs_in_one_shared_group_split_without_loss_or_duplicate(
    broker: Broker, tmp_path: Path
) -> None:
    total = 2000
    hubs = []
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        dev = {"id": "door", "kind": "mqtt", "office": "hq", "broker": broker.url,
               "preset": "esp_rfid", "topics": ["site/+/send"], "shared_group": "spotme"}  # fmt: skip
        data = hub_config(d, [dev], id=f"hub-{name}")  # distinct hub ids → distinct client ids
        hubs.append((start_hub(write_config(d / "hub.yaml", data), d / "hub.log"),
                     Store(f"sqlite:///{d / 'data' / 'hub.db'}")))  # fmt: skip
    try:
        wait_until_sync(lambda: all(
            broker.subscribed(f"spotme-hub-{n}-door", "$share/spotme/site/+/send") for n in "ab"
        ), timeout=60)  # fmt: skip
        pub = Publisher(broker)
        for i in range(total):
            pub.publish(f"site/d{i % 3}/send", {"type": "access", "isKnown": "true",
                                                "uid": "86f444", "time": 1700000000 + i})  # fmt: skip
        pub.close()
        wait_until_sync(lambda: sum(len(stored(s, "door")) for _, s in hubs) >= total, 120)
        time.sleep(1.0)
    finally:
        for proc, _ in hubs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    a, b = ({r["occurred_at"] for r in stored(s, "door")} for _, s in hubs)
    assert len(a) + len(b) == total  # no duplicate inside either hub
    assert not a & b  # nor across them
    assert len(a | b) == total  # and no loss
    assert a and b  # the group really split the load
