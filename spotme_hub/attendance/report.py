"""The monthly report (Laporan Kehadiran): a month of officers' days → one row per officer with
the month's counts and colour card; written as an Excel workbook (openpyxl) or CSV.

Pure: `build` takes the days (`DayBook.days`), the officers' names and the colour card settings
and returns a `MonthReport`; the writers take that. `commands.py` reads the days from the store.

What each count is (`docs/days.md`, *Monthly report*):
- working days: the calendar's working days on which the officer's scheme has hours (a roster's
  day without a shift is not one); each is `complete`, `incomplete`, `absent` or `leave`;
- `late`, `early_out`: days late, days out before due (either may be a `complete` day);
- `bdr_days`: working days tagged `bdr`, leave excepted; `worked_rest_days`: rest days and
  holidays with punches;
- `provisional_days`: days not yet settled (today, or a night shift still open): counted as what
  they are so far; the report says the month is not closed while any remain.
"""

from __future__ import annotations

import calendar as _calendar
import csv
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..schedule import CARD_COUNTS, CardColour, ColourCard, parse_day
from .rules import Day

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")

#: The columns of the workbook's "days" sheet.
DAY_COLUMNS: tuple[str, ...] = (
    "date", "employee_id", "name", "office_id", "day_kind", "holiday", "status", "first_in",
    "last_out", "late_min", "early_min", "tags",
)  # fmt: skip
#: Cell fills of the colour card (RGB).
CARD_FILLS: dict[CardColour, str] = {"yellow": "FFFF00", "green": "00B050", "red": "FF0000"}
_CARD_FONTS: dict[CardColour, str] = {"yellow": "000000", "green": "FFFFFF", "red": "FFFFFF"}
_NOUNS = {"lates": ("late", "lates"), "absences": ("absence", "absences"),
          "early_outs": ("early out", "early outs"),
          "incompletes": ("incomplete day", "incomplete days")}  # fmt: skip


def _count(n: int, key: str) -> str:
    one, many = _NOUNS[key]
    return f"{n} {one if n == 1 else many}"


def parse_month(text: str) -> dt.date:
    """``YYYY-MM`` → the first day of that month (ValueError otherwise)."""
    m = _MONTH.match(text.strip())
    if m is None or not 1 <= int(m[2]) <= 12 or int(m[1]) < 1:
        raise ValueError(f"not a month YYYY-MM: {text!r}")
    first = dt.date(int(m[1]), int(m[2]), 1)
    parse_day(first.isoformat())  # within the dates days are kept for
    return first


def month_end(first: dt.date) -> dt.date:
    return first.replace(day=_calendar.monthrange(first.year, first.month)[1])


def month_span(first: dt.date, today: dt.date) -> tuple[dt.date, dt.date]:
    """The dates a report of `first`'s month covers: the whole month, or for the month in
    progress its first day to `today` (later days have nothing to count yet)."""
    if first > today:
        raise ValueError(f"{first:%Y-%m} has not begun (today is {today})")
    return first, min(month_end(first), today)


@dataclass(slots=True)
class OfficerMonth:
    """One officer's month: the report's row (`COLUMNS`)."""

    employee_id: str
    name: str | None
    office_id: str
    working_days: int = 0
    complete: int = 0
    late: int = 0
    early_out: int = 0
    incomplete: int = 0
    absent: int = 0
    leave: int = 0
    bdr_days: int = 0
    worked_rest_days: int = 0
    late_minutes: int = 0
    early_minutes: int = 0
    provisional_days: int = 0
    colour_card: CardColour = "yellow"
    card_reason: str = ""

    def values(self) -> tuple[str | int | None, ...]:
        return tuple(getattr(self, name) for name in COLUMNS)


#: The officer columns, in order (the CSV header and the workbook's).
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(OfficerMonth))


