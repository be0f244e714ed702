"""`kind: mqtt` against a real Mosquitto started by the test (see mqtt_helpers.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from mqtt_helpers import Broker, Publisher, aio, broker, make_hub_config, running, wait_until

from spotme_hub.pipeline.runtime import Hub
from spotme_hub.service import load_config, open_hub

__all__ = ["broker"]  # the fixture


def dev(b: Broker, /, **opts: Any) -> dict[str, Any]:
    return {
        "id": opts.pop("id", "door"),
        "kind": "mqtt",
        "office": "hq",
        "broker": b.url,
    } | opts


def records(hub: Hub, device: str = "door") -> list[dict[str, Any]]:
    return [r for r in hub.store.iter_records() if r["device_id"] == device]


def messages(hub: Hub, device: str = "door") -> int:
    return int(hub.health[device].counters.get("messages", 0))


@aio
async def test_tasmota_rdm6300_pn532_wiegand(broker: Broker, tmp_path: Path) -> None:
    cfg = make_hub_config(tmp_path, [dev(broker, preset="tasmota", topics=["tele/+/SENSOR"],
                                         timezone="Europe/Amsterdam", punch="in")])  # fmt: skip
    pub = Publisher(broker)
    async with running(cfg) as hub:
        await wait_until(lambda: hub.health["door"].state == "UP")
        pub.publish(
            "tele/lobby/SENSOR", {"Time": "2020-09-28T17:02:10", "RDM6300": {"UID": "E9F35959"}}
        )
        pub.publish(
            "tele/lobby/SENSOR",
            {"Time": "2019-01-10T18:23:24", "PN532": {"UID": "94D8FC5F", "DATA": ""}},
        )
        pub.publish(
            "tele/gate/SENSOR",
            {"Time": "2021-01-21T16:04:12", "Wiegand": {"UID": 7748328, "Size": 26}},
        )
        pub.publish(
            "tele/lobby/SENSOR", {"Time": "2021-01-21T16:04:12", "AM2301": {"Temperature": 24.1}}
        )
        pub.publish(
            "tele/lobby/SENSOR", {"Time": "2021-01-21T16:05:00", "RDM6300": {"UID": "12345678"}}
        )
        await wait_until(lambda: messages(hub) == 5)
        got = {r["card"]: r for r in records(hub)}
    pub.close()
    assert set(got) == {"3925039449", "2497248351", "0007748328", "0305419896"}  # fmt: skip
    # Tasmota's Time is local time of the device's zone (here CET/CEST), not UTC nor MYT
    assert got["3925039449"]["occurred_at"] == "2020-09-28T15:02:10Z"
    assert got["2497248351"]["occurred_at"] == "2019-01-10T17:23:24Z"
    assert got["0007748328"]["device_serial"] == "gate"
    assert got["0305419896"]["source"]["topic"] == "tele/lobby/SENSOR"  # hex even without A-F
    assert all(r["punch"] == "in" and r["verify"] == "card" for r in got.values())
    assert hub.health["door"].counters["ignored"] == 1  # the temperature sensor


@aio
async def test_esp_rfid(broker: Broker, tmp_path: Path) -> None:
    cfg = make_hub_config(tmp_path, [dev(broker, preset="esp_rfid", topics=["esprfid/+/send"])])
    pub = Publisher(broker)
    access = {"type": "access", "time": 1605991375, "isKnown": "true", "access": "Admin",
              "username": "Siti", "uid": "86f444", "hostname": "esp-lobby"}  # fmt: skip
    async with running(cfg) as hub:
        await wait_until(lambda: hub.health["door"].state == "UP")
        pub.publish("esprfid/lobby/send", access)
        pub.publish(
            "esprfid/lobby/send", {**access, "cmd": "log", "uid": "f3ec6234", "time": 1631240207}
        )
        pub.publish("esprfid/lobby/send", {**access, "uid": "a1b2c3", "time": 23852})  # since boot
        pub.publish("esprfid/lobby/send", {**access, "isKnown": "false", "access": "Denied"})
        pub.publish(
            "esprfid/lobby/send", {"type": "heartbeat", "time": 1605991375, "ip": "10.0.0.9"}
        )
        pub.publish("esprfid/lobby/send", {"type": "boot", "time": 1605991375, "Version": "1.3.3"})
        pub.publish("esprfid/lobby/send", {"type": "WARN", "src": "websrv", "desc": "low heap"})
        await wait_until(lambda: messages(hub) == 7)
        got = {r["card"]: r for r in records(hub)}
    pub.close()
    assert set(got) == {"0008844356", "4092355124", "0010597059"}
    assert got["0008844356"]["employee_id"] == "E1"
    assert got["0008844356"]["occurred_at"] == "2020-11-21T20:42:55Z"
    assert got["0008844356"]["device_serial"] == "esp-lobby"
    untrusted = got["0010597059"]
    assert "device_time_untrusted" in untrusted["flags"]
    assert untrusted["occurred_at"][:10] == untrusted["received_at"][:10]
    assert hub.health["door"].counters["ignored"] == 4


@aio
async def test_zigbee2mqtt_lock(broker: Broker, tmp_path: Path) -> None:
    cfg = make_hub_config(
        tmp_path, [dev(broker, preset="zigbee2mqtt_lock", topics=["zigbee2mqtt/+"])]
    )
    pub = Publisher(broker)
    async with running(cfg) as hub:
        await wait_until(lambda: hub.health["door"].state == "UP")
        pub.publish("zigbee2mqtt/front_lock", {"action": "unlock", "action_source": 0,
                    "action_source_name": "keypad", "action_user": 1, "state": "UNLOCK"})  # fmt: skip
        pub.publish("zigbee2mqtt/front_lock", {"action": "", "state": "UNLOCK"})
        pub.publish(
            "zigbee2mqtt/front_lock",
            {"action": "unlock", "action_source_name": "manual", "state": "UNLOCK"},
        )
        pub.publish("zigbee2mqtt/front_lock", {"action": "lock", "action_user": 1, "state": "LOCK"})
        pub.publish("zigbee2mqtt/back_lock", {"action": "unlock", "action_source_name": "rfid",
                    "action_user": 7, "last_seen": 1732350000123})  # fmt: skip
        await wait_until(lambda: messages(hub) == 5)
        got = records(hub)
    pub.close()
    assert len(got) == 2
    by_user = {r["source_user_id"]: r for r in got}
    assert by_user["1"]["employee_id"] == "E1" and by_user["1"]["verify"] == "password"
    assert by_user["1"]["device_serial"] == "front_lock"
    assert "device_time_untrusted" in by_user["1"]["flags"]  # z2m sends no time by default
    assert by_user["7"]["occurred_at"] == "2024-11-23T08:20:00.123Z"  # last_seen in epoch ms
    assert by_user["7"]["verify"] == "card"


@aio
async def test_zigbee2mqtt_lock_credential_words(broker: Broker, tmp_path: Path) -> None:
    """The words locks put in `action_source_name` (zigbee2mqtt's lock converters, Tuya's
    `unlock_*`), and an agency's own word through `hub.verify_map`."""
    words = {"rfid_card_unlock": "card", "keypad_unlock": "password",
             "fingerprint_unlock": "fingerprint", "unlock_face": "face", "touch_unlock": "other",
             "kad_pekerja": "card"}  # fmt: skip
    cfg = make_hub_config(
        tmp_path, [dev(broker, preset="zigbee2mqtt_lock", topics=["zigbee2mqtt/+"])],
        verify_map={"kad_pekerja": "card"},
    )  # fmt: skip
    pub = Publisher(broker)
    async with running(cfg) as hub:
        await wait_until(lambda: hub.health["door"].state == "UP")
        for slot, word in enumerate(words, start=10):
            pub.publish(f"zigbee2mqtt/lock_{slot}", {"action": "unlock", "action_user": slot,
                        "action_source_name": word, "state": "UNLOCK"})  # fmt: skip
        await wait_until(lambda: messages(hub) == len(words))
        got = records(hub)
    pub.close()
    verify = {r["source_user_id"]: r["verify"] for r in got}
    assert verify == {str(slot): v for slot, v in enumerate(words.values(), start=10)}


