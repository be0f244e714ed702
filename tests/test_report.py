"""The monthly report over a real store (SQLite and PostgreSQL, the `store` fixture): a month of
punches with known worked examples — lates, an early leaver, leave, absences, a rest day and a
holiday worked, BDR — counted per officer with the colour card; `spotme-hub report monthly`
writing Excel (read back with openpyxl) and CSV (read back with the csv module)."""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml

from spotme_hub.attendance import report
from spotme_hub.attendance.book import DayBook
from spotme_hub.config import HubConfig
from spotme_hub.normalize import Normalizer
from spotme_hub.record import RawPunch, Record
from spotme_hub.schedule import CardLevel, ColourCard
from spotme_hub.service import config_from_dict, load_config
from spotme_hub.store import Store
from spotme_hub.yamlsource import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MYT = dt.timezone(dt.timedelta(hours=8))
LATER = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)  # every day of July 2025 has settled
JULY = dt.date(2025, 7, 1)
HOME = {"latitude": 3.0901, "longitude": 101.5501}  # inside S2's BDR home geofence
NAME = "Aminah binti Ali"

ON_TIME = ("08:00", "17:00")
#: Each officer's July 2025: office, device, user, rest weekdays, the days that are not on
#: time (day of month → punches), the working days without punches; every other working day
#: is 08:00–17:00. Holiday: 17 July in pjy (added in the config below).
PLAN: dict[str, dict[str, Any]] = {
    "S1": {
        "device": "zk-pjy", "user": "1", "rest": {5, 6},
        "special": {
            1: ("09:10", "18:10"),  # late 10
            2: ("09:05", "18:00"),  # late 5
            3: ("09:30", "18:00"),  # late 30
            4: ("09:20", "17:30"),  # late 20, due 18:00: early 30
            7: ("09:01", "18:05"),  # late 1
            8: ("08:00", "16:40"),  # due 17:00: early 20
            9: ("08:00",),  # in only: incomplete
            12: ("09:00", "13:00"),  # Saturday worked
            17: ("08:00", "12:00"),  # the holiday worked
        },
        "none": {10, 11, 14, 15},  # 10–11 on annual leave (a fact), 14–15 absent
    },
    "S2": {
        "device": "zk-pjy", "user": "2", "rest": {5, 6},
        "special": {21: ON_TIME, 22: ON_TIME, 23: ON_TIME},  # BDR: at home, by phone
        "none": {28, 29, 30},  # absent
    },
    "K1": {
        "device": "zk-kdh", "user": "3", "rest": {4, 5},  # Fri–Sat in Kedah
        "special": {
            6: ("09:15", "18:00"),  # a Sunday, a working day: late 15
            13: ("09:02", "18:00"),  # late 2
            18: ("08:00", "12:00"),  # a Friday worked
        },
        "none": set(),
    },
}  # fmt: skip
HOLIDAYS = {"S1": {17}, "S2": {17}, "K1": set()}

#: What the report must say of each officer's July (worked out from the plan by hand).
EXPECTED: dict[str, dict[str, Any]] = {
    "S1": {"name": NAME, "office_id": "pjy", "working_days": 22, "complete": 17, "late": 5,
           "early_out": 2, "incomplete": 1, "absent": 2, "leave": 2, "bdr_days": 0,
           "worked_rest_days": 2, "late_minutes": 66, "early_minutes": 50,
           "provisional_days": 0, "colour_card": "green"},
    "S2": {"name": None, "office_id": "pjy", "working_days": 22, "complete": 19, "late": 0,
           "early_out": 0, "incomplete": 0, "absent": 3, "leave": 0, "bdr_days": 3,
           "worked_rest_days": 0, "late_minutes": 0, "early_minutes": 0,
           "provisional_days": 0, "colour_card": "red"},
    "K1": {"name": "Kamal", "office_id": "kdh", "working_days": 23, "complete": 23, "late": 2,
           "early_out": 0, "incomplete": 0, "absent": 0, "leave": 0, "bdr_days": 0,
           "worked_rest_days": 1, "late_minutes": 17, "early_minutes": 0,
           "provisional_days": 0, "colour_card": "yellow"},
}  # fmt: skip