@dataclass(slots=True)
class MonthReport:
    """A month's report: the officers' rows and the days they were counted from."""

    month: dt.date  # its first day
    first: dt.date  # the dates covered
    last: dt.date
    officers: list[OfficerMonth]
    days: list[Day]
    card: ColourCard
    names: Mapping[str, str | None] = field(default_factory=dict)
    office_id: str | None = None
    office_name: str | None = None
    generated: dt.datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.month:%Y-%m}"

    @property
    def provisional_days(self) -> int:
        return sum(o.provisional_days for o in self.officers)

    @property
    def provisional_dates(self) -> list[str]:
        return sorted({d.date for d in self.days if "provisional" in d.tags})

    @property
    def closed(self) -> bool:
        """Every day of the month is counted and settled: the month can be signed off."""
        return self.last == month_end(self.month) and self.provisional_days == 0

    def notes(self) -> list[str]:
        """What a clerk closing the month must know: why it is not closed yet, if it is not."""
        out = []
        if self.last < month_end(self.month):
            out.append(
                f"{self.label} is not over: this report covers {self.first} to {self.last} only."
            )
        if self.provisional_days:
            out.append(
                f"{self.provisional_days} provisional day(s) on {', '.join(self.provisional_dates)}"
                " are counted as they stand and may still change: not settled yet."
            )
        return out


def card_words(card: ColourCard) -> str:
    """The thresholds in words: ``green at 3 lates or 1 absence; red at …``."""
    parts = []
    for colour, level in (("green", card.green), ("red", card.red)):
        named = level.thresholds()
        said = " or ".join(_count(n, k) for k, n in named.items()) if named else "never"
        parts.append(f"{colour} at {said}")
    return "; ".join(parts)


def summarise(
    days: Iterable[Day], names: Mapping[str, str | None], card: ColourCard
) -> list[OfficerMonth]:
    """One row per officer, in the order the days come (the book's: by officer, then date)."""
    rows: dict[str, OfficerMonth] = {}
    settled_incomplete: dict[str, int] = {}
    for d in days:
        o = rows.get(d.employee_id)
        if o is None:
            o = rows[d.employee_id] = OfficerMonth(d.employee_id, names.get(d.employee_id),
                                                   d.office_id)  # fmt: skip
            settled_incomplete[d.employee_id] = 0
        tags = set(d.tags)
        if "provisional" in tags:
            o.provisional_days += 1
        if d.status == "off":
            if tags & {"worked_rest_day", "worked_holiday"}:
                o.worked_rest_days += 1
            continue
        o.working_days += 1
        if d.status == "complete":
            o.complete += 1
        elif d.status == "incomplete":
            o.incomplete += 1
            settled_incomplete[d.employee_id] += "provisional" not in tags
        elif d.status == "absent":
            o.absent += 1
        elif d.status == "leave":
            o.leave += 1
        if "bdr" in tags and d.status != "leave":
            o.bdr_days += 1
        if d.late:
            o.late += 1
            o.late_minutes += d.late_min
        if d.early_out:
            o.early_out += 1
            o.early_minutes += d.early_min
    for emp_id, o in rows.items():
        counts = {"lates": o.late, "absences": o.absent, "early_outs": o.early_out,
                  "incompletes": settled_incomplete[emp_id]}  # fmt: skip
        o.colour_card, o.card_reason = colour_card(counts, card)
    return list(rows.values())


def colour_card(counts: Mapping[str, int], card: ColourCard) -> tuple[CardColour, str]:
    """The card the counts earn (red before green before yellow), and why in words."""
    assert set(counts) == set(CARD_COUNTS) == set(_NOUNS)
    colour: CardColour
    for colour, level in (("red", card.red), ("green", card.green)):
        reached = [f"{_count(counts[k], k)} (≥ {n})" for k, n in level.thresholds().items()
                   if counts[k] >= n]  # fmt: skip
        if reached:
            return colour, f"{colour}: {', '.join(reached)}"
    return "yellow", ""


def build(
    month: dt.date,
    first: dt.date,
    last: dt.date,
    days: Iterable[Day],
    names: Mapping[str, str | None],
    card: ColourCard,
    office_id: str | None = None,
    office_name: str | None = None,
    generated: dt.datetime | None = None,
) -> MonthReport:
    """The report of `month` over the days of `first`..`last`."""
    listed = list(days)
    return MonthReport(month, first, last, summarise(listed, names, card), listed, card,
                       names, office_id, office_name, generated)  # fmt: skip


# -- writers ---------------------------------------------------------------------------------


def write_csv(report: MonthReport, out: TextIO) -> None:
    """The officer rows with a header row (`COLUMNS`)."""
    w = csv.writer(out)
    w.writerow(COLUMNS)
    for o in report.officers:
        w.writerow(["" if v is None else v for v in o.values()])