GENERIC_YAML = """
hub: {{id: yaml-hub, data_dir: data, sqlite_synchronous: NORMAL}}
offices: [{{id: kch, state: SWK, timezone: Asia/Kuching}}]
employees: [{{id: E9, user_ids: ["S-0042"]}}]
api: {{enabled: false}}
devices:
  - id: gate
    kind: mqtt
    office: kch
    broker: {url}
    protocol: 3.1.1
    topics: [kehadiran/+/punch]
    preset: generic
    mapping:
      match: {{jenis: kehadiran}}
      user_id: pekerja.no
      time: masa
      time_format: "%d/%m/%Y %H:%M:%S"     # naive: read in the office zone (Asia/Kuching)
      punch: {{path: status, map: {{"Masuk": in, "Keluar": out}}}}
      device_serial: topic[1]
      latitude: lokasi.lat
      longitude: lokasi.lng
"""


@aio
async def test_generic_mapping_written_in_yaml(broker: Broker, tmp_path: Path) -> None:
    (tmp_path / "hub.yaml").write_text(GENERIC_YAML.format(url=broker.url))
    cfg = load_config(tmp_path / "hub.yaml")
    pub = Publisher(broker)
    body = {"jenis": "kehadiran", "pekerja": {"no": "S-0042"}, "masa": "23/11/2026 08:01:02",
            "status": "Masuk", "lokasi": {"lat": 1.5533, "lng": 110.3592}}  # fmt: skip
    async with running(cfg) as hub:
        await wait_until(lambda: hub.health["gate"].state == "UP")
        assert hub.health["gate"].detail["session_present"] in (True, False)
        pub.publish("kehadiran/pintu1/punch", body)
        pub.publish(
            "kehadiran/pintu1/punch", {**body, "status": "Keluar", "masa": "23/11/2026 17:30:00"}
        )
        pub.publish("kehadiran/pintu1/punch", {"jenis": "denyut", "uptime": 5})  # heartbeat
        await wait_until(lambda: messages(hub, "gate") == 3)
        got = sorted(records(hub, "gate"), key=lambda r: r["occurred_at"])
    pub.close()
    assert [r["punch"] for r in got] == ["in", "out"]
    assert got[0]["local_time"] == "2026-11-23T08:01:02+08:00"
    assert got[0]["employee_id"] == "E9" and got[0]["device_serial"] == "pintu1"
    assert got[0]["location_source"] == "payload"


