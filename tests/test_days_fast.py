"""The fast way to days gives the very days the rules give: `DayBook.days` against a plain
reference (every record decoded whole, a `Punch` each, `assign_days`, `compute_day` for every
officer and date, as the book first did) over a seeded random fortnight of WBF, fixed and roster
officers (night shifts), facts, holidays, directions, near-duplicates from several sources,
geofences and unreadable-the-fast-way times; stored both ways (a live commit: the whole JSON; a
file import: shaped), on SQLite and PostgreSQL (the `store` fixture). Also `Store.record_fields`
against `iter_records`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from spotme_hub.adapters.csv.importer import import_file, options_for
from spotme_hub.attendance import book as book_module
from spotme_hub.attendance.book import DayBook
from spotme_hub.attendance.calendar import Calendar
from spotme_hub.attendance.rules import Day, Punch, assign_days, compute_day
from spotme_hub.clock import utc_z
from spotme_hub.config import HubConfig
from spotme_hub.normalize import Normalizer
from spotme_hub.record import RECORD_FIELDS, RawPunch, Record
from spotme_hub.service import config_from_dict
from spotme_hub.store import RecordFilter, Store

FIRST, LAST = dt.date(2025, 8, 25), dt.date(2025, 9, 7)  # National Day on a Sunday, observed
LATER = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
MIDWAY = dt.datetime(2025, 9, 2, 9, 30, tzinfo=dt.UTC)  # 17:30 in Malaysia: today not settled
OFFICES = [
    {"id": "pjy", "state": "PJY", "latitude": 2.9264, "longitude": 101.6964, "geofence_m": 150},
    {"id": "sgr", "state": "SGR"}, {"id": "kdh", "state": "KDH"}, {"id": "trg", "state": "TRG"},
    {"id": "jhr", "state": "JHR"}, {"id": "kch", "state": "SWK", "timezone": "Asia/Kuching"},
]  # fmt: skip
SCHEMES = {
    "WBFS": {"late_granularity": "second", "settle": 30},
    "KAUNTER": {"kind": "fixed", "start": "08:00", "end": "17:00", "grace": 10},
    "MALAM": {"kind": "roster", "shifts": {"malam": {"start": "22:00", "end": "07:00"},
                                           "siang": {"start": "07:00", "end": "15:00"}},
              "week": {"MON": "malam", "TUE": "malam", "WED": "siang", "THU": "malam",
                       "FRI": "siang", "SAT": None, "SUN": "malam"}},
    "JAGA": {"kind": "roster", "shifts": {"jaga": {"start": "20:00", "end": "04:00", "grace": 5}},
             "before": 60, "after": 120, "late_granularity": "second"},
}  # fmt: skip
WHERE = ["pjy", "sgr", "kdh", "trg", "jhr", "kch", None]
SCHEME_OF = ["WBF", "WBF", "WBF", "WBFS", "KAUNTER", "MALAM", "JAGA"]
N = 42  # officers: every office with every scheme, and some without a home office


def facts() -> list[dict[str, Any]]:
    return [
        {"id": "p", "employee": "E01", "kind": "pregnancy_early_leave", "from": "2025-08-01",
         "to": "2025-09-30"},
        {"id": "r", "employee": "E02", "kind": "ramadan_early_leave", "from": "2025-08-28",
         "to": "2025-09-03"},
        {"id": "b", "employee": "E03", "kind": "bdr", "from": "2025-08-25", "to": "2025-09-07",
         "weekdays": ["MON", "TUE", "WED"], "latitude": 3.09, "longitude": 101.55},
        {"id": "b2", "employee": "E08", "kind": "bdr", "date": "2025-08-27"},
        {"id": "t", "employee": "E04", "kind": "time_off", "date": "2025-08-27", "start": "15:00",
         "end": "17:00"},
        {"id": "t2", "employee": "E04", "kind": "time_off", "date": "2025-09-02", "start": "08:30",
         "end": "10:00"},
        {"id": "d", "employee": "E05", "kind": "official_duty", "date": "2025-08-26",
         "start": "07:30"},
        {"id": "d2", "employee": "E05", "kind": "official_duty", "date": "2025-08-28"},
        {"id": "d3", "employee": "E12", "kind": "official_duty", "date": "2025-09-04",
         "end": "17:45"},
        {"id": "l", "employee": "E06", "kind": "leave", "from": "2025-08-26", "to": "2025-08-29",
         "type": "annual"},
        {"id": "l2", "employee": "E07", "kind": "leave", "date": "2025-08-27", "part": "am"},
        {"id": "l3", "employee": "E07", "kind": "leave", "date": "2025-09-03", "part": "pm"},
        {"id": "m", "employee": "E11", "kind": "pregnancy_early_leave", "from": "2025-09-01",
         "to": "2025-09-02"},  # a roster officer
    ]  # fmt: skip


def settings(tmp_path: Path, store_url: str) -> dict[str, Any]:
    return {
        "hub": {"database": store_url, "data_dir": str(tmp_path / "data")},
        "offices": OFFICES,
        "devices": [{"id": f"zk-{o['id']}", "kind": "csv", "office": o["id"],
                     "preset": "zkteco_attlog"} for o in OFFICES]
        + [{"id": "phone", "kind": "http", "office": "pjy"},
           {"id": "phone-kch", "kind": "http", "office": "kch"}],
        "employees": [
            {"id": f"E{n:02d}", "user_ids": [str(n)],
             **({"office": WHERE[n % 7]} if WHERE[n % 7] else {}), "scheme": SCHEME_OF[n // 6 % 7]}
            for n in range(N)
        ],
        "schemes": SCHEMES,
        "calendar": {
            "holidays": {"add": [{"date": "2025-08-29", "name": "Cuti peristiwa",
                                  "states": ["SGR"]}, {"date": "2025-09-04", "offices": ["kdh"]}],
                         "remove": [{"date": "2025-09-01", "offices": ["jhr"]}]},
            "weekends": [{"from": "2025-09-01", "days": ["FRI", "SAT"], "offices": ["kch"]}],
        },
        "facts": facts(),
        "api": {"enabled": False},
    }  # fmt: skip


def month(
    cfg: HubConfig, rnd: random.Random
) -> tuple[dict[str, list[str]], list[tuple[str, RawPunch]]]:
    """Attlog lines by device, and the phone's punches (live), of the range and a day around."""
    lines: dict[str, list[str]] = defaultdict(list)
    phone: list[tuple[str, RawPunch]] = []
    day = FIRST - dt.timedelta(days=1)
    while day <= LAST + dt.timedelta(days=1):
        for n, emp in enumerate(cfg.employees):
            office = emp.office or rnd.choice(["pjy", "sgr", "kch"])
            if rnd.random() < 0.12:
                continue  # absent, or a rest day
            night = emp.scheme in ("MALAM", "JAGA") and rnd.random() < 0.6
            start = dt.datetime.combine(day, dt.time(21 if night else 7, 0))
            arrive = start + dt.timedelta(seconds=rnd.randint(0, 3 * 3600))
            leave = arrive + dt.timedelta(seconds=rnd.randint(6 * 3600, 10 * 3600))
            times = [arrive, leave]
            if rnd.random() < 0.15:
                times.pop(rnd.randrange(2))  # only in, or only out
            if rnd.random() < 0.2:  # a near-duplicate, within the window or just past it
                times.append(times[0] + dt.timedelta(seconds=rnd.choice([0, 30, 119, 120, 121])))
            if rnd.random() < 0.1:
                times.append(dt.datetime.combine(day, dt.time(23, rnd.randint(30, 59))))
            if rnd.random() < 0.05:
                times.append(dt.datetime.combine(day, dt.time(0, rnd.randint(0, 59), 30)))
            if emp.scheme in ("MALAM", "JAGA") and rnd.random() < 0.5:  # a window's edges
                edge = rnd.choice(
                    [
                        "03:59:59",
                        "04:00:00",
                        "10:59:59",
                        "11:00:59",
                        "11:01:00",
                        "05:59:30",
                        "06:00:00",
                        "06:01:00",
                        "18:59:59",
                        "19:00:00",
                    ]
                )
                times.append(dt.datetime.combine(day, dt.time.fromisoformat(edge)))
            elif rnd.random() < 0.3:  # WBF's and the fixed hours' edges
                edge = rnd.choice(
                    [
                        "07:29:59",
                        "07:30:00",
                        "07:30:01",
                        "08:10:00",
                        "08:10:59",
                        "09:00:00",
                        "09:00:01",
                        "09:00:59",
                        "09:01:00",
                    ]
                )
                times[0] = dt.datetime.combine(day, dt.time.fromisoformat(edge))
            for at in times:
                status = rnd.choice([0, 0, 1, 1, 2, 3, 4, 5])
                if rnd.random() < 0.25:  # the phone: a direction or none, here or away
                    lat, lon = rnd.choice([(2.9264, 101.6964), (3.15, 101.7), (3.0901, 101.5501)])
                    kind = rnd.choice([None, "in", "out", "unknown"])
                    dev = "phone-kch" if office == "kch" else "phone"
                    phone.append((dev, RawPunch(device_time=at, user_id=str(n), punch=kind,
                                                latitude=lat, longitude=lon)))  # fmt: skip
                else:
                    when = at.strftime("%Y-%m-%d %H:%M:%S")
                    lines[f"zk-{office}"].append(f"{n:>9}\t{when}\t1\t{status}\t1\t0\r\n")
        day += dt.timedelta(days=1)
    return lines, phone


