"""Normalisation: pure functions from a raw punch to the canonical record."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotme_hub.cards import canonical_card
from spotme_hub.normalize import Normalizer
from spotme_hub.normalize.codes import to_punch, to_verify
from spotme_hub.normalize.geo import haversine_m
from spotme_hub.record import (
    RECORD_NAMESPACE,
    RawPunch,
    Record,
    Rejection,
    identity_key,
    record_id,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def norm(tmp_path_factory):  # type: ignore[no-untyped-def]
    from conftest import base_config

    from spotme_hub.service import config_from_dict

    tmp = tmp_path_factory.mktemp("norm")
    cfg = config_from_dict(
        base_config(
            tmp,
            devices=[
                {"id": "dev1", "kind": "simulated", "office": "hq"},
                {
                    "id": "dev2",
                    "kind": "simulated",
                    "office": "hq",
                    "latitude": 2.93,
                    "longitude": 101.70,
                },
                {"id": "kdev", "kind": "simulated", "office": "kch"},
            ],
        ),
        base_dir=tmp,
    )
    return Normalizer(cfg), {d.id: d for d in cfg.devices}


def test_record_id_is_uuid5() -> None:
    for text in ["", "a", "dev|u:1|2026-01-01T08:00:00|in", "ü" * 50]:
        assert record_id(text) == str(uuid.uuid5(RECORD_NAMESPACE, text))


@given(key=st.text(max_size=40), wall=st.datetimes(min_value=datetime(1970, 1, 1)))
@settings(max_examples=300, deadline=None)
def test_timed_record_id_layout(key: str, wall: datetime) -> None:
    second = wall.replace(microsecond=0).isoformat()
    rid = uuid.UUID(record_id(key, second))
    v5 = uuid.uuid5(RECORD_NAMESPACE, key)
    assert rid.version == 8 and rid.variant == uuid.RFC_4122
    ms = int(wall.replace(microsecond=0, tzinfo=UTC).timestamp()) * 1000
    assert rid.int >> 80 == min(ms, 2**48 - 1)  # 48 bits of wall-clock milliseconds lead
    free = (1 << 80) - 1 - (0xF << 76) - (0x3 << 62)  # all but the version and variant bits
    assert rid.int & free == v5.int & free  # the other 74 bits are the UUIDv5's


@given(st.lists(st.tuples(st.text(max_size=20), st.datetimes(min_value=datetime(2000, 1, 1)).map(
    lambda d: d.replace(microsecond=0))), min_size=2, max_size=30))  # fmt: skip
def test_timed_ids_sort_by_wall_time(punches: list[tuple[str, datetime]]) -> None:
    ids = {record_id(k, w.isoformat()): w for k, w in punches}
    walls = [ids[i] for i in sorted(ids)]
    assert walls == sorted(walls)


def test_a_timed_punch_gets_the_time_ordered_id_of_its_identity(norm) -> None:  # type: ignore[no-untyped-def]
    n, devs = norm
    raw = RawPunch(device_time=datetime(2026, 3, 2, 8, 1, 2), user_id="00012", punch=0)
    rec = n.normalize(devs["dev1"], raw, now=NOW)
    assert isinstance(rec, Record)
    key = identity_key("dev1", "u:00012", "2026-03-02T08:01:02", "in")
    assert rec.id == record_id(key, "2026-03-02T08:01:02") and rec.id.startswith("019cad90-9e30-8")
    assert uuid.UUID(rec.id).version == 8


local_times = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2026, 11, 1)).map(
    lambda d: d.replace(microsecond=0)
)


@given(when=local_times, user=st.text(min_size=1, max_size=12).filter(str.strip),
       punch=st.integers(0, 5), delay=st.integers(0, 10**6))  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_ids_stable_under_redelivery(norm, when, user, punch, delay) -> None:  # type: ignore[no-untyped-def]
    n, devs = norm
    raw = RawPunch(device_time=when, user_id=user, punch=punch, verify=1, raw="x")
    first = n.normalize(devs["dev1"], raw, now=NOW)
    again = RawPunch(device_time=when, user_id=user, punch=punch, verify=1, raw="y",
                     received_at=NOW - timedelta(seconds=delay))  # fmt: skip
    second = n.normalize(devs["dev1"], again, now=NOW)
    assert isinstance(first, Record) and isinstance(second, Record)
    assert first.id == second.id
    other_device = n.normalize(devs["dev2"], raw, now=NOW)
    assert isinstance(other_device, Record) and other_device.id != first.id
    later = RawPunch(device_time=when + timedelta(seconds=1), user_id=user, punch=punch)
    shifted = n.normalize(devs["dev1"], later, now=NOW)
    assert isinstance(shifted, Record) and shifted.id != first.id


@given(when=local_times)
@settings(max_examples=200, deadline=None)
def test_utc_local_round_trip(norm, when) -> None:  # type: ignore[no-untyped-def]
    n, devs = norm
    for dev, zone in (("dev1", "Asia/Kuala_Lumpur"), ("kdev", "Asia/Kuching")):
        rec = n.normalize(devs[dev], RawPunch(device_time=when, user_id="1"), now=NOW)
        assert isinstance(rec, Record)
        assert rec.timezone == zone
        utc = datetime.fromisoformat(rec.occurred_at.replace("Z", "+00:00"))
        local = datetime.fromisoformat(rec.local_time)
        assert rec.occurred_at.endswith("Z")
        assert utc == local
        assert local.replace(tzinfo=None) == when
        assert local.utcoffset() == ZoneInfo(zone).utcoffset(when)


def test_aware_device_time_is_kept(norm) -> None:  # type: ignore[no-untyped-def]
    n, devs = norm
    t = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
    rec = n.normalize(devs["dev1"], RawPunch(device_time=t, user_id="1"), now=NOW)
    assert isinstance(rec, Record)
    assert rec.occurred_at == "2026-03-02T00:30:00Z"
    assert rec.local_time == "2026-03-02T08:30:00+08:00"


def test_a_fraction_of_a_second_is_kept_and_the_id_stays_at_the_second(norm) -> None:  # type: ignore[no-untyped-def]
    """A float epoch (1607123958.748393 s) keeps its fraction, to the millisecond, in both
    times; the record's id is the whole second's, so a redelivery with the fraction rounded
    away is the same punch."""
    from spotme_hub.normalize.mapping import epoch_to_datetime

    n, devs = norm
    precise = n.normalize(devs["dev1"], RawPunch(device_time=epoch_to_datetime(1607123958.748393),
                                                 user_id="1", punch="in"), now=NOW)  # fmt: skip
    whole = n.normalize(devs["dev1"], RawPunch(device_time=epoch_to_datetime(1607123958),
                                               user_id="1", punch="in"), now=NOW)  # fmt: skip
    assert isinstance(precise, Record) and isinstance(whole, Record)
    assert precise.occurred_at == "2020-12-04T23:19:18.748Z"
    assert precise.local_time == "2020-12-05T07:19:18.748+08:00"
    assert whole.occurred_at == "2020-12-04T23:19:18Z"
    assert precise.id == whole.id


coords = st.tuples(st.floats(-89.9, 89.9), st.floats(-179.9, 179.9))


@given(a=coords, b=coords, c=coords)
@settings(max_examples=300)
def test_haversine_is_a_metric(a, b, c) -> None:  # type: ignore[no-untyped-def]
    ab = haversine_m(*a, *b)
    assert ab >= 0
    assert haversine_m(*a, *a) == pytest.approx(0, abs=1e-6)
    assert ab == pytest.approx(haversine_m(*b, *a), rel=1e-9, abs=1e-6)
    assert ab <= haversine_m(*a, *c) + haversine_m(*c, *b) + 1e-3
    assert ab <= 20_015_100  # half the circumference


def test_haversine_known_distances() -> None:
    # one degree of latitude ≈ 111.2 km; KL (KLCC) to Putrajaya (Perdana Putra) ≈ 25 km
    assert haversine_m(0, 0, 1, 0) == pytest.approx(111_195, rel=1e-3)
    assert haversine_m(3.1579, 101.7116, 2.9355, 101.6851) == pytest.approx(24_900, rel=0.02)


@given(metres=st.floats(0, 5000), bearing=st.floats(0, 359))
@settings(max_examples=200, deadline=None)
def test_geofence_verdict_follows_distance(norm, metres, bearing) -> None:  # type: ignore[no-untyped-def]
    import math

    n, devs = norm
    lat0, lon0 = 2.9264, 101.6964
    r = 6_371_008.8
    lat = lat0 + math.degrees(metres * math.cos(math.radians(bearing)) / r)
    lon = lon0 + math.degrees(
        metres * math.sin(math.radians(bearing)) / (r * math.cos(math.radians(lat0)))
    )
    raw = RawPunch(device_time=datetime(2026, 5, 4, 8, 0), user_id="1", latitude=lat, longitude=lon)
    rec = n.normalize(devs["dev1"], raw, now=NOW)
    assert isinstance(rec, Record)
    assert rec.location_source == "payload"
    assert rec.distance_m == pytest.approx(metres, abs=0.5)
    if rec.distance_m is not None and abs(rec.distance_m - 150) > 0.01:
        assert rec.within_geofence == (rec.distance_m <= 150)
        assert ("outside_geofence" in rec.flags) == (rec.distance_m > 150)


def test_location_sources(norm) -> None:  # type: ignore[no-untyped-def]
    n, devs = norm
    t = datetime(2026, 5, 4, 8, 0)
    office = n.normalize(devs["dev1"], RawPunch(device_time=t, user_id="1"), now=NOW)
    device = n.normalize(devs["dev2"], RawPunch(device_time=t, user_id="1"), now=NOW)
    bad_gps = n.normalize(
        devs["dev1"], RawPunch(device_time=t, user_id="1", latitude=200, longitude=5), now=NOW
    )
    nowhere = n.normalize(devs["kdev"], RawPunch(device_time=t, user_id="1"), now=NOW)
    assert (
        isinstance(office, Record) and office.location_source == "office" and office.distance_m == 0
    )
    assert isinstance(device, Record) and device.location_source == "device"
    assert device.distance_m is not None and 400 < device.distance_m < 600
    assert device.within_geofence is False and "outside_geofence" in device.flags
    assert isinstance(bad_gps, Record) and bad_gps.location_source == "office"
    assert (
        isinstance(nowhere, Record)
        and nowhere.location_source is None
        and nowhere.within_geofence is None
    )


def test_employee_mapping(norm) -> None:  # type: ignore[no-untyped-def]
    n, devs = norm
    t = datetime(2026, 5, 4, 8, 0)

    def emp(dev: str, **kw: object) -> tuple[str | None, list[str]]:
        rec = n.normalize(devs[dev], RawPunch(device_time=t, **kw), now=NOW)  # type: ignore[arg-type]
        assert isinstance(rec, Record)
        return rec.employee_id, rec.flags

    assert emp("dev1", user_id="1") == ("E1", [])
    assert emp("dev1", user_id="0001")[0] == "E1"  # leading zeros from another system
    assert emp("dev1", card="134,62532") == ("E1", [])  # Wiegand form of 0008844356
    assert emp("dev1", card="0x86F444")[0] == "E1"
    assert emp("dev2", user_id="7")[0] == "E2"  # device-scoped PIN
    assert emp("dev1", user_id="7") == (None, ["unmapped_employee"])
    rec = n.normalize(devs["dev1"], RawPunch(device_time=t, card="86F444h"), now=NOW)
    assert isinstance(rec, Record) and rec.card == "0008844356" and rec.verify == "card"


def test_rejections(norm) -> None:  # type: ignore[no-untyped-def]
    n, devs = norm
    cases = {
        "before 2000": RawPunch(device_time=datetime(1999, 12, 31, 23, 0), user_id="1"),
        "in the future": RawPunch(device_time=datetime(2026, 11, 25, 12, 0), user_id="1"),
        "no user id or card": RawPunch(device_time=datetime(2026, 1, 1), user_id=" "),
        "not a card number": RawPunch(device_time=datetime(2026, 1, 1), card="zz-top"),
        "unknown punch type": RawPunch(
            device_time=datetime(2026, 1, 1), user_id="1", punch="sideways"
        ),
    }
    for words, raw in cases.items():
        out = n.normalize(devs["dev1"], raw, now=NOW)
        assert isinstance(out, Rejection), words
        assert words in out.reason
        assert out.device_id == "dev1" and "punch" in out.source


def test_untrusted_time_uses_receive_time(norm) -> None:  # type: ignore[no-untyped-def]
    n, devs = norm
    rec = n.normalize(
        devs["dev1"], RawPunch(device_time=None, user_id="1", received_at=NOW), now=NOW
    )
    assert isinstance(rec, Record)
    assert rec.occurred_at == "2026-11-23T12:00:00Z" and "device_time_untrusted" in rec.flags


def test_the_same_untrusted_payload_received_seconds_apart_gets_one_id(norm) -> None:  # type: ignore[no-untyped-def]
    from spotme_hub.normalize.mapping import Mapping

    n, devs = norm
    mp = Mapping.model_validate({"user_id": "u", "time": "t"})
    ids = set()
    for delay in (0, 1, 61):
        at = NOW + timedelta(seconds=delay)
        raw = mp.apply({"u": "1", "t": "1999-01-01T00:00:05"}, received_at=at)
        rec = n.normalize(devs["dev1"], raw, now=at)
        assert isinstance(rec, Record) and "device_time_untrusted" in rec.flags
        assert rec.occurred_at == at.strftime("%Y-%m-%dT%H:%M:%SZ")  # when it arrived
        ids.add(rec.id)
    assert len(ids) == 1


def test_clock_skew_flag(norm) -> None:  # type: ignore[no-untyped-def]
    n, devs = norm
    t = datetime(2026, 5, 4, 8, 0)
    small = n.normalize(
        devs["dev1"], RawPunch(device_time=t, user_id="1", clock_skew_s=12.5), now=NOW
    )
    large = n.normalize(
        devs["dev1"], RawPunch(device_time=t, user_id="1", clock_skew_s=-3600), now=NOW
    )
    assert (
        isinstance(small, Record) and small.clock_skew_s == 12.5 and "clock_skew" not in small.flags
    )
    assert isinstance(large, Record) and "clock_skew" in large.flags


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "in"), (1, "out"), (2, "break_out"), (3, "break_in"), (4, "overtime_in"), (5, "overtime_out"),
     (255, "unknown"), ("Check In", "in"), ("Masuk", "in"), ("Keluar", "out"), ("C/Out", "out"),
     ("OT-In", "overtime_in"), ("1", "out"), (None, "unknown"), ("sideways", None), (9, None)],
)  # fmt: skip
def test_punch_codes(value: object, expected: str | None) -> None:
    got = to_punch(value)
    assert (None if got is None else str(got)) == expected


def test_verify_codes() -> None:
    assert to_verify(1) == "fingerprint" and to_verify(15) == "face" and to_verify(4) == "card"
    assert to_verify("3") == "password" and to_verify(22) == "vein" and to_verify(26) == "palm"
    assert (
        to_verify("Face") == "face" and to_verify("kad") == "card" and to_verify(None) == "unknown"
    )


@pytest.mark.parametrize(
    ("text", "card"),
    [("0008844356", "0008844356"), ("8844356", "0008844356"), ("134,62532", "0008844356"),
     ("0x86F444", "0008844356"), ("86f444h", "0008844356"), ("100086F444", "0008844356"),
     ("0086F444", "0008844356"), (8844356, "0008844356"), ("0000000000", None), ("", None),
     ("12,99999", None), ("hello", None)],
)  # fmt: skip
def test_canonical_cards(text: object, card: str | None) -> None:
    assert canonical_card(text) == card
