"""`spotme-hub days`: officers' days as a table, JSON or CSV; `spotme-hub days explain`;
`spotme-hub report monthly`: the month's report as Excel or CSV."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from ..clock import DEFAULT_TZ

if TYPE_CHECKING:
    from ..contract import CommandTools
    from .rules import Day

# The days' engine, its calendar and the report's writers load when a command runs, not when
# the commands are listed.

_COLOURS = {"complete": "green", "incomplete": "yellow", "absent": "red", "leave": "cyan",
            "off": "dim"}  # fmt: skip


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    from ..schedule import parse_day

    try:
        return parse_day(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _month(_ctx: click.Context, _param: click.Parameter, value: str) -> dt.date:
    from . import report as monthly_report

    try:
        return monthly_report.parse_month(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _now(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not a date-time: {value!r}") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo(DEFAULT_TZ))


def register(cli: click.Group, tools: CommandTools) -> None:
    @cli.group(invoke_without_command=True)
    @tools.config_option
    @click.option("--date", "first", callback=_date, help="YYYY-MM-DD (default: today)")
    @click.option("--to", "last", callback=_date, help="last date, YYYY-MM-DD (default: --date)")
    @click.option("--office", help="only officers of this home office")
    @click.option("--employee", help="only this officer")
    @tools.format_option("table", "json", "csv")
    @click.pass_context
    def days(
        ctx: click.Context, config_path: Path, first: dt.date | None, last: dt.date | None,
        office: str | None, employee: str | None, fmt: str,
    ) -> None:  # fmt: skip
        """Each officer's attendance day for a date or a range (every officer, every date)."""
        if ctx.invoked_subcommand is not None:
            return
        from .book import DayBook

        cfg = tools.load_config(config_path)
        book = DayBook(cfg, tools.open_store(cfg))
        first = first or dt.date.today()
        last = last or first
        if last < first:
            raise click.BadParameter(f"--to {last} is before --date {first}")
        if office is not None and office not in {o.id for o in cfg.offices}:
            raise click.BadParameter(f"unknown office {office!r}", param_hint="--office")
        if employee is not None and employee not in {e.id for e in cfg.employees}:
            raise click.BadParameter(f"unknown employee {employee!r}", param_hint="--employee")
        rows = list(book.days(first, last, office, employee))
        if fmt == "json":
            click.echo(json.dumps([d.to_dict() for d in rows], ensure_ascii=False, indent=1))
        elif fmt == "csv":
            _csv(rows)
        else:
            _table(rows, f"{len(rows)} day(s), {first}" + (f" to {last}" if last != first else ""))

    @days.command("explain")
    @tools.config_option
    @click.argument("employee")
    @click.argument("date", callback=_date)
    def explain(config_path: Path, employee: str, date: dt.date) -> None:
        """Why an officer's day is what it is: the punches, facts and rules, in words."""
        from rich.console import Console

        from .book import DayBook
        from .calendar import HOLIDAYS_VERSION

        cfg = tools.load_config(config_path)
        if employee not in {e.id for e in cfg.employees}:
            raise click.BadParameter(f"unknown employee {employee!r}", param_hint="EMPLOYEE")
        (day,) = DayBook(cfg, tools.open_store(cfg)).days(date, date, employee=employee)
        out = Console()
        status = f"[{_COLOURS.get(day.status, 'white')}]{day.status}[/]"
        flags = [f for f, on in (("late", day.late), ("early out", day.early_out)) if on]
        out.print(f"{day.employee_id} on {day.date} ({day.office_id}, {day.scheme}): {status}"
                  + (f", {', '.join(flags)}" if flags else ""), highlight=False)  # fmt: skip
        for line in day.explain:
            out.print(f"  - {line}", highlight=False, soft_wrap=True)
        if day.punches:
            out.print(f"  records: {', '.join(day.punches)}", highlight=False, soft_wrap=True)
        out.print(f"  (public holidays: holidays {HOLIDAYS_VERSION})", style="dim")

    @cli.group()
    def report() -> None:
        """Reports over the officers' attendance days."""

    @report.command("monthly")
    @tools.config_option
    @click.option("--month", required=True, callback=_month, help="YYYY-MM")
    @click.option("--office", help="only officers of this home office")
    @tools.format_option("xlsx", "csv")
    @click.option("-o", "--output", type=click.Path(path_type=Path),
                  help="file (xlsx default: attendance-YYYY-MM[-OFFICE].xlsx here; csv: stdout)")  # fmt: skip
    @click.option("--days-sheet/--no-days-sheet", default=True, show_default=True,
                  help="xlsx: a second sheet with every day")  # fmt: skip
    @click.option("--now", callback=_now, hidden=True, help="take this ISO date-time as now")
    def monthly(
        config_path: Path, month: dt.date, office: str | None, fmt: str, output: Path | None,
        days_sheet: bool, now: dt.datetime,
    ) -> None:  # fmt: skip
        """The month's attendance report (Laporan Kehadiran): one row per officer with the
        month's counts and colour card."""
        from . import report as monthly_report
        from .book import DayBook

        cfg = tools.load_config(config_path)
        home = None
        if office is not None:
            home = next((o for o in cfg.offices if o.id == office), None)
            if home is None:
                known = ", ".join(o.id for o in cfg.offices) or "none defined"
                raise click.BadParameter(f"unknown office {office!r} ({known})",
                                         param_hint="--office")  # fmt: skip
        # the month in progress runs to the latest date any office has reached
        zones = {o.timezone for o in cfg.offices} or {DEFAULT_TZ}
        today = max(now.astimezone(ZoneInfo(z)).date() for z in zones)
        try:
            first, last = monthly_report.month_span(month, today)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--month") from None
        book = DayBook(cfg, tools.open_store(cfg))
        day_rows = book.days(first, last, office, now=now)
        made = now.astimezone(ZoneInfo(home.timezone if home else DEFAULT_TZ))
        rep = monthly_report.build(month, first, last, day_rows, {e.id: e.name for e in cfg.employees},
                                   cfg.report.colour_card, office, home.name if home else None,
                                   made)  # fmt: skip
        for note in rep.notes():
            click.echo(f"warning: not closed: {note}", err=True)
        try:
            if fmt == "csv":
                if output is None:
                    monthly_report.write_csv(rep, sys.stdout)
                else:
                    with output.open("w", encoding="utf-8", newline="") as fh:
                        monthly_report.write_csv(rep, fh)
                    click.echo(str(output))
                return
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", office) if office else None
            name = f"attendance-{rep.label}" + (f"-{safe}" if safe else "") + ".xlsx"
            path = Path(name) if output is None else output / name if output.is_dir() else output
            monthly_report.write_xlsx(rep, path, days_sheet)
        except OSError as exc:
            raise click.ClickException(
                f"cannot write {exc.filename or output}: {exc.strerror}"
            ) from None
        click.echo(str(path))


def _csv(rows: list[Day]) -> None:
    from .rules import Day

    fields = list(Day.__dataclass_fields__)
    w = csv.DictWriter(sys.stdout, fieldnames=fields)
    w.writeheader()
    for d in rows:
        row = d.to_dict()
        for key in ("tags", "punches", "sources"):
            row[key] = ";".join(row[key])
        row["explain"] = " ".join(row["explain"])
        w.writerow(row)


def _table(rows: list[Day], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for col in ("date", "employee", "office", "kind", "status", "in", "out", "due", "late",
                "early", "tags"):  # fmt: skip
        t.add_column(col)
    for d in rows:
        t.add_row(
            d.date, d.employee_id, d.office_id, d.holiday or d.day_kind,
            f"[{_COLOURS.get(d.status, 'white')}]{d.status}[/]",
            (d.first_in or "")[11:16], (d.last_out or "")[11:16], d.due_out or "",
            f"{d.late_min} min" if d.late else "", f"{d.early_min} min" if d.early_out else "",
            ", ".join(d.tags),
        )  # fmt: skip
    Console().print(t)
