"""The shared mapping engine (`normalize/mapping.py`) and the MQTT presets built on it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mqtt_helpers import hub_config

from spotme_hub.adapters.mqtt.presets import PRESETS, apply_first
from spotme_hub.normalize.mapping import Ignored, Mapping, MappingError, lookup, parse_time
from spotme_hub.record import Flag
from spotme_hub.service import config_from_dict, load_config
from spotme_hub.yamlsource import ConfigError

NOW = datetime(2026, 11, 23, 1, 0, 0, tzinfo=UTC)
KL = "Asia/Kuala_Lumpur"


def m(**spec: Any) -> Mapping:
    return Mapping.model_validate(spec)


# -- paths, rules, value maps -------------------------------------------------------------------
def test_lookup_paths_lists_and_topic_segments() -> None:
    doc = {"a": {"b": [{"c": 1}, {"c": 2}]}, "x": None}
    segs = ["tele", "lobby", "SENSOR"]
    assert lookup(doc, "a.b[1].c") == 2
    assert lookup(doc, "a.b[-1].c") == 2
    assert lookup(doc, "a.b[5].c") is None
    assert lookup(doc, "a.zz") is None
    assert lookup(doc, "a.b.c") is None  # b is a list, not a dict
    assert lookup(doc, "topic[1]", segs) == "lobby"
    assert lookup(doc, "topic[-1]", segs) == "SENSOR"
    assert lookup(doc, "topic[9]", segs) is None


def test_match_ignore_require_skip_instead_of_quarantine() -> None:
    mp = m(match={"type": ["access", "log"]}, ignore={"isKnown": "false"}, require=["uid"],
           card="uid")  # fmt: skip
    assert mp.apply({"type": "access", "uid": "99"}, received_at=NOW).card == "99"
    assert mp.apply({"type": "LOG", "uid": "99"}, received_at=NOW).card == "99"  # any case
    for doc in ({"type": "heartbeat", "uid": "1"}, {"type": "access"},
                {"type": "access", "uid": "1", "isKnown": "false"},
                {"type": "access", "uid": "1", "isKnown": False}):  # fmt: skip
        with pytest.raises(Ignored):
            mp.apply(doc, received_at=NOW)


def test_value_map_const_default_and_coordinates() -> None:
    mp = m(user_id="emp", punch={"path": "status", "map": {"Masuk": "in", "Keluar": "out"}},
           verify={"const": "face"}, device_serial={"path": "sn", "default": "unknown-sn"},
           latitude="gps.0", longitude="gps.1")  # fmt: skip
    p = mp.apply({"emp": 42, "status": "Keluar", "gps": {"0": "3.1", "1": 101.7}}, received_at=NOW)
    assert (p.user_id, p.punch, p.verify, p.device_serial) == ("42", "out", "face", "unknown-sn")
    assert (p.latitude, p.longitude) == (3.1, 101.7)
    p = mp.apply({"emp": "7", "status": "Rehat"}, received_at=NOW)
    assert p.punch == "Rehat"  # unmapped values pass through; the normaliser decides
    assert p.latitude is None


def test_card_formats() -> None:
    assert m(card={"path": "u", "format": "hex"}).apply({"u": "12345678"}).card == "0x12345678"
    assert m(card={"path": "u", "format": "hex"}).apply({"u": "74-10-37-94"}).card == "0x74103794"
    assert m(card={"path": "u", "format": "decimal"}).apply({"u": 7748328}).card == "7748328"
    with pytest.raises(MappingError, match="hex"):
        m(card={"path": "u", "format": "hex"}).apply({"u": "zz"})
    with pytest.raises(MappingError, match="decimal"):
        m(card={"path": "u", "format": "decimal"}).apply({"u": "86F444"})
    with pytest.raises(MappingError, match="no user id or card"):
        m(card="u").apply({"other": 1})


def test_payload_formats_json_text_empty_broken() -> None:
    with pytest.raises(Ignored):
        m(card="u").apply(b"")
    with pytest.raises(MappingError, match="invalid JSON"):
        m(card="u").apply(b'{"u": "1"')
    with pytest.raises(MappingError, match="UTF-8"):
        m(card="u").apply(b"\xff\xfe")
    text = m(format="text", pattern=r"^(?P<card>\d+)$", card="card", verify={"const": "card"})
    assert text.apply(b"8844356\r\n").card == "8844356"  # ESPHome plain string
    with pytest.raises(MappingError, match="pattern"):
        text.apply(b"hello")


def test_invalid_mappings_are_config_errors() -> None:
    with pytest.raises(ValueError, match="user_id or card"):
        m(time="t")
    with pytest.raises(ValueError, match="needs a pattern"):
        m(format="text", card="c")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        m(format="text", pattern="(", card="c")
    with pytest.raises(ValueError, match="time zone"):
        m(card="c", timezone="Mars/Olympus")


# -- time ---------------------------------------------------------------------------------------
def test_time_strings_naive_offset_and_format() -> None:
    def t(value: Any, **kw: Any) -> datetime | None:
        return m(card="c", time="t", **kw).apply({"c": "1", "t": value}, received_at=NOW,
                                                  default_timezone=KL).device_time  # fmt: skip

    utc = datetime(2026, 11, 23, 0, 1, 2, tzinfo=UTC)
    assert t("2026-11-23T00:01:02Z") == utc
    assert t("2026-11-23T08:01:02+08:00") == utc
    assert t("2026-11-23T08:01:02") == utc  # naive = default (office) zone
    assert t("2026-11-23T01:01:02", timezone="Europe/Amsterdam") == utc  # Tasmota CET default
    assert t("23/11/2026 08:01:02", time_format="%d/%m/%Y %H:%M:%S") == utc
    assert t("1795392062") == utc  # epoch as a string
    assert t(1795392062.0) == utc


def test_untrusted_time_uses_receive_time_or_quarantines() -> None:
    mp = m(card="c", time="t")
    for bad in (
        23852,
        "23852",
        "1970-01-02T00:00:00",
        "not a time",
        True,
        NOW.timestamp() + 2 * 86400,
    ):
        p = mp.apply({"c": "1", "t": bad}, received_at=NOW)
        assert p.device_time is None and Flag.DEVICE_TIME_UNTRUSTED in p.flags, bad
        assert p.received_at == NOW
    with pytest.raises(MappingError, match="before 2000"):
        m(card="c", time="t", bad_time="quarantine").apply({"c": "1", "t": 23852}, received_at=NOW)
    p = mp.apply({"c": "1"}, received_at=NOW)  # no time at all (z2m without last_seen)
    assert p.device_time is None and Flag.DEVICE_TIME_UNTRUSTED in p.flags
    assert p.identity is None  # nothing of its own tells two such punches apart


def test_an_untrusted_time_identifies_the_punch_by_the_time_the_device_sent() -> None:
    """Re-delivered later (MQTT redelivery, an HTTP retry), the same payload is the same punch;
    a bad clock that still ticks keeps two punches apart."""
    mp = m(card="c", time="t", punch="p")
    first = mp.apply({"c": "1", "t": 23852, "p": 0}, received_at=NOW)
    again = mp.apply({"c": "1", "t": 23852, "p": 0}, received_at=NOW + timedelta(seconds=7))
    assert first.identity is not None and first.identity == again.identity
    later = mp.apply({"c": "1", "t": 23853, "p": 0}, received_at=NOW)
    other_card = mp.apply({"c": "2", "t": 23852, "p": 0}, received_at=NOW)
    other_punch = mp.apply({"c": "1", "t": 23852, "p": 1}, received_at=NOW)
    ids = {first.identity, later.identity, other_card.identity, other_punch.identity}
    assert len(ids) == 4
    good = mp.apply({"c": "1", "t": "2026-11-23T08:59:00+08:00", "p": 0}, received_at=NOW)
    assert good.identity is None  # a trusted time: the usual identity key


PLAUSIBLE = st.integers(
    min_value=int(datetime(2000, 1, 2, tzinfo=UTC).timestamp()),
    max_value=int(datetime(2099, 12, 31, tzinfo=UTC).timestamp()),
)
LATE = datetime(2100, 1, 1, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(secs=PLAUSIBLE, micros=st.integers(0, 999_999), as_text=st.booleans())
def test_epoch_seconds_millis_micros_round_trip(secs: int, micros: int, as_text: bool) -> None:
    want = datetime.fromtimestamp(secs, UTC)
    for value, exact in ((secs, want),
                         (secs * 1000 + micros // 1000, want + timedelta(milliseconds=micros // 1000)),
                         (secs * 1_000_000 + micros, want + timedelta(microseconds=micros))):  # fmt: skip
        got, problem = parse_time(str(value) if as_text else value, KL, LATE)
        assert problem is None
        assert got is not None and abs(got - exact) <= timedelta(microseconds=1)


@settings(max_examples=200, deadline=None)
@given(secs=PLAUSIBLE, zone_name=st.sampled_from([KL, "Asia/Kuching", "Europe/Amsterdam", "UTC"]))
def test_naive_means_the_zone_and_offsets_are_kept(secs: int, zone_name: str) -> None:
    instant = datetime.fromtimestamp(secs, UTC)
    local = instant.astimezone(ZoneInfo(zone_name))
    naive_text = local.replace(tzinfo=None).isoformat()
    offset_text = local.isoformat()
    got_naive, p1 = parse_time(naive_text, zone_name, LATE)
    got_offset, p2 = parse_time(offset_text, "UTC", LATE)  # the zone argument is ignored here
    assert p1 is None and p2 is None
    # a naive wall-clock time can be ambiguous at a DST fold (Amsterdam); never off by more
    assert got_naive is not None and abs(got_naive - instant) <= timedelta(hours=1)
    assert got_offset == instant
    if zone_name != "Europe/Amsterdam":
        assert got_naive == instant


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.integers(-(10**6), 946_684_799), st.floats(0, 946_684_799)))
def test_implausible_epochs_are_untrusted(value: float) -> None:
    got, problem = parse_time(value, KL, NOW)
    assert got is None and problem


@settings(max_examples=100, deadline=None)
@given(ahead=st.integers(86_401, 10**8))
def test_far_future_is_untrusted(ahead: int) -> None:
    got, problem = parse_time(NOW.timestamp() + ahead, KL, NOW)
    assert got is None and problem is not None and "future" in problem


def test_aware_datetime_objects_pass_through() -> None:
    when = datetime(2026, 1, 5, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    assert parse_time(when, "UTC", NOW) == (when, None)


# -- presets ------------------------------------------------------------------------------------
def test_tasmota_preset_chooses_the_reader_and_skips_other_sensors() -> None:
    tas = PRESETS["tasmota"]
    p = apply_first(tas, b'{"Time":"2021-01-21T16:04:12","Wiegand":{"UID":7748328,"Size":26}}',
                    "tele/gate/SENSOR", NOW, KL)  # fmt: skip
    assert p.card == "7748328" and p.device_serial == "gate"
    assert p.device_time == datetime(2021, 1, 21, 8, 4, 12, tzinfo=UTC)
    p = apply_first(tas, b'{"Time":"2021-01-21T16:04:12","RDM6300":{"UID":"00112233"}}',
                    "tele/gate/SENSOR", NOW, KL)  # fmt: skip
    assert p.card == "0x00112233"
    with pytest.raises(Ignored):
        apply_first(tas, b'{"Time":"2021-01-21T16:04:12","ENERGY":{"Power":3}}', "tele/x/SENSOR")
    with pytest.raises(MappingError):
        apply_first(tas, b'{"Time":"2021-01-21T16:04:12","PN532":{"UID":"G1"}}', "tele/x/SENSOR")


def test_esp_rfid_string_booleans_and_uptime() -> None:
    esp = PRESETS["esp_rfid"]
    base = {"type": "access", "isKnown": "true", "uid": "f3ec6234", "hostname": "door1"}
    p = apply_first(esp, {**base, "time": 1605991375}, "x/send", NOW, KL)
    assert p.card == "0xf3ec6234" and p.device_time == datetime.fromtimestamp(1605991375, UTC)
    p = apply_first(esp, {**base, "time": 23852}, "x/send", NOW, KL)
    assert Flag.DEVICE_TIME_UNTRUSTED in p.flags and p.device_time is None
    with pytest.raises(Ignored):
        apply_first(esp, {**base, "isKnown": "false", "time": 1605991375}, "x/send", NOW, KL)


# -- the adapter's options (validated with the config file) --------------------------------------
@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (
            {"broker": "mqtt://h", "topics": ["a"], "preset": "tasmota", "ca_file": "ca.pem"},
            "mqtts",
        ),
        ({"broker": "http://h", "topics": ["a"], "preset": "tasmota"}, "mqtt://"),
        ({"broker": "mqtt://h", "topics": ["a/#/b"], "preset": "tasmota"}, "topic filter"),
        ({"broker": "mqtt://h", "topics": ["a"]}, "preset"),
        (
            {"broker": "mqtt://h", "topics": ["a"], "preset": "tasmota", "mapping": {"card": "u"}},
            "generic",
        ),
        ({"broker": "mqtt://h", "topics": ["a"], "preset": "tasmota", "qos": 2}, "qos"),
        (
            {"broker": "mqtt://h", "topics": ["a"], "preset": "generic", "mapping": {"time": "t"}},
            "user_id or card",
        ),
        ({"broker": "mqtt://h", "topics": ["a"], "preset": "tasmota", "colour": "red"}, "colour"),
    ],
)
def test_option_errors_name_the_field(tmp_path: Path, opts: dict[str, Any], message: str) -> None:
    data = hub_config(tmp_path, [{"id": "d", "kind": "mqtt", "office": "hq", **opts}])
    path = tmp_path / "hub.yaml"
    path.write_text(json.dumps(data, indent=2))  # JSON is YAML; one key per line
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert "devices[0]" in str(err.value) and "hub.yaml:" in str(err.value)
    assert all(i.line is not None for i in err.value.issues)


def test_protocol_accepts_yaml_numbers(tmp_path: Path) -> None:
    dev = {"id": "d", "kind": "mqtt", "office": "hq", "broker": "mqtts://h:8883", "protocol": 5,
           "topics": ["a/+"], "preset": "esp_rfid", "tls_insecure": True}  # fmt: skip
    cfg = config_from_dict(hub_config(tmp_path, [dev]), base_dir=tmp_path)
    assert cfg.devices[0].options.protocol == "5"
