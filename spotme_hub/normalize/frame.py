"""The vectorised twin of `Mapping.apply` + `Normalizer.normalize` for a pandas chunk of rows.

Same `Mapping`, same rules, same records: every per-value rule (`FieldSpec.resolve`,
`card_value`, `canonical_card`, `user_text`, `to_punch` with `Normalizer.punch_map_for`,
`to_verify`, `Normalizer.employee_for`) is the row-wise function itself, evaluated once per
distinct value; office, location and geofence verdict are `Normalizer.place` of the device; times
use zoneinfo offsets per hour bucket and the plausibility bounds of `timefix`; ids are
`record_id(identity_keys(...), wall second)`, the hashing done over all rows at once. A row the fast path
cannot prove good (a bad card, an unknown punch, an implausible time...) is handed to the
row-wise path, so rejections carry exactly the reasons the row-wise path gives. `tests/test_frame_equivalence.py`
checks both paths against each other on generated rows.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ..cards import canonical_card
from ..clock import utc_z_ms, zone
from ..config import Device
from ..record import (
    RECORD_FIELDS,
    RECORD_NAMESPACE,
    SCHEMA_VERSION,
    Flag,
    Record,
    Rejection,
    credentials,
    identity_keys,
    sha1,
    user_text,
)
from . import Normalizer
from .codes import to_punch, to_verify
from .mapping import FieldSpec, Ignored, Mapping, MappingError, card_value
from .texts import code_points_to_str, iso_seconds
from .timefix import EARLIEST, FUTURE_LIMIT

_EPOCH = datetime(1970, 1, 1)
_JSON = ("flags", "source", "raw")


def row_path(
    normalizer: Normalizer,
    device: Device,
    mapping: Mapping,
    doc: dict[str, Any],
    source: dict[str, Any],
    received_at: datetime,
    punch_map: AbcMapping[str, str] | None = None,
) -> Record | Rejection | None:
    """One row through the shared engine: `Mapping.apply` then `Normalizer.normalize`.
    None when the mapping ignores the row."""
    try:
        raw = mapping.apply(
            doc,
            received_at=received_at,
            default_timezone=device.zone,
            source=source,
        )
    except Ignored:
        return None
    except MappingError as exc:
        return Rejection(reason=str(exc), raw=doc, source=dict(source), device_id=device.id)
    return normalizer.normalize(device, raw, now=received_at, punch_map=punch_map)


#: Columns that usually hold one value per chunk (device, office, receive time...), or often do
#: (no employee mapped yet, no cards, no serial): stored once in the chunk's shape when they do.
CONSTANT_CANDIDATES = (
    "timezone", "received_at", "clock_skew_s", "device_id", "device_kind", "office_id",
    "office_state", "latitude", "longitude", "location_source", "distance_m", "within_geofence",
    "schema_version", "employee_id", "card", "device_serial", "flags",
)  # fmt: skip


@dataclass
class FrameResult:
    """Records as columns (JSON fields already serialised; `raw` may instead be a dict of its
    members' values, each a list: what `Store.bulk_insert` takes) plus rejections."""

    columns: dict[str, Any]
    rejections: list[Rejection] = field(default_factory=list)
    ignored: int = 0
    known: int = 0  # rows left out because `known_ids` said their id is already stored

    def __len__(self) -> int:
        return len(self.columns["id"])

    def batch(self) -> tuple[dict[str, list[Any]], dict[str, Any]]:
        """({varying field: values sorted by id}, {field: the one value of the rest}) — what
        `Store.bulk_insert` takes."""
        n = len(self)
        consts: dict[str, Any] = {}
        for name in CONSTANT_CANDIDATES:
            col = self.columns[name]
            kind = type(col[0]) if n else None
            # only a str equals a str and only None equals None, but 1 == 1.0 == True
            if (
                kind in (str, int, float, type(None))
                and col.count(col[0]) == n
                and (kind in (str, type(None)) or set(map(type, col)) == {kind})
            ):
                consts[name] = col[0]
        names = [name for name in RECORD_FIELDS if name not in consts]
        if not n:
            return {name: [] for name in names}, consts
        order = np.argsort(np.array(self.columns["id"], dtype=object), kind="stable")
        if np.array_equal(order, np.arange(n)):
            return {name: self.columns[name] for name in names}, consts
        at = order.tolist()

        def reordered(col: Any) -> Any:
            if isinstance(col, dict):
                return {m: list(map(v.__getitem__, at)) for m, v in col.items()}
            return list(map(col.__getitem__, at))

        return {name: reordered(self.columns[name]) for name in names}, consts

    def records(self) -> list[Record]:
        out = []
        raw = self.columns["raw"]
        for i in range(len(self)):
            values = {name: self.columns[name][i] for name in RECORD_FIELDS if name != "raw"}
            for name in ("flags", "source"):
                values[name] = orjson.loads(values[name])
            if isinstance(raw, dict):
                values["raw"] = {m: v[i] for m, v in raw.items()}
            else:
                values["raw"] = orjson.loads(raw[i])
            out.append(Record(**values))
        return out


def record_ids(keys: list[str], wall_s: np.ndarray | None = None) -> list[str]:
    """`record_id(key, wall second)` for many keys: one SHA-1 per key, the UUID layout done by
    numpy. `wall_s`: each key's device-local wall-clock second as seconds since 1970 (naive, as
    if UTC), for time-ordered ids; None gives `record_id(key)` (UUIDv5) for every key."""
    n = len(keys)
    if not n:
        return []
    ns = RECORD_NAMESPACE.bytes
    parts = "\n".join(keys).encode("utf-8").split(b"\n")
    if len(parts) != n:  # a key with a newline in it
        parts = [k.encode("utf-8") for k in keys]
    digests = b"".join([sha1(ns + p).digest() for p in parts])
    raw = np.frombuffer(digests, dtype=np.uint8).reshape(n, 20)[:, :16].copy()
    if wall_s is None:
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50
    else:
        ms = np.clip(np.asarray(wall_s, dtype=np.int64) * 1000, 0, (1 << 48) - 1)
        raw[:, 0:6] = ms.astype(">u8").view(np.uint8).reshape(n, 8)[:, 2:8]
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x80
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = np.frombuffer(raw.tobytes().hex().encode("ascii"), dtype=np.uint8).reshape(n, 32)
    out = np.full((n, 36), ord("-"), dtype=np.uint32)
    out[:, 0:8], out[:, 9:13], out[:, 14:18] = hexed[:, 0:8], hexed[:, 8:12], hexed[:, 12:16]
    out[:, 19:23], out[:, 24:36] = hexed[:, 16:20], hexed[:, 20:32]
    return code_points_to_str(out)


def _offset_text(seconds: int) -> str:
    return datetime(2000, 1, 1, tzinfo=timezone(timedelta(seconds=seconds))).isoformat()[19:]


def _by_hour(values: np.ndarray, offset_at: Callable[[int], int]) -> np.ndarray:
    """offset_at(second) for every value, computed once per hour unless the hour has a change."""
    hours, inverse = np.unique(values // 3600, return_inverse=True)
    per_hour = np.empty(len(hours), dtype=np.int64)
    mixed = np.zeros(len(hours), dtype=bool)
    for k, h in enumerate(hours.tolist()):
        a, b = offset_at(h * 3600), offset_at(h * 3600 + 3599)
        per_hour[k] = a
        mixed[k] = a != b
    out = per_hour[inverse]
    if mixed.any():
        rows = np.flatnonzero(mixed[inverse])
        out[rows] = [offset_at(int(v)) for v in values[rows].tolist()]
    return out


def local_offsets(naive_s: np.ndarray, tz: str) -> np.ndarray:
    """UTC offset (s) of naive wall-clock seconds in `tz`, as `replace(tzinfo=zone)` gives it."""
    z = zone(tz)

    def at(sec: int) -> int:
        off = (_EPOCH + timedelta(seconds=sec)).replace(tzinfo=z).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    return _by_hour(naive_s, at)


def utc_offsets(utc_s: np.ndarray, tz: str) -> np.ndarray:
    """UTC offset (s) of `tz` at absolute times (UTC seconds)."""
    z = zone(tz)

    def at(sec: int) -> int:
        off = datetime.fromtimestamp(sec, z).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    return _by_hour(utc_s, at)


def _per_value(values: pd.Series, fn: Callable[[Any], Any]) -> np.ndarray:
    """fn applied once per distinct value (object array aligned with `values`)."""
    codes, uniques = pd.factorize(values)  # None/NA → code -1, the last slot below
    results = np.empty(len(uniques) + 1, dtype=object)
    results[:-1] = [fn(u) for u in uniques.tolist()]
    if len(codes) and codes.min() < 0:
        results[-1] = fn(None)
    out: np.ndarray = results[codes]
    return out


_BAD = object()


def normalize_frame(
    normalizer: Normalizer,
    device: Device,
    mapping: Mapping,
    docs: pd.DataFrame,
    times: np.ndarray,
    origin: AbcMapping[str, Any],
    lines: list[int],
    received_at: datetime,
    punch_map: AbcMapping[str, str] | None = None,
    known_ids: Callable[[list[str]], set[str]] | None = None,
    time_key: str | None = None,
) -> FrameResult:
    """The records (and rejections) `row_path` gives for each row of `docs`, computed per column.

    `docs` holds one row document per row (str cells, `mapping.time` naming an ISO text column)
    and `times` the same times as naive datetime64[s] (the CSV pre-step parsed both); a row's
    source is `origin` (its file, and sheet) with its line from `lines`.
    `known_ids(ids)` may name ids already stored: those rows are counted, not built (re-imports).
    `time_key`: a last column `docs` leaves out, each row's time as ISO text: it is made only for
    the documents used (records built, rows handed to the row-wise path), not for known rows.
    """
    n = len(docs)
    result = FrameResult({name: [] for name in RECORD_FIELDS})
    if n == 0:
        return result
    if (
        mapping.match or mapping.ignore or mapping.require or mapping.format != "json"
        or mapping.latitude is not None or mapping.longitude is not None
    ):  # fmt: skip
        if time_key is not None:
            docs = docs.assign(**{time_key: _iso(times)})
        return _all_rows(normalizer, device, mapping, docs, origin, lines, received_at, punch_map)
    tz_dev = device.zone
    tz_map = mapping.timezone or tz_dev
    bad = np.zeros(n, dtype=bool)

    def column(spec: FieldSpec | None, fn: Callable[[Any], Any]) -> np.ndarray:
        if spec is None:
            return np.full(n, fn(None), dtype=object)
        if spec.path is None:
            return np.full(n, fn(spec.resolve(spec.const)), dtype=object)
        if spec.path not in docs.columns:
            return np.full(n, fn(spec.resolve(None)), dtype=object)
        return _per_value(docs[spec.path], lambda v: fn(spec.resolve(v)))

    # who
    users = column(mapping.user_id, user_text)
    card_fmt = mapping.card.format if mapping.card is not None else "auto"
    cards_raw = column(
        mapping.card, lambda v: _safe(card_value, v, card_fmt) if v is not None else None
    )
    bad |= _is_bad(cards_raw)
    cards = _per_value(pd.Series(cards_raw, dtype=object), _canonical)
    bad |= _is_bad(cards)
    no_who = np.fromiter(
        (u is None and (c is None or c == "") for u, c in zip(users, cards_raw, strict=True)),
        dtype=bool, count=n,
    )  # fmt: skip
    bad |= no_who
    # what
    words = normalizer.punch_map_for(punch_map)
    punches = column(mapping.punch, lambda v: _punch_text(v, words or None))
    bad |= _is_bad(punches)

    def how_and_serial() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(verify, verify missing, serial) of every row: never bad, so only needed (and made)
        once some row is not stored already."""
        return (
            column(mapping.verify, lambda v: str(to_verify(v, normalizer.verify_words))),
            column(mapping.verify, lambda v: v is None),
            column(mapping.device_serial, lambda v: None if v is None else str(v)),
        )

    # when
    naive = times.astype("datetime64[s]").astype(np.int64)
    bad |= np.isnat(times)
    naive = np.where(bad, 0, naive)
    utc = naive - local_offsets(naive, tz_map)
    recv = int(received_at.astimezone(UTC).timestamp())
    bad |= utc < int(EARLIEST.timestamp())
    bad |= utc > recv + int(FUTURE_LIMIT.total_seconds())
    dev_off = utc_offsets(utc, tz_dev)
    local_wall = naive if tz_map == tz_dev else utc + dev_off

    good = np.flatnonzero(~bad)
    fallback = np.flatnonzero(bad)
    extra: list[Record] = []
    for i in fallback.tolist():
        doc = _doc(docs, i)
        if time_key is not None:
            doc[time_key] = str(_iso(times[i : i + 1])[0])
        out = row_path(
            normalizer, device, mapping, doc, {**origin, "line": lines[i]}, received_at, punch_map
        )
        if isinstance(out, Record):
            extra.append(out)
        elif isinstance(out, Rejection):
            result.rejections.append(out)
        else:
            result.ignored += 1
    if len(good):

        def raw_members(
            rows: np.ndarray, wall: np.ndarray, texts: list[str]
        ) -> dict[str, list[Any]]:
            """The documents of `rows`; their time texts are `texts` when read as `wall`."""
            out = _raw_members(docs, rows)
            if time_key is not None:
                naive_rows = naive[rows]
                out[time_key] = texts if np.array_equal(naive_rows, wall) else _iso(times[rows])
            return out

        _fill(result, normalizer, device, mapping, raw_members, good, users, cards, cards_raw,
              punches, how_and_serial, utc, local_wall, dev_off, origin, lines, received_at,
              tz_dev, known_ids)  # fmt: skip
    for rec in extra:
        _append(result, rec)
    return result


def _fill(
    result: FrameResult, normalizer: Normalizer, device: Device, mapping: Mapping,
    raw_members: Callable[[np.ndarray, np.ndarray, list[str]], dict[str, list[Any]]],
    good: np.ndarray,
    users: np.ndarray, cards: np.ndarray, cards_raw: np.ndarray, punches: np.ndarray,
    how_and_serial: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]], utc: np.ndarray,
    local_wall: np.ndarray, dev_off: np.ndarray, origin: AbcMapping[str, Any],
    lines: list[int], received_at: datetime, tz_dev: str,
    known_ids: Callable[[list[str]], set[str]] | None,
) -> None:  # fmt: skip
    users, cards, punches = users[good], cards[good], punches[good]
    wall = local_wall[good]
    local_text = iso_seconds(wall)
    creds = credentials(users.tolist(), cards.tolist())
    keys = identity_keys(device.id, creds, local_text, punches.tolist())
    ids = record_ids(keys, wall)
    if known_ids is not None:
        known = known_ids(ids)
        if known.issuperset(ids):  # a re-imported chunk: every record is stored already
            result.known += len(ids)
            return
        if known:
            keep = np.fromiter((i not in known for i in ids), dtype=bool, count=len(ids))
            result.known += int((~keep).sum())
            good, users, cards, punches = good[keep], users[keep], cards[keep], punches[keep]
            wall = wall[keep]
            ids = [i for i, k in zip(ids, keep.tolist(), strict=True) if k]
            local_text = [t for t, k in zip(local_text, keep.tolist(), strict=True) if k]
            if not len(good):
                return
    verifies, verify_none, serials = how_and_serial()
    verifies = verifies[good].copy()
    card_verify = np.fromiter(
        (c is not None for c in cards), dtype=bool, count=len(good)
    ) & verify_none[good].astype(bool)
    verifies[card_verify] = "card"
    if mapping.card is None:
        employees = _per_value(
            pd.Series(users, dtype=object), lambda u: normalizer.employee_for(device.id, u, None)
        )
    else:
        pairs = pd.Series([f"{u}\0{c}" for u, c in zip(users, cards, strict=True)])
        lookup = {f"{u}\0{c}": (u, c) for u, c in zip(users, cards, strict=True)}
        employees = _per_value(pairs, lambda k: normalizer.employee_for(device.id, *lookup[k]))
    place = normalizer.place(device)  # the rows carry no coordinates on this path
    base_flags = {str(f) for f in place.flags}
    flag_json = {
        False: orjson.dumps(sorted(base_flags)).decode(),
        True: orjson.dumps(sorted(base_flags | {Flag.UNMAPPED_EMPLOYEE.value})).decode(),
    }
    utc_g = utc[good]
    occurred = iso_seconds(utc_g, "Z")
    offs = dev_off[good]
    # the device's wall clock: the key's own time text, but at a zone change or a mapping zone
    loc_wall = local_text if np.array_equal(utc_g + offs, wall) else iso_seconds(utc_g + offs)
    off_text = _per_value(pd.Series(offs), lambda o: _offset_text(int(o)))
    local_time = [a + b for a, b in zip(loc_wall, off_text.tolist(), strict=True)]
    head = orjson.dumps({**origin, "line": 0}).decode()[: -len("0}")]  # '{"file":…,"line":'
    sources = [f"{head}{lines[i]}}}" for i in good.tolist()]
    m = len(good)
    cols = result.columns
    cols["id"] += ids
    cols["employee_id"] += employees.tolist()
    cols["source_user_id"] += users.tolist()
    cols["card"] += cards.tolist()
    cols["punch"] += punches.tolist()
    cols["verify"] += verifies.tolist()
    cols["occurred_at"] += occurred
    cols["local_time"] += local_time
    cols["timezone"] += [tz_dev] * m
    cols["received_at"] += [utc_z_ms(received_at)] * m
    cols["clock_skew_s"] += [None] * m
    cols["device_id"] += [device.id] * m
    cols["device_kind"] += [device.kind] * m
    cols["device_serial"] += serials[good].tolist()
    for name in ("office_id", "office_state", "latitude", "longitude", "location_source",
                 "distance_m", "within_geofence"):  # fmt: skip
        cols[name] += [getattr(place, name)] * m
    cols["schema_version"] += [SCHEMA_VERSION] * m
    cols["flags"] += [flag_json[e is None] for e in employees.tolist()]
    cols["source"] += sources
    cols["raw"] = raw_members(good, wall, local_text)  # member by member (the store's shapes)


def _iso(times: np.ndarray) -> list[str]:
    return iso_seconds(times.astype("datetime64[s]").astype(np.int64))


def _raw_members(docs: pd.DataFrame, good: np.ndarray) -> dict[str, list[Any]]:
    """The row documents of `good`, member by member (a row's `raw` is {member: its value})."""
    return {str(name): docs[name].to_numpy(dtype=object)[good].tolist() for name in docs.columns}


def _append(result: FrameResult, rec: Record) -> None:
    row = rec.to_dict()
    raw = result.columns["raw"]
    if isinstance(raw, dict):
        if isinstance(row["raw"], dict) and list(row["raw"]) == list(raw):
            for member, value in row["raw"].items():
                raw[member].append(value)
            row.pop("raw")
        else:  # a row document of other members: every row's `raw` as JSON text instead
            result.columns["raw"] = [
                orjson.dumps({m: v[i] for m, v in raw.items()}).decode() for i in range(len(result))
            ]
    for name in RECORD_FIELDS:
        if name not in row:
            continue
        value = row[name]
        if name in _JSON:
            value = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        result.columns[name].append(value)


def _all_rows(
    normalizer: Normalizer, device: Device, mapping: Mapping, docs: pd.DataFrame,
    origin: AbcMapping[str, Any],
    lines: list[int], received_at: datetime, punch_map: AbcMapping[str, str] | None,
) -> FrameResult:  # fmt: skip
    result = FrameResult({name: [] for name in RECORD_FIELDS})
    for i in range(len(docs)):
        out = row_path(
            normalizer, device, mapping, _doc(docs, i), {**origin, "line": lines[i]},
            received_at, punch_map,
        )  # fmt: skip
        if isinstance(out, Record):
            _append(result, out)
        elif isinstance(out, Rejection):
            result.rejections.append(out)
        else:
            result.ignored += 1
    return result


def _doc(docs: pd.DataFrame, i: int) -> dict[str, Any]:
    return {str(k): v for k, v in docs.iloc[i].items()}


def _is_bad(values: np.ndarray) -> np.ndarray:
    # numpy's element-wise == (identity first; str, None and the like are never equal to the
    # sentinel); the values are what this module's per-value functions return
    return np.asarray(values == _BAD, dtype=bool)


def _safe(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except MappingError:
        return _BAD


def _canonical(card: Any) -> Any:
    if card is _BAD:
        return _BAD
    if card is not None and str(card).strip():
        key = canonical_card(card)
        return _BAD if key is None else key
    return None


def _punch_text(value: Any, punch_map: AbcMapping[str, str] | None) -> Any:
    punch = to_punch(value, punch_map)
    return _BAD if punch is None else str(punch)
