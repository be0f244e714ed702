"""MQTT ingest benchmark: publish punches at a target rate for a while (60 s by default) to a real
Mosquitto (started here on a free port) and measure what the hub commits, with the hub's own
default durability (SQLite synchronous=FULL).

    .venv/bin/python bench/mqtt_ingest.py [--seconds 60] [--rate 5000] [--protocol 5]
                                          [--synchronous FULL|NORMAL] [--count N]

Reports, for the hub (paho subscriber → mapping → normalise → SQLite commit → PUBACK) and for a
baseline bare paho subscriber that only receives the same stream (auto-ack, no commit):
throughput, lost count and p50/p99 latency from publish (timestamp inside the payload) to commit
(`hub.commit_listeners`) or to receipt, and CPU per message (the hub's two processes together:
the hub and its MQTT network process; the publisher's share left out). The publisher runs in its
own process, QoS 1, with the lean generator of `bench/mqtt_load.py` (paho as a publisher
costs about a core at this rate on the 2-core machine, which starved the hub under test); its own
CPU per message is printed too. Latency is also given per 10-s window of publishing (its p99):
a run that keeps up on average can still fall behind for a while, and a mean over the whole run
hides it.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mqtt_load  # noqa: E402  (bench/: the load generator)
from steal import StealMeter  # noqa: E402

from spotme_hub.adapters.mqtt.demo import start_mosquitto  # noqa: E402
from spotme_hub.cli.demo import free_port  # noqa: E402
from spotme_hub.service import config_from_dict, open_hub  # noqa: E402

BASE_EPOCH = 1_600_000_000  # every punch its own second: distinct record identities


PUBLISHER_CPU = mp.get_context("spawn").Value("d", 0.0)  # the last publisher's own CPU seconds


def publisher(port: int, count: int, rate: float, client_id: str, cpu: Any = None) -> None:
    def body(i: int) -> bytes:
        return orjson.dumps({"u": str(1 + i % 500), "t": BASE_EPOCH + i, "pt": time.time(), "i": i})

    mqtt_load.publish(port, count, rate, client_id, body)  # to mqtt_load.TOPIC
    if cpu is not None:
        cpu.value = time.process_time()


def publish_in_process(port: int, count: int, rate: float, client_id: str) -> mp.Process:
    proc = mp.get_context("spawn").Process(
        target=publisher, args=(port, count, rate, client_id, PUBLISHER_CPU), daemon=True
    )
    proc.start()
    return proc


WINDOW_S = 10.0


def windows(got: dict[int, tuple[float, float]], first_pub: float) -> list[float]:
    """p99 latency (ms) of the messages published in each 10-s window."""
    by: dict[int, list[float]] = {}
    for pt, lat in got.values():
        by.setdefault(int((pt - first_pub) // WINDOW_S), []).append(lat)
    out = []
    for k in sorted(by):
        lats = sorted(by[k])
        out.append(lats[min(len(lats) - 1, int(0.99 * len(lats)))] * 1000)
    return out


def summary(
    name: str, count: int, got: dict[int, tuple[float, float]], first_pub: float, last: float
) -> dict[str, Any]:
    lat = sorted(v[1] for v in got.values())
    elapsed = max(last - first_pub, 1e-9)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {"name": name, "received": len(got), "lost": count - len(got),
            "throughput": len(got) / elapsed, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "mean_ms": statistics.fmean(lat) * 1000 if lat else float("nan"),
            "window_p99_ms": windows(got, first_pub)}  # fmt: skip


def baseline(port: int, count: int, rate: float, protocol: str) -> dict[str, Any]:
    got: dict[int, tuple[float, float]] = {}
    done = threading.Event()
    first = [0.0]
    last = [0.0]
    v5 = protocol == "5"
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-baseline",
                         protocol=paho.MQTTv5 if v5 else paho.MQTTv311)  # fmt: skip

    def on_message(_c: Any, _u: Any, m: paho.MQTTMessage) -> None:
        now = time.time()
        body = orjson.loads(m.payload)
        if not first[0]:
            first[0] = body["pt"]
        got[body["i"]] = (body["pt"], now - body["pt"])
        last[0] = now
        if len(got) >= count:
            done.set()

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe("bench/#", qos=1)
    client.loop_start()
    time.sleep(0.5)
    proc = publish_in_process(port, count, rate, "bench-pub-baseline")
    proc.join()
    done.wait(max(10.0, count / rate))
    client.disconnect()
    client.loop_stop()
    return summary("bare paho subscriber (baseline)", count, got, first[0], last[0])


async def hub_run(
    port: int, count: int, rate: float, protocol: str, tmp: Path, synchronous: str
) -> dict[str, Any]:
    cfg = config_from_dict(
        {
            "hub": {"id": "bench", "data_dir": str(tmp / "data"), "sqlite_synchronous": synchronous},
            "offices": [{"id": "hq", "state": "PJY"}],
            "api": {"enabled": False},
            "devices": [{
                "id": "door", "kind": "mqtt", "office": "hq", "protocol": protocol,
                "broker": f"mqtt://127.0.0.1:{port}", "topics": ["bench/#"], "preset": "generic",
                "mapping": {"user_id": "u", "time": "t", "punch": {"const": "in"}},
            }],
        },
        base_dir=tmp,
    )  # fmt: skip
    hub = open_hub(cfg)
    got: dict[int, tuple[float, float]] = {}
    first = [0.0]
    last = [0.0]

    def on_commit(records: Any, result: Any) -> None:
        now = time.time()
        new = set(result.new)
        for r in records:
            if r.id in new:
                if not first[0]:
                    first[0] = r.raw["pt"]
                got[r.raw["i"]] = (r.raw["pt"], now - r.raw["pt"])
        last[0] = now

    hub.commit_listeners.append(on_commit)
    await hub.start()
    while hub.health["door"].state != "UP":
        await asyncio.sleep(0.05)
    proc = publish_in_process(port, count, rate, "bench-pub-hub")
    deadline = time.monotonic() + count / rate + 60
    while len(got) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if not proc.is_alive() and len(got) < count:
            await asyncio.sleep(2.0)  # allow the tail to commit, then stop waiting
            if not proc.is_alive():
                deadline = min(deadline, time.monotonic() + 5)
    await hub.stop()
    proc.join(5)
    return summary("spotme-hub (commit, then PUBACK)", count, got, first[0], last[0])


def cpu_seconds() -> float:
    """CPU of this process plus its ended children (the hub's MQTT network process; the
    publisher's own share is taken out by the caller)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to publish")
    ap.add_argument("--rate", type=float, default=5_000.0)
    ap.add_argument("--count", type=int, default=None, help="messages (default: seconds × rate)")
    ap.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    ap.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL",
                    help="the store's durability (FULL: the hub's default)")  # fmt: skip
    args = ap.parse_args()
    args.count = args.count or int(args.seconds * args.rate)
    with tempfile.TemporaryDirectory(prefix="spotme-bench-mqtt-") as d:
        tmp = Path(d)
        port = free_port()
        broker = start_mosquitto(tmp / "broker", port)
        try:
            cpu = cpu_seconds()
            base = baseline(port, args.count, args.rate, args.protocol)
            base["cpu_us"] = (cpu_seconds() - cpu - PUBLISHER_CPU.value) / args.count * 1e6
            pub_us = PUBLISHER_CPU.value / args.count * 1e6
            cpu = cpu_seconds()
            with StealMeter() as steal:
                hub = asyncio.run(
                    hub_run(port, args.count, args.rate, args.protocol, tmp, args.synchronous)
                )
            hub["cpu_us"] = (cpu_seconds() - cpu - PUBLISHER_CPU.value) / args.count * 1e6
        finally:
            broker.terminate()
            broker.wait(10)
    print(f"MQTT ingest: {args.count} punches at a target {args.rate:.0f}/s, QoS 1, "
          f"MQTT {args.protocol}, SQLite synchronous={args.synchronous}")  # fmt: skip
    print(
        f"{'':36} {'received':>9} {'lost':>6} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU µs/msg':>10}"
    )
    for r in (base, hub):
        print(f"{r['name']:36} {r['received']:9d} {r['lost']:6d} {r['throughput']:8.0f} "
              f"{r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['cpu_us']:10.0f}")  # fmt: skip
    for r in (base, hub):
        print(f"{r['name']:36} p99 per 10-s window (ms): "
              + " ".join(f"{w:.0f}" for w in r["window_p99_ms"]))  # fmt: skip
    print(f"load generator (bench/mqtt_load.py): {pub_us:.0f} µs CPU per message")
    ratio = hub["throughput"] / base["throughput"] if base["throughput"] else float("nan")
    print(f"hub / baseline throughput: {ratio:.2f}")
    print(f"during the hub's run, {steal.text()} (time the VM's host gave to other guests)")
    worst = max(hub["window_p99_ms"], default=float("nan"))
    ok = hub["lost"] == 0 and hub["throughput"] >= 0.95 * args.rate and worst <= 100
    print(f"targets (≥ rate, 0 lost, p99 ≤ 100 ms in every 10-s window; worst {worst:.0f} ms):",
          "met" if ok else "NOT met")  # fmt: skip


if __name__ == "__main__":
    main()
