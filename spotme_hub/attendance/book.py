"""Days from the store: every configured officer's day for every date asked, punches or not.

Reads the records of the dates (with a day's margin either side, for zones and night shifts),
groups them by officer, gives each punch its working date (`rules.assign_days`) and works each
day out with the rules. `days` answers a range (one pass over its records);
`days_of` some officers' own dates from the records named (the ledger's recomputes: the records
a stored day used, and those just committed — read by id, never by walking the table).

The rules are `rules.day_of`, fed the way that costs least: the store gives only the fields the
rules read (`Store.record_fields`), times are worked as seconds from the stored text (no datetime
per punch), what the days of one office, scheme and date share is worked out once (`DayContext`),
and a day without punches or facts is a copy of that date's blank day. An officer whose records
hold a time not in the store's own form goes through `compute_day` (a `Punch` a record), which
is `day_of` too.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from ..clock import utc_z
from ..config import Employee, HubConfig, Office
from ..schedule import Fact, RosterScheme
from ..store import RecordFilter, Store
from .calendar import Calendar
from .facts import FactBook
from .rules import (
    AnyScheme,
    Day,
    DayContext,
    Punch,
    QuickPunch,
    assign_days,
    compute_day,
    day_of,
    night_cutoff,
)

#: What the rules read of a record (`Punch.from_record`), and whose it is and where it was made.
#: (Those with a column of their own first: `Store.record_fields` reads them quickest.)
FIELDS = ("employee_id", "office_id", "occurred_at", "id", "device_id", "punch", "device_kind",
          "within_geofence", "latitude", "longitude")  # fmt: skip


class DayBook:
    """The days of a configuration's officers, computed from its store."""

    def __init__(self, cfg: HubConfig, store: Store, facts: Iterable[Fact] | None = None):
        self.cfg = cfg
        self.store = store
        self.calendar = Calendar(cfg.calendar)
        self.merge_window_s = cfg.attendance.merge_window_s
        self.employees = {e.id: e for e in cfg.employees}
        self.facts: dict[str, list[Fact]] = defaultdict(list)
        # by default every fact: the configuration's, the facts file's and those pushed over the API
        for fact in FactBook(cfg, store).facts() if facts is None else facts:
            self.facts[fact.employee].append(fact)
        self._zones: dict[str, _Zone] = {}
        self._contexts: dict[tuple[str, str, int, dt.datetime], DayContext] = {}

    def home(self, emp: Employee) -> Office:
        """The officer's home office: `employees[].office`, else the first office configured
        (a hub serving several offices names each officer's)."""
        if emp.office is not None:
            return self.cfg.office(emp.office)
        if not self.cfg.offices:
            return Office(id="-")
        return self.cfg.offices[0]

    def days(
        self,
        first: dt.date,
        last: dt.date,
        office: str | None = None,
        employee: str | None = None,
        now: dt.datetime | None = None,
        employees: Collection[str] | None = None,
    ) -> Iterator[Day]:
        """Days of `first`..`last` (inclusive), by officer, then date; of every configured
        officer, or of `employee`, or of those of `employees` (each narrows the others)."""
        among = None if employees is None else set(employees)
        officers = [
            e for e in self.cfg.employees
            if (employee is None or e.id == employee) and (among is None or e.id in among)
            and (office is None or self.home(e).id == office)
        ]  # fmt: skip
        by_employee: dict[str, list[tuple[Any, ...]]] = {e.id: [] for e in officers}
        if officers:
            since, until = _window(first, last)
            only = employee if employee is not None or len(by_employee) != 1 else officers[0].id
            self._gather(by_employee, RecordFilter(employee_id=only, since=since, until=until))
        dates = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        # The rows read (a month of 20,000 officers: 1.3M tuples) live until the last day: kept
        # out of the collector's full passes while the days are made (12 s of 32 in
        # bench/days.py went to passes that found nothing to free).
        gc.freeze()
        try:
            yield from self._compute(officers, by_employee, lambda _emp: dates, now)
        finally:
            gc.unfreeze()

    def days_of(
        self,
        wanted: Mapping[str, Collection[dt.date]],
        ids: Collection[str],
        now: dt.datetime | None = None,
    ) -> Iterator[Day]:
        """The days of these officers on these dates, from the records `ids` (all the records
        that may belong to them: those the stored days used, and those just committed)."""
        officers = [self.employees[e] for e in wanted if e in self.employees and wanted[e]]
        by_employee: dict[str, list[tuple[Any, ...]]] = {e.id: [] for e in officers}
        names = list(dict.fromkeys(ids))
        for start in range(0, len(names), ID_CHUNK):
            self._gather(by_employee, RecordFilter(ids=tuple(names[start : start + ID_CHUNK])))
        yield from self._compute(officers, by_employee, lambda emp: sorted(wanted[emp.id]), now)

    def _gather(self, by_employee: dict[str, list[tuple[Any, ...]]], flt: RecordFilter) -> None:
        """The rules' fields of the records `flt` selects, onto their officers' lists (records of
        officers not asked for are passed over)."""
        for row in self.store.record_fields(FIELDS, flt):
            mine = by_employee.get(row[0])
            if mine is not None:
                mine.append(row)

    def _context(
        self, home: Office, name: str, scheme: AnyScheme, d: dt.date, now: dt.datetime
    ) -> DayContext:
        """What the days of one office, scheme and date share (worked out once a book)."""
        key = (home.id, name, d.toordinal(), now)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = DayContext.of(
                home, name, scheme, self.calendar.day(home, d), now
            )
        return ctx

    def _compute(
        self,
        officers: Sequence[Employee],
        by_employee: Mapping[str, list[tuple[Any, ...]]],
        dates_of: Callable[[Employee], Sequence[dt.date]],
        now: dt.datetime | None,
    ) -> Iterator[Day]:
        now = now or dt.datetime.now(dt.UTC)
        cutoffs: dict[tuple[str, int], int] = {}
        window = self.merge_window_s
        for emp in officers:
            rows = by_employee[emp.id]
            home = self.home(emp)
            scheme = self.cfg.schemes[emp.scheme]
            facts = self.facts.get(emp.id, [])
            dates = dates_of(emp)
            zone = self._zones.get(home.timezone)
            if zone is None:
                zone = self._zones[home.timezone] = _Zone(home.timezone)
            roster = scheme if isinstance(scheme, RosterScheme) else None
            assigned = zone.assign(rows, roster, emp.scheme, cutoffs)
            if assigned is None:  # a time the fast way does not read: the rules as they are
                yield from self._slow(emp, home, scheme, facts, rows, dates, now)
                continue
            for d in dates:
                ctx = self._context(home, emp.scheme, scheme, d, now)
                punches = assigned.get(d.toordinal())
                if punches is None and not (facts and any(f.covers(d) for f in facts)):
                    yield ctx.blank(emp.id)
                else:
                    yield day_of(ctx, emp.id, punches or (), facts, window)

    def _slow(
        self, emp: Employee, home: Office, scheme: AnyScheme, facts: list[Fact],
        rows: list[tuple[Any, ...]], dates: Sequence[dt.date], now: dt.datetime,
    ) -> Iterator[Day]:  # fmt: skip
        """An officer's days the plain way: a `Punch` a record, `assign_days`, `compute_day`."""
        assigned = assign_days([_punch(row) for row in rows], scheme, ZoneInfo(home.timezone))
        for d in dates:
            yield compute_day(
                emp.id, home, emp.scheme, scheme, self.calendar.day(home, d), facts,
                assigned.get(d, []), now, self.merge_window_s,
            )  # fmt: skip