def settings(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "hub": {"data_dir": str(tmp_path / "data"), "sqlite_synchronous": "NORMAL"},
        "offices": [
            {"id": "pjy", "name": "Putrajaya", "state": "PJY", "latitude": 2.9264,
             "longitude": 101.6964, "geofence_m": 150},
            {"id": "kdh", "name": "Alor Setar", "state": "KDH"},
        ],
        "devices": [{"id": "zk-pjy", "kind": "csv", "office": "pjy"},
                    {"id": "zk-kdh", "kind": "csv", "office": "kdh"},
                    {"id": "phone", "kind": "http", "office": "pjy"}],
        "employees": [
            {"id": "S1", "name": NAME, "user_ids": ["zk-pjy:1"], "office": "pjy"},
            {"id": "S2", "user_ids": ["zk-pjy:2", "phone:2"], "office": "pjy"},
            {"id": "K1", "name": "Kamal", "user_ids": ["zk-kdh:3"], "office": "kdh"},
        ],
        "calendar": {"holidays": {"add": [
            {"date": "2025-07-17", "name": "Cuti peristiwa", "offices": ["pjy"]}]}},
        "facts": [
            {"id": "l1", "employee": "S1", "kind": "leave", "from": "2025-07-10",
             "to": "2025-07-11", "type": "annual"},
            {"id": "b1", "employee": "S2", "kind": "bdr", "from": "2025-07-21",
             "to": "2025-07-23", "latitude": 3.09, "longitude": 101.55, "radius_m": 200},
        ],
        "api": {"enabled": False},
    }  # fmt: skip
    data.update(extra)
    return data


@pytest.fixture
def cfg(tmp_path: Path) -> HubConfig:
    return config_from_dict(settings(tmp_path), base_dir=tmp_path)


def july_punches(cfg: HubConfig, until: dt.datetime = LATER) -> list[Record]:
    """The plan's punches (those before `until`), normalised as the devices would send them."""
    norm = Normalizer(cfg)
    out: list[Record] = []
    days = calendar.monthrange(JULY.year, JULY.month)[1]
    for plan in PLAN.values():
        emp = next(e for e in PLAN if PLAN[e] is plan)
        for n in range(1, days + 1):
            date = JULY.replace(day=n)
            if n in plan["special"]:
                times = plan["special"][n]
            elif date.weekday() in plan["rest"] or n in plan["none"] or n in HOLIDAYS[emp]:
                continue
            else:
                times = ON_TIME
            bdr = emp == "S2" and n in (21, 22, 23)
            device, user = ("phone", "2") if bdr else (plan["device"], plan["user"])
            for hhmm in times:
                at = dt.datetime.combine(date, dt.time.fromisoformat(hhmm))
                if at.replace(tzinfo=MYT) >= until:
                    continue
                raw = RawPunch(device_time=at, user_id=user, **(HOME if bdr else {}))
                rec = norm.normalize(cfg.device(device), raw, now=LATER)
                assert isinstance(rec, Record), rec
                out.append(rec)
    return out


def month_report(
    cfg: HubConfig, store: Store, now: dt.datetime = LATER, office: str | None = None,
    card: ColourCard | None = None,
) -> report.MonthReport:  # fmt: skip
    first, last = report.month_span(JULY, now.astimezone(MYT).date())
    days = DayBook(cfg, store).days(first, last, office, now=now)
    names = {e.id: e.name for e in cfg.employees}
    return report.build(JULY, first, last, days, names, card or cfg.report.colour_card, office)


def row_of(rep: report.MonthReport, emp: str) -> dict[str, Any]:
    (o,) = [o for o in rep.officers if o.employee_id == emp]
    return dict(zip(report.COLUMNS, o.values(), strict=True))


# -- counting ---------------------------------------------------------------------------------


