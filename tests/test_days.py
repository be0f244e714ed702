"""Attendance days from stored punches: every rule with its worked example, on SQLite and
PostgreSQL (the `store` fixture), and the `spotme-hub days` command over a real store."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from spotme_hub.attendance.book import DayBook
from spotme_hub.attendance.rules import Day
from spotme_hub.config import HubConfig
from spotme_hub.normalize import Normalizer
from spotme_hub.record import RawPunch, Record
from spotme_hub.service import config_from_dict
from spotme_hub.store import Store

ROOT = Path(__file__).resolve().parent.parent
LATER = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)  # every day asked has settled

OFFICES = [
    {"id": "pjy", "state": "PJY", "latitude": 2.9264, "longitude": 101.6964, "geofence_m": 150},
    {"id": "trg", "state": "TRG"},
    {"id": "kdh", "state": "KDH"},
    {"id": "sgr", "state": "SGR"},
    {"id": "jhr", "state": "JHR"},
]


def settings(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "hub": {"data_dir": str(tmp_path / "data"), "sqlite_synchronous": "NORMAL"},
        "offices": OFFICES,
        "devices": [{"id": f"zk-{o['id']}", "kind": "csv", "office": o["id"]} for o in OFFICES]
        + [{"id": "phone", "kind": "http", "office": "pjy"}],
        "employees": [
            {
                "id": f"S-{o['id']}",
                "user_ids": [f"zk-{o['id']}:1", f"phone:{o['id']}"],
                "office": o["id"],
            }
            for o in OFFICES
        ],  # fmt: skip
        "api": {"enabled": False},
    }
    for key, value in extra.items():
        if key == "employees":
            data["employees"] = [*data["employees"], *value]
        else:
            data[key] = value
    return data


@pytest.fixture
def cfg(tmp_path: Path) -> HubConfig:
    return config_from_dict(settings(tmp_path), base_dir=tmp_path)


def punch(
    cfg: HubConfig, store: Store, device: str, local: str, kind: str | None = None,
    user: str = "1", **raw: Any,
) -> Record:  # fmt: skip
    """Normalise and commit one punch at a device-local wall-clock time."""
    out = Normalizer(cfg).normalize(
        cfg.device(device),
        RawPunch(device_time=dt.datetime.fromisoformat(local), user_id=user, punch=kind, **raw),
        now=LATER,
    )
    assert isinstance(out, Record), out
    store.commit([out])
    return out


def day(cfg: HubConfig, store: Store, emp: str, date: str, now: dt.datetime = LATER) -> Day:
    d = dt.date.fromisoformat(date)
    (only,) = DayBook(cfg, store).days(d, d, employee=emp, now=now)
    return only


# -- WBF worked examples --------------------------------------------------------------------------


def test_wbf_on_time_is_due_nine_hours_after_the_first_punch(cfg: HubConfig, store: Store) -> None:
    punch(cfg, store, "zk-pjy", "2025-07-16T08:30:00")
    punch(cfg, store, "zk-pjy", "2025-07-16T17:35:00")
    d = day(cfg, store, "S-pjy", "2025-07-16")
    assert (d.day_kind, d.status, d.late, d.early_out) == ("working", "complete", False, False)
    assert (d.effective_in, d.due_out, d.span_min, d.required_min) == ("08:30", "17:30", 540, 540)
    assert d.first_in == "2025-07-16T08:30:00+08:00"
    assert d.last_out == "2025-07-16T17:35:00+08:00"
    assert d.sources == ["csv"] and len(d.punches) == 2


def test_wbf_a_punch_before_0730_counts_from_0730(cfg: HubConfig, store: Store) -> None:
    punch(cfg, store, "zk-pjy", "2025-07-16T07:00:00")
    punch(cfg, store, "zk-pjy", "2025-07-16T16:35:00")
    d = day(cfg, store, "S-pjy", "2025-07-16")
    assert (d.status, d.effective_in, d.due_out, d.early_out) == (
        "complete",
        "07:30",
        "16:30",
        False,
    )


def test_wbf_late_officer_is_due_at_office_end(cfg: HubConfig, store: Store) -> None:
    punch(cfg, store, "zk-pjy", "2025-07-16T09:01:00")
    punch(cfg, store, "zk-pjy", "2025-07-16T18:00:00")
    d = day(cfg, store, "S-pjy", "2025-07-16")
    assert (d.status, d.late, d.late_min, d.due_out, d.early_out) == (
        "complete", True, 1, "18:00", False,
    )  # fmt: skip
    assert any("Late" in line for line in d.explain)


def test_early_out_is_measured_against_due_out(cfg: HubConfig, store: Store) -> None:
    punch(cfg, store, "zk-pjy", "2025-07-16T08:00:00")
    punch(cfg, store, "zk-pjy", "2025-07-16T16:40:00")
    d = day(cfg, store, "S-pjy", "2025-07-16")
    assert (d.status, d.due_out, d.early_out, d.early_min) == ("complete", "17:00", True, 20)


@pytest.mark.parametrize(
    ("granularity", "first", "late", "late_min"),
    [("minute", "09:00:59", False, 0), ("second", "09:00:01", True, 1),
     ("minute", "09:01:00", True, 1), ("second", "09:00:00", False, 0)],
)  # fmt: skip
def test_late_is_compared_at_the_configured_granularity(
    tmp_path: Path, store: Store, granularity: str, first: str, late: bool, late_min: int
) -> None:
    data = settings(tmp_path, schemes={"WBF": {"late_granularity": granularity}})
    cfg = config_from_dict(data, base_dir=tmp_path)
    punch(cfg, store, "zk-pjy", f"2025-07-16T{first}")
    punch(cfg, store, "zk-pjy", "2025-07-16T18:05:00")
    d = day(cfg, store, "S-pjy", "2025-07-16")
    assert (d.late, d.late_min) == (late, late_min)


def test_thursday_before_a_fri_sat_weekend_is_the_short_day(cfg: HubConfig, store: Store) -> None:
    punch(cfg, store, "zk-trg", "2025-07-17T08:15:00")
    punch(cfg, store, "zk-trg", "2025-07-17T15:45:00")
    d = day(cfg, store, "S-trg", "2025-07-17")
    assert (d.status, d.span_min, d.due_out, d.early_out) == ("complete", 450, "15:45", False)
    # the same punches on a Thursday in Selangor fall short of the 9-hour span
    punch(cfg, store, "zk-sgr", "2025-07-17T08:15:00")
    punch(cfg, store, "zk-sgr", "2025-07-17T15:45:00")
    s = day(cfg, store, "S-sgr", "2025-07-17")
    assert (s.span_min, s.due_out, s.early_out, s.early_min) == (540, "17:15", True, 90)


def test_sunday_is_a_working_day_in_kedah(cfg: HubConfig, store: Store) -> None:
    punch(cfg, store, "zk-kdh", "2025-07-13T08:00:00")
    punch(cfg, store, "zk-kdh", "2025-07-13T17:00:00")
    d = day(cfg, store, "S-kdh", "2025-07-13")
    assert (d.day_kind, d.status, d.due_out, d.early_out) == ("working", "complete", "17:00", False)
    assert day(cfg, store, "S-kdh", "2025-07-18").day_kind == "rest_day"  # a Friday


def test_saturday_without_punches_is_off_in_selangor(cfg: HubConfig, store: Store) -> None:
    d = day(cfg, store, "S-sgr", "2025-07-19")
    assert (d.day_kind, d.status, d.punches) == ("rest_day", "off", [])


def test_johor_weekend_moved_to_sat_sun_in_2025(cfg: HubConfig, store: Store) -> None:
    assert day(cfg, store, "S-jhr", "2024-12-27").day_kind == "rest_day"  # Friday, 2024
    thu_2024 = day(cfg, store, "S-jhr", "2024-12-26")
    assert (thu_2024.day_kind, thu_2024.span_min) == ("working", 450)
    assert day(cfg, store, "S-jhr", "2025-01-03").day_kind == "working"  # Friday, 2025
    assert day(cfg, store, "S-jhr", "2025-01-02").span_min == 540  # no short Thursday any more
    assert day(cfg, store, "S-jhr", "2025-01-04").day_kind == "rest_day"


def test_public_holidays_follow_the_state_and_its_weekend(cfg: HubConfig, store: Store) -> None:
    # National Day 2025 was a Sunday: observed on Monday where Sunday is a rest day
    sgr = day(cfg, store, "S-sgr", "2025-09-01")
    assert (sgr.day_kind, sgr.status) == ("holiday", "off")
    assert sgr.holiday is not None and "National Day" in sgr.holiday
    kdh = day(cfg, store, "S-kdh", "2025-09-01")
    assert kdh.day_kind == "working" and kdh.status == "absent"


def test_calendar_additions_and_removals_by_state_and_office(tmp_path: Path, store: Store) -> None:
    data = settings(tmp_path, calendar={"holidays": {
        "add": [{"date": "2025-01-06", "name": "Cuti khas penjawat awam", "states": ["JHR"]},
                {"date": "2025-07-16", "name": "Cuti peristiwa", "offices": ["pjy"]}],
        "remove": [{"date": "2025-09-01", "states": ["SGR"]}],
    }})  # fmt: skip
    cfg = config_from_dict(data, base_dir=tmp_path)
    jhr = day(cfg, store, "S-jhr", "2025-01-06")
    assert (jhr.day_kind, jhr.holiday) == ("holiday", "Cuti khas penjawat awam")
    assert day(cfg, store, "S-sgr", "2025-01-06").day_kind == "working"
    assert day(cfg, store, "S-pjy", "2025-07-16").holiday == "Cuti peristiwa"
    assert day(cfg, store, "S-sgr", "2025-09-01").day_kind == "working"


def test_weekend_overrides_are_effective_dated(tmp_path: Path, store: Store) -> None:
    data = settings(tmp_path, calendar={"weekends": [
        {"from": "2026-01-01", "days": ["FRI", "SAT"], "offices": ["sgr"]}]})  # fmt: skip
    cfg = config_from_dict(data, base_dir=tmp_path)
    assert day(cfg, store, "S-sgr", "2025-12-26").day_kind == "working"  # Friday, before
    assert day(cfg, store, "S-sgr", "2026-01-02").day_kind == "rest_day"  # Friday, after
    assert day(cfg, store, "S-sgr", "2026-01-08").span_min == 450  # the short Thursday


def test_worked_rest_day_is_off_and_tagged(cfg: HubConfig, store: Store) -> None:
    punch(cfg, store, "zk-sgr", "2025-07-19T09:00:00")
    punch(cfg, store, "zk-sgr", "2025-07-19T13:00:00")
    d = day(cfg, store, "S-sgr", "2025-07-19")
    assert (d.status, d.tags, d.late) == ("off", ["worked_rest_day"], False)
    assert d.first_in == "2025-07-19T09:00:00+08:00"


# -- merging sources, directions --------------------------------------------------------------


def test_punches_of_every_source_merge_and_near_duplicates_collapse(
    cfg: HubConfig, store: Store
) -> None:
    punch(cfg, store, "zk-pjy", "2025-07-16T08:10:00")
    punch(cfg, store, "phone", "2025-07-16T08:11:30", user="pjy")  # the same arrival, twice
    punch(cfg, store, "phone", "2025-07-16T17:20:00", user="pjy")
    d = day(cfg, store, "S-pjy", "2025-07-16")
    assert (d.status, d.first_in, d.due_out) == ("complete", "2025-07-16T08:10:00+08:00", "17:10")
    assert d.sources == ["csv", "http"] and len(d.punches) == 3
    assert any("taken as one" in line for line in d.explain)


def test_one_punch_is_incomplete_and_a_lone_out_is_not_an_in(cfg: HubConfig, store: Store) -> None:
    punch(cfg, store, "zk-pjy", "2025-07-16T08:10:00")
    assert day(cfg, store, "S-pjy", "2025-07-16").status == "incomplete"
    punch(cfg, store, "zk-sgr", "2025-07-16T17:40:00", "out")
    d = day(cfg, store, "S-sgr", "2025-07-16")
    assert (d.status, d.first_in, d.last_out) == ("incomplete", None, "2025-07-16T17:40:00+08:00")


def test_directions_given_by_the_source_win_over_order(cfg: HubConfig, store: Store) -> None:
    punch(cfg, store, "zk-pjy", "2025-07-16T08:05:00", "in")
    punch(cfg, store, "zk-pjy", "2025-07-16T17:10:00", "out")
    punch(cfg, store, "zk-pjy", "2025-07-16T17:30:00", "in")  # a stray "in" on the way out
    d = day(cfg, store, "S-pjy", "2025-07-16")
    assert d.last_out == "2025-07-16T17:10:00+08:00"
    assert (d.due_out, d.early_out) == ("17:05", False)


def test_a_punch_outside_the_geofence_tags_the_day_external(cfg: HubConfig, store: Store) -> None:
    punch(cfg, store, "phone", "2025-07-16T08:00:00", user="pjy", latitude=3.15, longitude=101.7)
    punch(cfg, store, "zk-pjy", "2025-07-16T17:00:00")
    d = day(cfg, store, "S-pjy", "2025-07-16")
    assert "external" in d.tags and d.status == "complete"


# -- facts ------------------------------------------------------------------------------------


def facts_config(tmp_path: Path, *facts: dict[str, Any]) -> HubConfig:
    data = settings(tmp_path, facts=list(facts))
    return config_from_dict(data, base_dir=tmp_path)


def test_pregnancy_early_leave_takes_an_hour_off(tmp_path: Path, store: Store) -> None:
    cfg = facts_config(tmp_path, {"id": "f1", "employee": "S-pjy", "kind": "pregnancy_early_leave",
                                  "from": "2025-06-02", "to": "2025-09-30", "ref": "KJ/2025/12"})  # fmt: skip
    punch(cfg, store, "zk-pjy", "2025-07-16T08:00:00")
    punch(cfg, store, "zk-pjy", "2025-07-16T16:00:00")
    d = day(cfg, store, "S-pjy", "2025-07-16")
    assert (d.required_min, d.due_out, d.early_out) == (480, "16:00", False)
    assert d.tags == ["pregnancy_early_leave"]
    punch(cfg, store, "zk-pjy", "2025-07-17T09:30:00")  # late: due an hour before office end
    punch(cfg, store, "zk-pjy", "2025-07-17T17:00:00")
    late = day(cfg, store, "S-pjy", "2025-07-17")
    assert (late.late, late.due_out, late.early_out) == (True, "17:00", False)
    assert day(cfg, store, "S-pjy", "2025-10-01").required_min == 540  # after the approval


def test_ramadan_early_leave_takes_half_an_hour_off(tmp_path: Path, store: Store) -> None:
    cfg = facts_config(tmp_path, {"id": "r", "employee": "S-trg", "kind": "ramadan_early_leave",
                                  "from": "2026-02-19", "to": "2026-03-19"})  # fmt: skip
    punch(cfg, store, "zk-trg", "2026-03-05T08:00:00")  # a Thursday in Terengganu: short day
    punch(cfg, store, "zk-trg", "2026-03-05T15:00:00")
    d = day(cfg, store, "S-trg", "2026-03-05")
    assert (d.span_min, d.required_min, d.due_out, d.early_out) == (450, 420, "15:00", False)


def test_time_off_is_credited_up_to_its_cap(tmp_path: Path, store: Store) -> None:
    cfg = facts_config(tmp_path, {"id": "t", "employee": "S-pjy", "kind": "time_off",
                                  "date": "2025-10-07", "start": "15:00", "end": "17:00"})  # fmt: skip
    punch(cfg, store, "zk-pjy", "2025-10-07T08:30:00")
    punch(cfg, store, "zk-pjy", "2025-10-07T15:00:00")
    d = day(cfg, store, "S-pjy", "2025-10-07")
    # due 17:30; left 150 min early, 120 of them approved
    assert (d.due_out, d.early_out, d.early_min) == ("17:30", True, 30)
    assert "time_off" in d.tags


def test_leave_is_never_absent(tmp_path: Path, store: Store) -> None:
    cfg = facts_config(
        tmp_path,
        {"id": "l", "employee": "S-sgr", "kind": "leave", "from": "2025-07-14",
         "to": "2025-07-18", "type": "annual"},
        {"id": "h", "employee": "S-pjy", "kind": "leave", "date": "2025-07-16", "part": "am"},
    )  # fmt: skip
    assert day(cfg, store, "S-sgr", "2025-07-16").status == "leave"
    assert day(cfg, store, "S-sgr", "2025-07-21").status == "absent"
    punch(cfg, store, "zk-pjy", "2025-07-16T13:30:00")  # morning off: in after lunch
    punch(cfg, store, "zk-pjy", "2025-07-16T18:00:00")
    half = day(cfg, store, "S-pjy", "2025-07-16")
    assert (half.status, half.required_min, half.due_out, half.early_out) == (
        "complete", 270, "18:00", False,
    )  # fmt: skip


def test_official_duty_deems_the_times_and_a_full_day_is_present(
    tmp_path: Path, store: Store
) -> None:
    cfg = facts_config(
        tmp_path,
        {"id": "d1", "employee": "S-pjy", "kind": "official_duty", "date": "2025-07-16",
         "start": "07:30"},
        {"id": "d2", "employee": "S-sgr", "kind": "official_duty", "date": "2025-07-16",
         "type": "kursus"},
    )  # fmt: skip
    punch(cfg, store, "zk-pjy", "2025-07-16T11:20:00")  # back from an early meeting
    punch(cfg, store, "zk-pjy", "2025-07-16T16:35:00")
    d = day(cfg, store, "S-pjy", "2025-07-16")
    assert (d.status, d.late, d.effective_in, d.due_out, d.early_out) == (
        "complete", False, "07:30", "16:30", False,
    )  # fmt: skip
    away = day(cfg, store, "S-sgr", "2025-07-16")
    assert (away.status, away.tags) == ("complete", ["official_duty"])


def test_bdr_punch_at_home_is_present_and_elsewhere_is_external(
    tmp_path: Path, store: Store
) -> None:
    cfg = facts_config(tmp_path, {
        "id": "b", "employee": "S-pjy", "kind": "bdr", "from": "2026-04-15", "to": "2026-06-30",
        "weekdays": ["MON", "TUE", "WED"], "latitude": 3.09, "longitude": 101.55, "radius_m": 200,
    })  # fmt: skip
    punch(
        cfg, store, "phone", "2026-04-15T08:00:00", user="pjy", latitude=3.0901, longitude=101.5501
    )
    punch(
        cfg, store, "phone", "2026-04-15T17:05:00", user="pjy", latitude=3.0902, longitude=101.5502
    )
    home = day(cfg, store, "S-pjy", "2026-04-15")
    assert (home.status, home.tags) == ("complete", ["bdr"])
    punch(cfg, store, "phone", "2026-04-21T08:00:00", user="pjy", latitude=3.2, longitude=101.7)
    punch(
        cfg, store, "phone", "2026-04-21T17:05:00", user="pjy", latitude=3.0901, longitude=101.5501
    )
    away = day(cfg, store, "S-pjy", "2026-04-21")
    assert away.tags == ["bdr", "external"]
    assert "bdr" not in day(cfg, store, "S-pjy", "2026-04-16").tags  # a Thursday: not a BDR day


# -- other schemes ----------------------------------------------------------------------------


def test_roster_shift_across_midnight_belongs_to_the_day_it_starts(
    tmp_path: Path, store: Store
) -> None:
    data = settings(
        tmp_path,
        schemes={"NIGHT": {"kind": "roster", "shifts": {"night": {"start": "22:00", "end": "07:00"}}}},
        employees=[{"id": "N1", "user_ids": ["zk-pjy:5"], "office": "pjy", "scheme": "NIGHT"}],
    )  # fmt: skip
    cfg = config_from_dict(data, base_dir=tmp_path)
    punch(cfg, store, "zk-pjy", "2025-07-15T21:55:00", user="5")
    punch(cfg, store, "zk-pjy", "2025-07-16T07:05:00", user="5")
    punch(cfg, store, "zk-pjy", "2025-07-16T22:10:00", user="5")  # the next night: late
    punch(cfg, store, "zk-pjy", "2025-07-17T07:00:00", user="5")
    tue = day(cfg, store, "N1", "2025-07-15")
    assert (tue.status, tue.late, tue.early_out, tue.due_out) == ("complete", False, False, "07:00")
    assert tue.tags == ["cross_midnight"] and len(tue.punches) == 2
    assert tue.last_out == "2025-07-16T07:05:00+08:00"
    wed = day(cfg, store, "N1", "2025-07-16")
    assert (wed.status, wed.late, wed.late_min, len(wed.punches)) == ("complete", True, 10, 2)


def test_fixed_hours_with_grace(tmp_path: Path, store: Store) -> None:
    data = settings(
        tmp_path,
        schemes={"KAUNTER": {"kind": "fixed", "start": "08:00", "end": "17:00", "grace": 10}},
        employees=[{"id": "K1", "user_ids": ["zk-pjy:6"], "office": "pjy", "scheme": "KAUNTER"}],
    )  # fmt: skip
    cfg = config_from_dict(data, base_dir=tmp_path)
    punch(cfg, store, "zk-pjy", "2025-07-16T08:09:00", user="6")
    punch(cfg, store, "zk-pjy", "2025-07-16T16:50:00", user="6")
    d = day(cfg, store, "K1", "2025-07-16")
    assert (d.late, d.due_out, d.early_out, d.early_min) == (False, "17:00", True, 10)
    punch(cfg, store, "zk-pjy", "2025-07-17T08:11:00", user="6")
    assert day(cfg, store, "K1", "2025-07-17").late_min == 1


# -- today ------------------------------------------------------------------------------------


def test_today_is_provisional_and_absent_only_once_settled(cfg: HubConfig, store: Store) -> None:
    morning = dt.datetime(2025, 7, 16, 2, 0, tzinfo=dt.UTC)  # 10:00 in Putrajaya
    d = day(cfg, store, "S-pjy", "2025-07-16", now=morning)
    assert (d.status, d.tags) == ("incomplete", ["provisional"])
    evening = dt.datetime(2025, 7, 16, 11, 30, tzinfo=dt.UTC)  # 19:30, after office end + 1 h
    assert day(cfg, store, "S-pjy", "2025-07-16", now=evening).status == "absent"


# -- configuration and the command ----------------------------------------------------------------


def test_bad_facts_and_schemes_are_named_by_file_line_and_field(tmp_path: Path) -> None:
    data = settings(tmp_path, facts=[
        {"id": "x", "employee": "S-pjy", "kind": "time_off", "date": "2025-07-16"},
        {"id": "y", "employee": "nobody", "kind": "leave", "date": "2025-07-16"},
    ], employees=[{"id": "Z", "scheme": "SHIFTY"}],
       calendar={"weekends": [{"from": "2026-01-01", "days": ["FRI"], "offices": ["nowhere"]}]})  # fmt: skip
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = subprocess.run([sys.executable, "-m", "spotme_hub.cli", "config", "check", "-c", str(path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert out.returncode == 2, out.stderr
    text = out.stdout + out.stderr
    assert "facts[0]" in text and "time_off needs `start` and `end`" in text
    assert "facts[1].employee: unknown employee 'nobody'" in text
    assert "scheme: unknown scheme 'SHIFTY'" in text
    assert "calendar.weekends[0].offices[0]: unknown office 'nowhere'" in text
    assert "hub.yaml:" in text


def test_days_command_prints_every_officer_every_date(tmp_path: Path) -> None:
    data = settings(tmp_path)
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = config_from_dict(data, base_dir=tmp_path)
    store = Store(cfg.database_url)
    from spotme_hub.service import tables

    store.create_all(tables())
    punch(cfg, store, "zk-pjy", "2025-07-16T09:05:00")
    punch(cfg, store, "zk-pjy", "2025-07-16T18:01:00")
    store.close()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "spotme_hub.cli", "days", *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip

    out = run("-c", str(path), "--date", "2025-07-16", "--to", "2025-07-17", "--format", "json")
    assert out.returncode == 0, out.stderr
    days = json.loads(out.stdout)
    assert len(days) == len(OFFICES) * 2
    mine = next(d for d in days if d["employee_id"] == "S-pjy" and d["date"] == "2025-07-16")
    assert (mine["status"], mine["late"], mine["late_min"], mine["due_out"]) == (
        "complete", True, 5, "18:00",
    )  # fmt: skip
    assert set(mine) >= {"employee_id", "date", "office_id", "state", "scheme", "day_kind",
                         "holiday", "status", "late", "late_min", "early_out", "early_min",
                         "first_in", "last_out", "effective_in", "due_out", "span_min",
                         "required_min", "tags", "punches", "sources", "explain"}  # fmt: skip
    assert next(d for d in days if d["employee_id"] == "S-trg" and d["date"] == "2025-07-17")[
        "span_min"] == 450  # fmt: skip

    why = run("explain", "-c", str(path), "S-pjy", "2025-07-16")
    assert why.returncode == 0, why.stderr
    assert "complete, late" in why.stdout and "after 09:00 by 5 min" in why.stdout

    csv_out = run("-c", str(path), "--date", "2025-07-16", "--office", "pjy", "--format", "csv")
    assert csv_out.returncode == 0 and csv_out.stdout.count("\n") == 2  # header + one officer
    bad = run("-c", str(path), "--date", "2025-13-01")
    assert bad.returncode == 2 and "not a date" in bad.stderr and "Traceback" not in bad.stderr