ONE_DAY = dt.timedelta(days=1)
#: record ids read in one query
ID_CHUNK = 500


def _window(first: dt.date, last: dt.date) -> tuple[str, str]:
    """The UTC times whose punches may belong to `first`..`last`: a day's margin either side
    (zones, and the morning half of a night shift)."""
    since = dt.datetime.combine(max(first, dt.date.min + ONE_DAY) - ONE_DAY, dt.time(), dt.UTC)
    until = dt.datetime.combine(
        min(last, dt.date.max - 2 * ONE_DAY) + 2 * ONE_DAY, dt.time(), dt.UTC
    )
    return utc_z(since), utc_z(until)


def _punch(row: Sequence[Any]) -> Punch:
    return Punch.from_record(dict(zip(FIELDS, row, strict=True)))


#: A stored time's seconds and its end (``:SSZ``).
_SECONDS = {f":{s:02d}Z": s for s in range(60)}


class _Zone:
    """An office zone's view of stored times: for each minute (``YYYY-MM-DDTHH:MM``, UTC) its
    UTC seconds since 1970, its local date (ordinal) and minute of the day, and its local time
    as ``YYYY-MM-DDTHH:MM:`` with the offset's text; None for a text that is not such a minute,
    or a minute in which the zone's offset changes (or is not whole minutes)."""

    def __init__(self, name: str):
        self.zone = ZoneInfo(name)
        self._minutes: dict[str, tuple[int, int, int, str, str] | None] = {}
        self._hours: dict[int, int | None] = {}

    def _offset(self, utc: int) -> int:
        offset = dt.datetime.fromtimestamp(utc, self.zone).utcoffset()
        assert offset is not None
        return int(offset.total_seconds())

    def minute(self, prefix: str) -> tuple[int, int, int, str, str] | None:
        if prefix in self._minutes:
            return self._minutes[prefix]
        found: tuple[int, int, int, str, str] | None = None
        try:
            at = dt.datetime.fromisoformat(prefix + ":00+00:00")
        except ValueError:
            at = None
        if at is not None and prefix[10] == "T":
            utc = int(at.timestamp())
            hour = utc // 3600
            if hour not in self._hours:
                a, b = self._offset(hour * 3600), self._offset(hour * 3600 + 3599)
                self._hours[hour] = a if a == b else None
            off = self._hours[hour]
            if off is None and self._offset(utc) == self._offset(utc + 59):
                off = self._offset(utc)
            if off is not None and off % 60 == 0:
                local = dt.datetime.fromtimestamp(utc, self.zone)
                text = local.isoformat()  # YYYY-MM-DDTHH:MM:00+08:00
                found = (utc, local.toordinal(), local.hour * 60 + local.minute, text[:17],
                         text[19:])  # fmt: skip
        self._minutes[prefix] = found
        return found

    def assign(
        self, rows: list[tuple[Any, ...]], roster: RosterScheme | None, scheme_name: str,
        cutoffs: dict[tuple[str, int], int],
    ) -> dict[int, list[QuickPunch]] | None:  # fmt: skip
        """`assign_days` of an officer's rows (`FIELDS`), by date ordinal, as `QuickPunch`es;
        None when a time is not the store's ``YYYY-MM-DDTHH:MM:SSZ`` (or falls in a minute
        `minute` gives None)."""
        out: dict[int, list[QuickPunch]] = {}
        minutes = self._minutes
        for row in rows:
            at = row[2]
            sec = _SECONDS.get(at[16:])
            when = minutes.get(at[:16]) or self.minute(at[:16])
            if when is None or sec is None:
                return None
            utc, day, minute, stamp, offset = when
            if roster is not None:
                cut = cutoffs.get((scheme_name, day))
                if cut is None:
                    cut = cutoffs[scheme_name, day] = night_cutoff(roster, day)
                if minute < cut:
                    day -= 1
            clock = stamp[11:] + at[17:19]
            # id and device_id are text columns (NOT NULL): str already, as `Punch` makes them
            p: QuickPunch = (utc + sec, row[3], str(row[5] or "unknown"), str(row[6] or ""),
                             row[4], row[7], clock, stamp + at[17:19] + offset, row[8],
                             row[9])  # fmt: skip
            mine = out.get(day)
            if mine is None:
                out[day] = [p]
            else:
                mine.append(p)
        return out