@aio
async def test_retained_empty_and_malformed(broker: Broker, tmp_path: Path) -> None:
    pub = Publisher(broker)
    stale = {"type": "access", "time": 1605991375, "isKnown": "true", "uid": "86f444"}
    pub.publish("esprfid/lobby/send", stale, retain=True)  # an old punch someone retained
    cfg = make_hub_config(tmp_path, [dev(broker, preset="esp_rfid", topics=["esprfid/#"])])
    async with running(cfg) as hub:
        await wait_until(lambda: hub.health["door"].state == "UP")
        pub.publish("esprfid/lobby/send", "")  # empty payload (retained delete)
        pub.publish("esprfid/lobby/send", '{"type":"access","time":16059913')  # truncated JSON
        pub.publish("esprfid/lobby/send", b"\x02\xff\xfe")  # not UTF-8
        pub.publish("esprfid/lobby/send", {"type": "access", "time": 1605991375, "uid": "xyz!"})
        pub.publish("esprfid/lobby/send", {**stale, "uid": "f3ec6234"})
        await wait_until(lambda: messages(hub) >= 5)
        got = records(hub)
        quarantined = hub.store.quarantine_items(device_id="door")
    pub.close()
    assert [r["card"] for r in got] == ["4092355124"]  # not the retained 86f444
    assert len(quarantined) == 3
    reasons = " | ".join(q["reason"] for q in quarantined)
    assert "invalid JSON" in reasons and "UTF-8" in reasons and "hex" in reasons
    assert all(q["source"]["topic"] == "esprfid/lobby/send" for q in quarantined)
    assert quarantined[0]["raw"] == '{"type":"access","time":16059913'
    assert (
        quarantined[1]["raw"] == "02fffe" and quarantined[1]["source"]["payload_encoding"] == "hex"
    )


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@aio
async def test_punches_published_while_hub_is_down_arrive_after_restart(
    broker: Broker, tmp_path: Path, protocol: str
) -> None:
    cfg = make_hub_config(tmp_path, [dev(broker, preset="esp_rfid", topics=["door/+/send"],
                                         protocol=protocol)])  # fmt: skip
    pub = Publisher(broker)
    punch = {"type": "access", "isKnown": "true", "uid": "86f444"}
    async with running(cfg) as hub:
        await wait_until(lambda: hub.health["door"].state == "UP")
        pub.publish("door/a/send", {**punch, "time": 1700000000})
        await wait_until(lambda: len(records(hub)) == 1)
    for i in range(1, 51):  # the hub is stopped: the broker keeps them in our session
        pub.publish("door/a/send", {**punch, "time": 1700000000 + i})
    async with running(cfg) as hub:
        await wait_until(lambda: len(records(hub)) == 51)
        # the session flag is recorded once the SUBACK is in, which may follow the first commits
        await wait_until(lambda: hub.health["door"].detail.get("session_present") is True)
    pub.close()


