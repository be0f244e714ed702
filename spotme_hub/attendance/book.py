"""Days from the store: every configured officer's day for every date asked, punches or not.

Reads the records of the dates (with a day's margin either side, for zones and night shifts),
groups them by officer, gives each punch its working date (`rules.assign_days`) and computes
each day with `rules.compute_day`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from ..clock import utc_z
from ..config import Employee, HubConfig, Office
from ..schedule import Fact
from ..store import RecordFilter, Store
from .calendar import Calendar
from .rules import Day, Punch, assign_days, compute_day


class DayBook:
    """The days of a configuration's officers, computed from its store."""

    def __init__(self, cfg: HubConfig, store: Store, merge_window_s: float = 120):
        self.cfg = cfg
        self.store = store
        self.calendar = Calendar(cfg.calendar)
        self.merge_window_s = merge_window_s
        self.facts: dict[str, list[Fact]] = defaultdict(list)
        for fact in cfg.facts:
            self.facts[fact.employee].append(fact)

    def home(self, emp: Employee, punches: list[Punch], office_of: dict[str, str]) -> Office:
        """The officer's home office; without one configured, where most of their punches in
        the range were made; else the first office."""
        if emp.office is not None:
            return self.cfg.office(emp.office)
        seen = Counter(office_of[p.id] for p in punches if office_of.get(p.id))
        for office_id, _ in seen.most_common():
            try:
                return self.cfg.office(office_id)
            except KeyError:
                continue
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
    ) -> Iterator[Day]:
        """Days of `first`..`last` (inclusive), by officer, then date."""
        now = now or dt.datetime.now(dt.UTC)
        employees = [e for e in self.cfg.employees if employee is None or e.id == employee]
        wanted = {e.id for e in employees}
        since = dt.datetime.combine(first - dt.timedelta(days=1), dt.time(), dt.UTC)
        until = dt.datetime.combine(last + dt.timedelta(days=2), dt.time(), dt.UTC)
        flt = RecordFilter(employee_id=employee, since=utc_z(since), until=utc_z(until))
        by_employee: dict[str, list[Punch]] = defaultdict(list)
        office_of: dict[str, str] = {}
        for rec in self.store.iter_records(flt):
            emp_id = rec.get("employee_id")
            if emp_id in wanted:
                p = Punch.from_record(rec)
                by_employee[emp_id].append(p)
                office_of[p.id] = rec.get("office_id") or ""
        dates = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        for emp in employees:
            punches = by_employee.get(emp.id, [])
            home = self.home(emp, punches, office_of)
            if office is not None and home.id != office:
                continue
            scheme = self.cfg.schemes[emp.scheme]
            assigned = assign_days(punches, scheme, ZoneInfo(home.timezone))
            for d in dates:
                yield compute_day(
                    emp.id, home, emp.scheme, scheme, self.calendar.day(home, d),
                    self.facts.get(emp.id, []), assigned.get(d, []), now, self.merge_window_s,
                )  # fmt: skip
