"""Days from the store: every configured officer's day for every date asked, punches or not.

Reads the records of the dates (with a day's margin either side, for zones and night shifts),
groups them by officer, gives each punch its working date (`rules.assign_days`) and computes
each day with `rules.compute_day`. `days` answers a range for many officers (one pass over the
range); `days_of` some officers' own dates (the ledger's recomputes: indexed reads per officer).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from ..clock import utc_z
from ..config import Employee, HubConfig, Office
from ..schedule import Fact
from ..store import RecordFilter, Store
from .calendar import Calendar
from .facts import FactBook
from .rules import Day, Punch, assign_days, compute_day


class DayBook:
    """The days of a configuration's officers, computed from its store."""

    #: above this many officers `days_of` reads the dates' range once instead of each officer's
    INDEXED_UP_TO = 500

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

    def home(self, emp: Employee) -> Office:
        """The officer's home office: `employees[].office`, else the first office configured
        (a hub serving several offices names each officer's)."""
        if emp.office is not None:
            return self.cfg.office(emp.office)
        if not self.cfg.offices:
            return Office(id="-")
        return self.cfg.offices[0]

    def zone(self, employee_id: str) -> ZoneInfo:
        return ZoneInfo(self.home(self.employees[employee_id]).timezone)

    def days(
        self,
        first: dt.date,
        last: dt.date,
        office: str | None = None,
        employee: str | None = None,
        now: dt.datetime | None = None,
    ) -> Iterator[Day]:
        """Days of `first`..`last` (inclusive), by officer, then date."""
        employees = [e for e in self.cfg.employees if employee is None or e.id == employee]
        if office is not None:
            employees = [e for e in employees if self.home(e).id == office]
        dates = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        records = self._range(first, last, employee)
        yield from self._compute({e.id: dates for e in employees}, records, now)

    def days_of(
        self, wanted: Mapping[str, Collection[dt.date]], now: dt.datetime | None = None
    ) -> Iterator[Day]:
        """The days of these officers on these dates (by officer, then date)."""
        known = {e: sorted(ds) for e, ds in wanted.items() if e in self.employees and ds}
        if not known:
            return
        first = min(ds[0] for ds in known.values())
        last = max(ds[-1] for ds in known.values())
        if len(known) > self.INDEXED_UP_TO:
            records: Iterable[dict[str, Any]] = self._range(first, last, None)
        else:
            since, until = _window(first, last)
            records = self.store.officer_records(list(known), since, until)
        yield from self._compute(known, records, now)

    def _range(
        self, first: dt.date, last: dt.date, employee: str | None
    ) -> Iterator[dict[str, Any]]:
        since, until = _window(first, last)
        return self.store.iter_records(RecordFilter(employee_id=employee, since=since, until=until))

    def _compute(
        self,
        wanted: Mapping[str, Sequence[dt.date]],
        records: Iterable[dict[str, Any]],
        now: dt.datetime | None,
    ) -> Iterator[Day]:
        now = now or dt.datetime.now(dt.UTC)
        by_employee: dict[str, list[Punch]] = defaultdict(list)
        for rec in records:
            emp_id = rec.get("employee_id")
            if isinstance(emp_id, str) and emp_id in wanted:
                by_employee[emp_id].append(Punch.from_record(rec))
        for emp_id, dates in wanted.items():
            emp = self.employees[emp_id]
            home = self.home(emp)
            scheme = self.cfg.schemes[emp.scheme]
            assigned = assign_days(by_employee.get(emp_id, []), scheme, ZoneInfo(home.timezone))
            for d in dates:
                yield compute_day(
                    emp.id, home, emp.scheme, scheme, self.calendar.day(home, d),
                    self.facts.get(emp.id, []), assigned.get(d, []), now, self.merge_window_s,
                )  # fmt: skip


def _window(first: dt.date, last: dt.date) -> tuple[str, str]:
    """The UTC times whose punches may belong to `first`..`last`: a day's margin either side
    (zones, and the morning half of a night shift)."""
    since = dt.datetime.combine(first - dt.timedelta(days=1), dt.time(), dt.UTC)
    until = dt.datetime.combine(last + dt.timedelta(days=2), dt.time(), dt.UTC)
    return utc_z(since), utc_z(until)