@aio
async def test_broker_restart_mid_stream_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    cfg = make_hub_config(
        tmp_path, [dev(broker, preset="esp_rfid", topics=["door/+/send"])],
        restart_min_s=0.2, restart_max_s=1.0,
    )  # fmt: skip
    punch = {"type": "access", "isKnown": "true", "uid": "86f444"}
    async with running(cfg) as hub:
        await wait_until(lambda: hub.health["door"].state == "UP")
        pub = Publisher(broker, "pub-1")
        for i in range(100):
            pub.publish("door/a/send", {**punch, "time": 1700000000 + i})
        pub.close()
        broker.restart()  # sessions and queued messages survive (persistence)
        pub = Publisher(broker, "pub-2")
        for i in range(100, 200):
            pub.publish("door/a/send", {**punch, "time": 1700000000 + i})
        pub.close()
        await wait_until(lambda: len(records(hub)) == 200, timeout=60)
        assert hub.health["door"].counters["failures"] >= 1  # it did notice the restart
        await asyncio.sleep(0.3)
        assert len(records(hub)) == 200


@aio
async def test_redelivered_untimed_message_keeps_its_identity(
    broker: Broker, tmp_path: Path
) -> None:
    """A z2m unlock has no time: identity = payload hash + first receipt time, so the same bytes
    redelivered with DUP reuse it, while a genuine repeat (DUP off) is a new punch."""
    cfg = make_hub_config(tmp_path, [dev(broker, preset="zigbee2mqtt_lock", topics=["z/+"])])
    pub = Publisher(broker)
    body = {"action": "unlock", "action_source_name": "keypad", "action_user": 1}
    async with running(cfg) as hub:
        await wait_until(lambda: hub.health["door"].state == "UP")
        pub.publish("z/lock", body)
        pub.publish("z/lock", body)  # the same person unlocks again: a second punch
        await wait_until(lambda: len(records(hub)) == 2)
    pub.close()


@aio
async def test_backlog_larger_than_the_hand_over_queue(broker: Broker, tmp_path: Path) -> None:
    """A resumed session's backlog arrives before our SUBACK; with MQTT 3.1.1 the broker does not
    know our receive maximum, so the bounded queue fills and must be drained meanwhile."""
    cfg = make_hub_config(tmp_path, [dev(broker, preset="esp_rfid", topics=["door/+/send"],
                                         protocol="3.1.1", max_inflight=5, batch_max=5)])  # fmt: skip
    pub = Publisher(broker)
    punch = {"type": "access", "isKnown": "true", "uid": "86f444"}
    async with running(cfg) as hub:
        await wait_until(lambda: hub.health["door"].state == "UP")
    for i in range(300):
        pub.publish("door/a/send", {**punch, "time": 1700000000 + i})
    pub.close()
    async with running(cfg) as hub:
        await wait_until(lambda: len(records(hub)) == 300)
        assert hub.health["door"].counters.get("failures", 0) == 0