def stored(cfg: HubConfig, store: Store, tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    lines, phone = month(cfg, rnd)
    for device, rows in lines.items():
        path = tmp_path / f"{device}_attlog.dat"
        path.write_text("".join(rows), newline="")
        dev = cfg.device(device)
        summary = import_file(cfg, store, path, dev, options_for(dev), writer="thread")
        assert summary.imported and not summary.quarantined, summary.problems
    norm = Normalizer(cfg)
    records: list[Record] = []
    for device, raw in phone:
        rec = norm.normalize(cfg.device(device), raw, now=LATER)
        assert isinstance(rec, Record), rec
        records.append(rec)
    # times the fast way does not read: a fraction of a second, an offset instead of Z
    odd = [r for r in records if r.employee_id in ("E09", "E16")][:6]
    for k, rec in enumerate(odd):
        at = dt.datetime.fromisoformat(rec.occurred_at.replace("Z", "+00:00"))
        text = (at.isoformat().replace("+00:00", ".250Z") if k % 2 else
                at.astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat())  # fmt: skip
        records.append(dataclasses.replace(rec, id=rec.id[:-4] + "beef", occurred_at=text))
    rnd.shuffle(records)
    for k in range(0, len(records), 50):
        store.commit(records[k : k + 50])


def reference(
    cfg: HubConfig, store: Store, first: dt.date, last: dt.date, office: str | None = None,
    employee: str | None = None, now: dt.datetime = LATER,
    employees: Collection[str] | None = None,
) -> Iterator[Day]:  # fmt: skip
    """The days as the rules give them, the plain way (the book's first version)."""
    calendar = Calendar(cfg.calendar)
    facts: dict[str, list[Any]] = defaultdict(list)
    for fact in cfg.facts:
        facts[fact.employee].append(fact)
    officers = [e for e in cfg.employees if (employee is None or e.id == employee)
                and (employees is None or e.id in employees)]  # fmt: skip
    wanted = {e.id for e in officers}
    since = dt.datetime.combine(first - dt.timedelta(days=1), dt.time(), dt.UTC)
    until = dt.datetime.combine(last + dt.timedelta(days=2), dt.time(), dt.UTC)
    flt = RecordFilter(employee_id=employee, since=utc_z(since), until=utc_z(until))
    by_employee: dict[str, list[Punch]] = defaultdict(list)
    office_of: dict[str, str] = {}
    for rec in store.iter_records(flt):
        if rec.get("employee_id") in wanted:
            p = Punch.from_record(rec)
            by_employee[rec["employee_id"]].append(p)
            office_of[p.id] = rec.get("office_id") or ""
    dates = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    for emp in officers:
        punches = by_employee.get(emp.id, [])
        # the home office: the officer's own, else the first office
        home = cfg.office(emp.office) if emp.office is not None else cfg.offices[0]
        if office is not None and home.id != office:
            continue
        scheme = cfg.schemes[emp.scheme]
        assigned = assign_days(punches, scheme, ZoneInfo(home.timezone))
        for d in dates:
            yield compute_day(emp.id, home, emp.scheme, scheme, calendar.day(home, d),
                              facts.get(emp.id, []), assigned.get(d, []), now)  # fmt: skip


def dicts(days: Iterator[Day]) -> list[dict[str, Any]]:
    return [d.to_dict() for d in days]


@pytest.fixture
def cfg(tmp_path: Path, store: Store) -> HubConfig:
    cfg = config_from_dict(settings(tmp_path, store.url), base_dir=tmp_path)
    stored(cfg, store, tmp_path, seed=20250901)
    return cfg


def test_every_day_is_the_rules_day(
    cfg: HubConfig, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ways: Counter[str] = Counter()
    for name in ("day_of", "compute_day"):
        real = getattr(book_module, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Day:
            ways[_name] += 1
            return _real(*args, **kw)  # type: ignore[no-any-return]

        monkeypatch.setattr(book_module, name, counted)
    for now in (LATER, MIDWAY):
        fast = dicts(DayBook(cfg, store).days(FIRST, LAST, now=now))
        plain = dicts(reference(cfg, store, FIRST, LAST, now=now))
        assert len(fast) == N * ((LAST - FIRST).days + 1)
        for mine, theirs in zip(fast, plain, strict=True):
            assert mine == theirs
    # each way was taken: days from the store's rows as they are, and the odd times' officers
    # through `compute_day` (a `Punch` a record)
    assert ways["day_of"] > 600 and ways["compute_day"] > 14
    # and the month holds what the rules tell apart
    seen = Counter(d["status"] for d in fast)
    assert set(seen) == {"complete", "incomplete", "absent", "leave", "off"}
    tags = Counter(t for d in fast for t in d["tags"])
    assert set(tags) >= {"cross_midnight", "external", "provisional", "worked_rest_day",
                         "worked_holiday", "bdr", "time_off", "official_duty",
                         "pregnancy_early_leave", "ramadan_early_leave"}  # fmt: skip
    assert any(d["late"] for d in fast) and any(d["early_out"] for d in fast)
    assert any("taken as one" in line for d in fast for line in d["explain"])
    assert {d["office_id"] for d in fast} == {o["id"] for o in OFFICES}


def test_a_filtered_book_gives_the_same_days(cfg: HubConfig, store: Store) -> None:
    book = DayBook(cfg, store)
    for kw in ({"office": "pjy"}, {"employee": "E05"}, {"employee": "E09"},
               {"employees": ["E03", "E09", "E35", "nobody"]}, {"employees": ["E16"]},
               {"employees": []}, {"employees": {"E02"}, "office": "sgr"},
               {"employee": "E20", "employees": ["E20", "E21"]}):  # fmt: skip
        first, last = dt.date(2025, 8, 31), dt.date(2025, 9, 2)
        fast = dicts(book.days(first, last, now=MIDWAY, **kw))  # type: ignore[arg-type]
        assert fast == dicts(reference(cfg, store, first, last, now=MIDWAY, **kw))  # type: ignore[arg-type]
    assert [d.employee_id for d in book.days(FIRST, FIRST, employees=["E20", "E03"])] == [
        "E03", "E20"
    ]  # fmt: skip


def test_the_comparison_tells_a_different_rule(cfg: HubConfig, store: Store) -> None:
    """A book that merges near-duplicates within 60 s instead of 120 gives other days: the
    comparison above would see a fast way that went wrong."""
    other = DayBook(cfg, store)
    other.merge_window_s = 60
    fast = dicts(other.days(FIRST, LAST, now=LATER))
    assert fast != dicts(reference(cfg, store, FIRST, LAST, now=LATER))


def test_record_fields_are_the_records_fields(cfg: HubConfig, store: Store) -> None:
    names = ("seq", *RECORD_FIELDS)
    flt = RecordFilter(since="2025-08-30T00:00:00Z", until="2025-09-02T00:00:00Z")
    whole = [tuple(rec.get(n) for n in names) for rec in store.iter_records(flt)]
    assert whole and whole == list(store.record_fields(names, flt, page=97))
    assert {rec["raw"] is None for rec in store.iter_records(flt)} == {True, False}  # both ways
    picked = ("punch", "id", "raw", "seq", "office_state", "employee_id")  # in any order
    assert [tuple(r[names.index(n)] for n in picked) for r in whole] == list(
        store.record_fields(picked, flt)
    )
    one = next(store.record_fields(("flags",), flt))
    one[0].append("changed")  # a shape's common list is each record's own
    assert next(store.record_fields(("flags",), flt)) == ([],)
    with pytest.raises(ValueError, match="not record fields"):
        next(store.record_fields(("nope",)))


def test_an_officer_without_a_home_office_is_homed_at_the_first_office(
    cfg: HubConfig, store: Store
) -> None:
    homeless = [e.id for e in cfg.employees if e.office is None]
    assert homeless
    days = list(DayBook(cfg, store).days(FIRST, LAST, employees=homeless))
    assert {d.office_id for d in days} == {cfg.offices[0].id}


def test_days_across_a_change_of_offset(tmp_path: Path, store: Store) -> None:
    """Offices abroad: Lord Howe Island's clocks go from +10:30 to +11 at 15:30 UTC (inside an
    hour), London's back from +01 to +00 on the hour; a night shift and WBF days across both."""
    data = {
        "hub": {"database": store.url, "data_dir": str(tmp_path / "data")},
        "offices": [{"id": "lhi", "timezone": "Australia/Lord_Howe"},
                    {"id": "lon", "timezone": "Europe/London"}],
        "devices": [{"id": "p-lhi", "kind": "http", "office": "lhi"},
                    {"id": "p-lon", "kind": "http", "office": "lon"}],
        "employees": [{"id": f"X{n}", "user_ids": [str(n)], "office": ["lhi", "lon"][n % 2],
                       "scheme": ["WBF", "JAGA"][n // 2 % 2]} for n in range(8)],
        "schemes": {"JAGA": SCHEMES["JAGA"]},
        "api": {"enabled": False},
    }  # fmt: skip
    cfg = config_from_dict(data, base_dir=tmp_path)
    norm = Normalizer(cfg)
    rnd = random.Random(7)
    records = []
    for n in range(8):
        device = cfg.device(["p-lhi", "p-lon"][n % 2])
        for day in (dt.date(2025, 10, d) for d in (3, 4, 5, 25, 26, 27)):
            for clock in ("01:10:00", "01:59:30", "02:40:00", "03:50:00", "08:55:00", "17:58:00",
                          "20:30:00", "23:59:59"):  # fmt: skip
                if rnd.random() < 0.6:
                    at = dt.datetime.combine(day, dt.time.fromisoformat(clock))
                    rec = norm.normalize(
                        device, RawPunch(device_time=at, user_id=str(n)), now=LATER
                    )
                    assert isinstance(rec, Record)
                    records.append(rec)
    store.commit(records)
    first, last = dt.date(2025, 10, 2), dt.date(2025, 10, 28)
    fast = dicts(DayBook(cfg, store).days(first, last, now=LATER))
    assert fast == dicts(reference(cfg, store, first, last, now=LATER))
    offsets = {d["first_in"][-6:] for d in fast if d["first_in"]}
    assert offsets >= {"+10:30", "+11:00", "+01:00", "+00:00"}