def test_a_month_of_worked_examples_is_counted_per_officer(cfg: HubConfig, store: Store) -> None:
    store.commit(july_punches(cfg))
    rep = month_report(cfg, store)
    assert [o.employee_id for o in rep.officers] == ["S1", "S2", "K1"]  # config order
    for emp, expected in EXPECTED.items():
        row = row_of(rep, emp)
        assert {k: row[k] for k in expected} == expected, emp
        assert row["working_days"] == sum(row[k] for k in ("complete", "incomplete", "absent",
                                                           "leave"))  # fmt: skip
    assert (rep.first, rep.last, rep.closed, rep.notes()) == (JULY, dt.date(2025, 7, 31), True, [])
    assert len(rep.days) == 3 * 31
    # why each card: the counts that reached it
    assert row_of(rep, "S1")["card_reason"] == "green: 5 lates (≥ 3), 2 absences (≥ 1)"
    assert row_of(rep, "S2")["card_reason"] == "red: 3 absences (≥ 3)"
    assert row_of(rep, "K1")["card_reason"] == ""


def test_the_colour_card_follows_the_configured_thresholds(tmp_path: Path, store: Store) -> None:
    data = settings(tmp_path, report={"colour_card": {"green": {"lates": 6, "incompletes": 1},
                                                      "red": {"absences": 4, "lates": 10}}})  # fmt: skip
    cfg = config_from_dict(data, base_dir=tmp_path)
    store.commit(july_punches(cfg))
    rep = month_report(cfg, store)
    cards = {o.employee_id: (o.colour_card, o.card_reason) for o in rep.officers}
    assert cards == {
        "S1": ("green", "green: 1 incomplete day (≥ 1)"),  # 5 lates are below 6 now
        "S2": ("yellow", ""),  # 3 absences: below red's 4, and green names none
        "K1": ("yellow", ""),
    }
    # two lates are enough when green says so; a red that names nothing is never given
    strict = ColourCard(green=CardLevel(lates=2), red=CardLevel())
    assert [o.colour_card for o in month_report(cfg, store, card=strict).officers] == [
        "green", "yellow", "green",
    ]  # fmt: skip


def test_office_picks_its_officers(cfg: HubConfig, store: Store) -> None:
    store.commit(july_punches(cfg))
    rep = month_report(cfg, store, office="kdh")
    assert [o.employee_id for o in rep.officers] == ["K1"]
    assert {d.employee_id for d in rep.days} == {"K1"}


def test_a_month_in_progress_counts_provisional_days_and_is_not_closed(
    cfg: HubConfig, store: Store
) -> None:
    now = dt.datetime(2025, 7, 16, 10, 0, tzinfo=MYT)  # everyone is in, nobody out yet
    store.commit(july_punches(cfg, until=now))
    card = ColourCard(green=CardLevel(incompletes=1), red=CardLevel())
    rep = month_report(cfg, store, now=now, card=card)
    assert (rep.first, rep.last, rep.closed) == (JULY, dt.date(2025, 7, 16), False)
    s1, s2, k1 = (row_of(rep, e) for e in ("S1", "S2", "K1"))
    assert (s1["provisional_days"], s1["incomplete"], s1["working_days"]) == (1, 2, 12)
    assert (s2["provisional_days"], s2["incomplete"], s2["absent"]) == (1, 1, 0)
    assert k1["provisional_days"] == 1
    assert rep.provisional_days == 3 and rep.provisional_dates == ["2025-07-16"]
    # an unsettled day is no incomplete day for the card yet; S1's 9 July is
    assert (s1["colour_card"], s2["colour_card"]) == ("green", "yellow")
    notes = " ".join(rep.notes())
    assert "covers 2025-07-01 to 2025-07-16" in notes
    assert "3 provisional day(s) on 2025-07-16" in notes
    with pytest.raises(ValueError, match="has not begun"):
        report.month_span(dt.date(2025, 8, 1), now.date())


# -- the command ------------------------------------------------------------------------------


def write_config(tmp_path: Path, database: str | None = None) -> Path:
    data = settings(tmp_path)
    if database is not None:
        data["hub"]["database"] = database
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spotme_hub.cli", "report", "monthly", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)  # fmt: skip