@aio
async def test_tls_never_falls_back_to_plaintext(broker: Broker, tmp_path: Path) -> None:
    """mqtts:// to a plaintext listener fails the TLS handshake; the hub must not then connect
    without TLS (ThingsBoard's gateway does exactly that on SSLEOFError)."""
    tls_url = broker.url.replace("mqtt://", "mqtts://")
    cfg = make_hub_config(
        tmp_path, [dev(broker, preset="esp_rfid", topics=["a/#"], broker=tls_url)],
        restart_min_s=0.1, restart_max_s=0.2,
    )  # fmt: skip
    async with running(cfg) as hub:
        await wait_until(lambda: hub.health["door"].counters.get("failures", 0) >= 3)
        health = hub.health["door"]
        assert health.state == "DOWN"
        assert "TLS" in (health.last_error or ""), health.last_error
    assert not broker.subscribed("spotme-t-hub-door", "a/#")
    assert "as spotme-t-hub-door" not in (broker.dir / "mosquitto.log").read_text()


@aio
async def test_quarantined_payload_replays_after_the_mapping_is_fixed(
    broker: Broker, tmp_path: Path
) -> None:
    from spotme_hub.pipeline.replay import replay_item

    mapping = {"user_id": "emp", "time": "ts", "punch": {"path": "st", "map": {"Masuk": "in"}}}
    wrong = make_hub_config(tmp_path, [dev(broker, topics=["hr/#"], mapping=mapping)])
    pub = Publisher(broker)
    async with running(wrong) as hub:
        await wait_until(lambda: hub.health["door"].state == "UP")
        pub.publish("hr/gate", {"staff": "1", "ts": "2026-11-23T08:00:00+08:00", "st": "Masuk"})
        await wait_until(lambda: messages(hub) == 1)
        [item] = hub.store.quarantine_items(device_id="door")
    pub.close()
    assert "no user id or card" in item["reason"] and item["source"]["topic"] == "hr/gate"
    fixed = make_hub_config(
        tmp_path, [dev(broker, topics=["hr/#"], mapping={**mapping, "user_id": "staff"})]
    )
    hub = open_hub(fixed)
    outcome = replay_item(fixed, hub.store, item)
    assert outcome.status == "replayed", outcome.detail
    [rec] = records(hub)
    assert (rec["employee_id"], rec["punch"], rec["occurred_at"]) == (
        "E1",
        "in",
        "2026-11-23T00:00:00Z",
    )


@aio
async def test_readyz_waits_until_every_mqtt_device_is_subscribed(
    broker: Broker, tmp_path: Path
) -> None:
    """Until a device's subscriptions are acknowledged it is STARTING (subscribing) and /readyz
    says 503 naming it; a device whose broker never answers stops holding readiness once it
    fails. The silent "broker" is a real socket that accepts and says nothing."""
    import socket

    import httpx
    from mqtt_helpers import hub_config

    from spotme_hub.forward.core_sim import free_port
    from spotme_hub.service import config_from_dict, run_hub

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = free_port()
    data = hub_config(tmp_path, [
        dev(broker, id="door", topics=["t/+"], preset="tasmota"),
        dev(broker, id="gate", topics=["g/+"], preset="tasmota"),
        dev(broker, id="mute", topics=["m/+"], preset="tasmota",
            broker=f"mqtt://127.0.0.1:{silent.getsockname()[1]}", connect_timeout_s=2),
    ])  # fmt: skip
    data["api"] = {"listen": f"127.0.0.1:{port}"}
    stop = asyncio.Event()
    task = asyncio.create_task(run_hub(config_from_dict(data, tmp_path), stop=stop))
    seen_starting: set[str] = set()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            for _ in range(600):
                try:
                    ready = await c.get("/readyz")
                    devices = {d["device_id"]: d for d in (await c.get("/api/v1/devices")).json()}
                except httpx.TransportError:
                    await asyncio.sleep(0.02)
                    continue
                starting = {d for d, row in devices.items() if row["state"] == "STARTING"}
                for d in starting:
                    assert devices[d]["detail"]["starting"] == "subscribing"
                seen_starting |= starting
                if ready.status_code == 200:
                    break
                assert ready.status_code == 503
                assert "devices still starting" in ready.json()["detail"]
                await asyncio.sleep(0.05)
            assert ready.status_code == 200
            devices = {d["device_id"]: d for d in (await c.get("/api/v1/devices")).json()}
    finally:
        stop.set()
        await task
        silent.close()
    assert devices["door"]["state"] == devices["gate"]["state"] == "UP"
    assert devices["mute"]["state"] != "STARTING" and devices["mute"]["last_error"]
    assert "mute" in seen_starting  # it was STARTING while its CONNACK did not come
