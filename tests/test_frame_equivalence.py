"""The vectorised path (`normalize_frame`) gives exactly what the row-wise path gives
(`Mapping.apply` + `Normalizer.normalize`) for generated rows: same ids, same fields, same
rejections."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotme_hub.normalize import Normalizer
from spotme_hub.normalize.frame import normalize_frame, record_ids, row_path
from spotme_hub.normalize.mapping import Mapping
from spotme_hub.record import RECORD_NAMESPACE, Record, Rejection, record_id
from spotme_hub.service import config_from_dict, tables
from spotme_hub.store import Store

RECEIVED = datetime(2026, 11, 23, 3, 0, 0, tzinfo=UTC)

users = st.one_of(
    st.sampled_from(["1", "00012", "  7", "12 ", "", "   ", "abc", "J-9"]),
    st.integers(0, 10**6).map(str),
)
cards = st.sampled_from(
    ["", "8844356", "0x86F444", "86F444h", "100086F444", "zz", "134,62532", "0"]
)
states = st.sampled_from(
    ["0", "1", "2", "3", "4", "5", "255", "9", "Masuk", "Keluar", "Check In", "", "X", "huh"]
)
verifies = st.sampled_from(["1", "15", "4", "Face", "", "kad", "weird"])
serials = st.sampled_from(["", "CQZ1", "SN 2"])
seconds = st.integers(
    int(datetime(1999, 12, 31).timestamp()), int(datetime(2026, 11, 25).timestamp())
)
dst_edges = st.sampled_from(
    [
        "2025-03-09T02:30:00",  # New York: does not exist
        "2025-11-02T01:30:00",  # New York: happens twice
        "2025-03-30T02:15:00",  # Europe: gap
        "2025-01-01T00:00:00",
    ]
)
row = st.tuples(
    users,
    cards,
    states,
    verifies,
    serials,
    st.one_of(
        seconds.map(_ := lambda s: np.datetime64(s, "s")),
        dst_edges.map(lambda t: np.datetime64(t, "s")),
    ),
)

ZONES = ["Asia/Kuala_Lumpur", "Asia/Kuching", "America/New_York", "Europe/Berlin"]


def _config(device_tz: str | None):
    return config_from_dict(
        {
            "offices": [
                {
                    "id": "hq",
                    "latitude": 2.9264,
                    "longitude": 101.6964,
                    "geofence_m": 150,
                    "state": "PJY",
                }
            ],
            "devices": [
                {
                    "id": "usb",
                    "kind": "csv",
                    "office": "hq",
                    "timezone": device_tz,
                    "latitude": 2.95,
                    "longitude": 101.70,
                }
            ],
            "employees": [
                {"id": "J1", "user_ids": ["1"]},
                {"id": "J12", "user_ids": ["00012"], "cards": ["0008844356"]},
            ],
        }
    )


def _mapping(with_card: bool, tz: str | None) -> Mapping:
    spec = {
        "user_id": "user",
        "time": "@time",
        "punch": {"path": "state", "map": {"Masuk": "in", "X": "7"}},
        "verify": "verify",
        "device_serial": "sn",
        "bad_time": "quarantine",
        "timezone": tz,
    }
    if with_card:
        spec["card"] = {"path": "card"}
    return Mapping.model_validate(spec)


def _as_dict(out: Record | Rejection) -> dict:
    if isinstance(out, Record):
        return {"record": out.to_dict()}
    return {"rejection": (out.reason, out.source.get("line"), out.device_id)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(row, min_size=1, max_size=40),
    with_card=st.booleans(),
    device_tz=st.sampled_from([None, *ZONES]),
    map_tz=st.sampled_from([None, *ZONES]),
    punch_map=st.sampled_from([None, {"huh": "out", "9": "in"}]),
    lazy_time=st.booleans(),
)
def test_frame_path_equals_row_path(
    rows, with_card, device_tz, map_tz, punch_map, lazy_time
) -> None:  # type: ignore[no-untyped-def]
    cfg = _config(device_tz)
    device = cfg.devices[0]
    normalizer = Normalizer(cfg)
    mapping = _mapping(with_card, map_tz)
    times = np.array([r[5] for r in rows], dtype="datetime64[s]")
    docs = pd.DataFrame(
        {
            "user": [r[0] for r in rows],
            "card": [r[1] for r in rows],
            "state": [r[2] for r in rows],
            "verify": [r[3] for r in rows],
            "sn": [r[4] for r in rows],
        },
        dtype=object,
    )
    docs["@time"] = np.datetime_as_string(times, unit="s")
    lines = list(range(10, 10 + len(rows)))
    # the import leaves the time text out and has it made for the rows that are used
    fast = normalize_frame(
        normalizer, device, mapping, docs.drop(columns="@time") if lazy_time else docs, times,
        {"file": "f.csv"}, lines, RECEIVED, punch_map, time_key="@time" if lazy_time else None,
    )  # fmt: skip
    slow = [
        row_path(
            normalizer, device, mapping, {str(k): v for k, v in docs.iloc[i].items()},
            {"file": "f.csv", "line": lines[i]}, RECEIVED, punch_map,
        )
        for i in range(len(rows))
    ]  # fmt: skip
    want_records = sorted(
        (o.to_dict() for o in slow if isinstance(o, Record)), key=lambda d: d["source"]["line"]
    )
    got_records = sorted((r.to_dict() for r in fast.records()), key=lambda d: d["source"]["line"])
    assert got_records == want_records
    want_rej = sorted(_as_dict(o)["rejection"] for o in slow if isinstance(o, Rejection))
    got_rej = sorted(_as_dict(o)["rejection"] for o in fast.rejections)
    assert got_rej == want_rej
    # and the bulk table holds the same rows, sorted by id
    columns, consts = fast.batch()
    assert columns["id"] == sorted(d["id"] for d in want_records)
    # ... and what the bulk insert stores is those records exactly
    store = Store("sqlite://")
    store.create_all(tables())
    try:
        store.bulk_insert(columns, consts)
        stored = [{k: v for k, v in r.items() if k != "seq"} for r in store.records(0, 10_000)]
    finally:
        store.close()
    first_of_each: dict[str, dict] = {}
    for d in want_records:  # a punch repeated in the file is stored once (its first line)
        first_of_each.setdefault(d["id"], d)
    assert sorted(stored, key=lambda d: d["source"]["line"]) == list(first_of_each.values())


@given(st.lists(st.text(min_size=0, max_size=30), max_size=50))
def test_record_ids_equal_record_id_and_uuid5(keys: list[str]) -> None:
    assert record_ids(keys) == [record_id(k) for k in keys]
    assert record_ids(keys) == [str(uuid.uuid5(RECORD_NAMESPACE, k)) for k in keys]


@given(st.lists(st.tuples(st.text(max_size=30), st.datetimes()), max_size=50))
def test_timed_record_ids_equal_record_id(punches: list[tuple[str, datetime]]) -> None:
    keys = [k for k, _ in punches]
    walls = [w.replace(microsecond=0) for _, w in punches]
    seconds = np.array(walls, dtype="datetime64[s]").astype(np.int64)
    want = [record_id(k, w.isoformat()) for k, w in zip(keys, walls, strict=True)]
    assert record_ids(keys, seconds) == want