def test_monthly_xlsx_from_the_command(
    tmp_path: Path, store: Store, store_url: str, cfg: HubConfig
) -> None:
    store.commit(july_punches(cfg))
    path = write_config(tmp_path, store_url)
    work = tmp_path / "clerk"
    work.mkdir()
    out = run("-c", str(path), "--month", "2025-07", "--format", "xlsx", cwd=work)
    assert out.returncode == 0, out.stderr
    written = work / "attendance-2025-07.xlsx"
    assert out.stdout.strip() == "attendance-2025-07.xlsx" and written.exists()
    assert "warning" not in out.stderr  # a closed month

    wb = openpyxl.load_workbook(written)
    assert wb.sheetnames == ["officers", "days"]
    ws = wb["officers"]
    title = str(ws["A1"].value)
    assert "Laporan Kehadiran" in title and "2025-07" in title and ws["A1"].font.b
    header = [c.value for c in ws[3]]
    assert header == ["employee_id", "name", "office_id", "working_days", "complete", "late",
                      "early_out", "incomplete", "absent", "leave", "bdr_days",
                      "worked_rest_days", "late_minutes", "early_minutes", "provisional_days",
                      "colour_card", "card_reason"]  # fmt: skip
    assert all(c.font.b for c in ws[3])
    assert ws.freeze_panes == "B4"  # below the header, right of the id column
    widths = {letter: ws.column_dimensions[letter].width for letter in "ABCDEFGHIJKLMNOPQ"}
    assert all(w and w >= len(h) for w, h in zip(widths.values(), header, strict=True)), widths
    assert widths["B"] >= len(NAME)
    rows = {r[0].value: r for r in ws.iter_rows(min_row=4, max_row=6)}
    assert set(rows) == set(EXPECTED)
    fills = {"yellow": "FFFF00", "green": "00B050", "red": "FF0000"}
    for emp, expected in EXPECTED.items():
        cells = dict(zip(header, rows[emp], strict=True))
        got = {k: cells[k].value for k in expected}
        assert got == expected, emp
        assert isinstance(cells["late_minutes"].value, int)  # numbers as numbers
        card = cells["colour_card"]
        assert card.fill.fill_type == "solid"
        assert card.fill.fgColor.rgb[-6:] == fills[expected["colour_card"]], emp
    notes = [str(r[0].value) for r in ws.iter_rows(min_row=7) if r[0].value]
    assert any(n.startswith("Colour card: green at 3 lates or 1 absence") for n in notes)
    assert not any(n.startswith("Not closed") for n in notes)

    ds = wb["days"]
    assert [c.value for c in ds[1]][:7] == ["date", "employee_id", "name", "office_id",
                                            "day_kind", "holiday", "status"]  # fmt: skip
    assert ds.freeze_panes == "C2" and ds.max_row == 1 + 3 * 31
    day_header = [c.value for c in ds[1]]
    by_key = {(r[0].date(), r[1]): dict(zip(day_header, r, strict=True))
              for r in ds.iter_rows(min_row=2, values_only=True)}  # fmt: skip
    fourth = by_key[(dt.date(2025, 7, 4), "S1")]
    assert (fourth["status"], fourth["late_min"], fourth["early_min"]) == ("complete", 20, 30)
    assert (fourth["first_in"], fourth["last_out"]) == ("09:20", "17:30")
    assert by_key[(dt.date(2025, 7, 17), "S1")]["tags"] == "worked_holiday"
    assert by_key[(dt.date(2025, 7, 22), "S2")]["tags"] == "bdr"
    assert by_key[(dt.date(2025, 7, 10), "S1")]["status"] == "leave"

    # -o names the file; --office narrows; no days sheet when asked
    mine = tmp_path / "kdh.xlsx"
    out = run("-c", str(path), "--month", "2025-07", "--office", "kdh", "-o", str(mine),
              "--no-days-sheet")  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == str(mine), out.stderr
    wb = openpyxl.load_workbook(mine)
    assert wb.sheetnames == ["officers"]
    assert [r[0] for r in wb["officers"].iter_rows(min_row=4, max_row=4, values_only=True)] == [
        "K1"
    ]
    assert "office kdh (Alor Setar)" in str(wb["officers"]["A1"].value)
    # -o a directory: the usual name, there
    out = run("-c", str(path), "--month", "2025-07", "--office", "pjy", "-o", str(work))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(work / "attendance-2025-07-pjy.xlsx")
    officers = openpyxl.load_workbook(work / "attendance-2025-07-pjy.xlsx")["officers"]
    assert [r[0] for r in officers.iter_rows(min_row=4, max_row=5, values_only=True)] == [
        "S1", "S2",
    ]  # fmt: skip