def _title(report: MonthReport) -> str:
    where = "all offices"
    if report.office_id is not None:
        where = f"office {report.office_id}" + (
            f" ({report.office_name})" if report.office_name else ""
        )
    return f"Laporan Kehadiran (attendance report) {report.label}, {where}"


def _subtitle(report: MonthReport) -> str:
    text = f"Days {report.first} to {report.last}; {len(report.officers)} officer(s)"
    if report.generated is not None:
        text += f"; made {report.generated.isoformat(timespec='minutes')}"
    return text + ("" if report.closed else "; NOT CLOSED (see the notes below)")


def _hhmm(stamp: str | None) -> str | None:
    return stamp[11:16] if stamp else None


def write_xlsx(report: MonthReport, path: Path, days_sheet: bool = True) -> None:
    """An Excel workbook: sheet "officers" (a title, a bold frozen header, the rows, the colour
    card filled with its colour, notes below); sheet "days" with every day counted."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    wb = Workbook()
    ws = wb.active
    ws.title = "officers"
    ws["A1"] = _title(report)
    ws["A1"].font = Font(bold=True, size=14)
    ws["A2"] = _subtitle(report)
    ws["A2"].font = Font(italic=True, bold=not report.closed)
    top = 3
    _table(ws, COLUMNS, [list(o.values()) for o in report.officers], top, 1)
    card_col = COLUMNS.index("colour_card") + 1
    for r, o in enumerate(report.officers, start=top + 1):
        cell = ws.cell(row=r, column=card_col)
        cell.fill = PatternFill("solid", fgColor=CARD_FILLS[o.colour_card])
        cell.font = Font(bold=o.colour_card != "yellow", color=_CARD_FONTS[o.colour_card])
    notes = [*(f"Not closed: {n}" for n in report.notes()),
             f"Colour card: {card_words(report.card)}.",
             "Working days: the calendar's working days with hours under the officer's scheme; "
             "worked_rest_days: rest days and holidays with punches; minutes after approved "
             "time-off."]  # fmt: skip
    row = top + len(report.officers) + 2
    for note in notes:
        ws.cell(row=row, column=1, value=note).font = Font(
            italic=True, bold=note.startswith("Not closed")
        )
        row += 1

    if days_sheet:
        ds = wb.create_sheet("days")
        rows: list[list[object]] = [
            [dt.date.fromisoformat(d.date), d.employee_id, report.names.get(d.employee_id),
             d.office_id, d.day_kind, d.holiday, d.status, _hhmm(d.first_in), _hhmm(d.last_out),
             d.late_min, d.early_min, ", ".join(d.tags)]
            for d in report.days
        ]  # fmt: skip
        _table(ds, DAY_COLUMNS, rows, 1, 2)
    wb.save(path)


def _table(
    sheet: Worksheet, header: Sequence[str], rows: list[list[object]], top: int, id_cols: int
) -> None:
    """`header` in bold at row `top`, the rows below it, columns as wide as their texts, the
    panes frozen below the header and right of the first `id_cols` columns, a filter."""
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    fill, border = PatternFill("solid", fgColor="D9D9D9"), Border(bottom=Side(style="thin"))
    for c, name in enumerate(header, start=1):
        cell = sheet.cell(row=top, column=c, value=name)
        cell.font, cell.fill, cell.border = Font(bold=True), fill, border
        cell.alignment = Alignment(horizontal="center")
    for r, values in enumerate(rows, start=top + 1):
        for c, value in enumerate(values, start=1):
            cell = sheet.cell(row=r, column=c, value=value)
            if isinstance(value, dt.date):
                cell.number_format = "yyyy-mm-dd"
    for c, name in enumerate(header, start=1):
        longest = max([len(name), *(len(_text(v[c - 1])) for v in rows)])
        sheet.column_dimensions[get_column_letter(c)].width = min(max(longest + 2, 6), 48)
    sheet.freeze_panes = f"{get_column_letter(id_cols + 1)}{top + 1}"
    sheet.auto_filter.ref = f"A{top}:{get_column_letter(len(header))}{top + max(len(rows), 1)}"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return "yyyy-mm-dd"
    return str(value)