def test_monthly_csv_from_the_command(
    tmp_path: Path, store: Store, store_url: str, cfg: HubConfig
) -> None:
    store.commit(july_punches(cfg, until=dt.datetime(2025, 7, 16, 10, 0, tzinfo=MYT)))
    path = write_config(tmp_path, store_url)
    out = run("-c", str(path), "--month", "2025-07", "--format", "csv", "--now", LATER.isoformat())
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["employee_id"] for r in rows] == ["S1", "S2", "K1"]
    s1 = rows[0]
    # the punches stop on 16 July at 10:00: S1 was in then, and never since
    assert (s1["name"], s1["late"], s1["late_minutes"], s1["incomplete"]) == (NAME, "5", "66", "2")
    assert int(s1["absent"]) == 2 + 10  # 14–15, then the working days from 18 July
    assert (rows[1]["name"], rows[1]["colour_card"]) == ("", "red")

    # as of the morning of 16 July: the month is not closed and the clerk is told why
    target = tmp_path / "july.csv"
    out = run("-c", str(path), "--month", "2025-07", "--format", "csv", "-o", str(target),
              "--now", "2025-07-16T10:00:00+08:00")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "warning: not closed" in out.stderr and "2025-07-16" in out.stderr
    assert "provisional" in out.stderr
    with target.open(newline="", encoding="utf-8") as fh:
        partial = list(csv.DictReader(fh))
    assert list(partial[0]) == list(report.COLUMNS)
    assert [r["provisional_days"] for r in partial] == ["1", "1", "1"]
    assert partial[0]["working_days"] == "12"


def test_bad_month_and_office_are_one_line_errors(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    for month in ("2025-13", "abc", "2025-7", "0000-01"):
        out = run("-c", str(path), "--month", month, "--format", "csv")
        assert out.returncode == 2, (month, out.stderr)
        assert f"not a month YYYY-MM: '{month}'" in out.stderr and "Traceback" not in out.stderr
    out = run("-c", str(path), "--month", "2025-08", "--now", "2025-07-31T12:00:00+08:00")
    assert out.returncode == 2 and "2025-08 has not begun" in out.stderr
    out = run("-c", str(path), "--month", "2025-07", "--office", "nowhere", "--format", "csv")
    assert out.returncode == 2 and "unknown office 'nowhere' (pjy, kdh)" in out.stderr
    assert "Traceback" not in out.stderr


# -- configuration ----------------------------------------------------------------------------


def test_default_colour_card() -> None:
    card = config_from_dict({}).report.colour_card
    assert card.green.thresholds() == {"lates": 3, "absences": 1}
    assert card.red.thresholds() == {"lates": 6, "absences": 3}


BAD_REPORT = """\
offices: [{id: a}]
report:
  colour_card:
    green: {lates: 0}
    red:
      latess: 2
"""


def test_report_settings_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_REPORT)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msgs = {(i.file, i.line, i.path): i.message for i in err.value.issues}
    assert "greater than or equal to 1" in msgs[(str(path), 4, "report.colour_card.green.lates")]
    assert msgs[(str(path), 6, "report.colour_card.red.latess")].startswith("unknown key")
    # red before green: named in words, on the line of the card
    path.write_text("report:\n  colour_card:\n    green: {lates: 8}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    (issue,) = err.value.issues
    assert (issue.line, issue.path) == (2, "report.colour_card")
    assert "red.lates (6, the default) is below green.lates (8)" in issue.message
