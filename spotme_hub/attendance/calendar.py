"""Which dates are working days for an office: its state's weekend on that date, the public
holidays of the `holidays` package for its state, and the config's additions and removals.

Weekends are effective-dated: Sat–Sun everywhere, Fri–Sat in Kedah, Kelantan and Terengganu, and
in Johor from 2014 to the end of 2024 (Sat–Sun again from 1 Jan 2025). `calendar.weekends` in the
config adds rules; a rule for an office beats one for its state, which beats one for everywhere,
and among those the latest `from` on or before the date wins.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from importlib.metadata import version
from typing import Literal

import holidays

from ..config import Office
from ..schedule import WEEKDAYS, CalendarSection, WeekendRule

DayKind = Literal["working", "rest_day", "holiday"]

_EPOCH = dt.date(1900, 1, 1)
#: The weekends the hub knows without being told (MyPPSM SR.4.1.1; Johor's changes of 2014 and 2025).
BUILT_IN_WEEKENDS: tuple[WeekendRule, ...] = (
    WeekendRule.model_validate({"from": _EPOCH, "days": ["SAT", "SUN"]}),
    WeekendRule.model_validate(
        {"from": _EPOCH, "days": ["FRI", "SAT"], "states": ["KDH", "KTN", "TRG"]}
    ),
    WeekendRule.model_validate({"from": _EPOCH, "days": ["SAT", "SUN"], "states": ["JHR"]}),
    WeekendRule.model_validate({"from": "2014-01-01", "days": ["FRI", "SAT"], "states": ["JHR"]}),
    WeekendRule.model_validate({"from": "2025-01-01", "days": ["SAT", "SUN"], "states": ["JHR"]}),
)

#: Which `holidays` release gave the public holidays (shown with a day's explanation).
HOLIDAYS_VERSION: str = version("holidays")


@dataclass(frozen=True, slots=True)
class CalendarDay:
    date: dt.date
    kind: DayKind
    holiday: str | None  # the holiday's name (also on a holiday that falls on a rest day)
    weekend: tuple[str, ...]  # the rest days in force that week, e.g. ("FRI", "SAT")
    short: bool  # the short working day before a Fri–Sat weekend (7 h 30 min under WBF)
    why: str  # in words, for a day's explanation


class Calendar:
    """Day kinds of offices, from the built-in weekends, the `holidays` package and the config."""

    def __init__(self, section: CalendarSection):
        self.section = section
        self._rules = (*BUILT_IN_WEEKENDS, *section.weekends)

    def weekend(self, office: Office, day: dt.date) -> tuple[str, ...]:
        best: tuple[int, dt.date, int] | None = None
        chosen: WeekendRule | None = None
        for index, rule in enumerate(self._rules):
            if rule.from_ > day or not rule.applies(office.state, office.id):
                continue
            specificity = 2 if rule.offices else 1 if rule.states else 0
            key = (specificity, rule.from_, index)
            if best is None or key > best:
                best, chosen = key, rule
        assert chosen is not None  # the first built-in rule applies to every date from 1900
        return tuple(d for d in WEEKDAYS if d in chosen.days)

    def holiday(self, office: Office, day: dt.date) -> str | None:
        for change in self.section.holidays.remove:
            if change.date == day and change.applies(office.state, office.id):
                return None
        for change in self.section.holidays.add:
            if change.date == day and change.applies(office.state, office.id):
                return change.name or "holiday"
        if not self.section.public_holidays:
            return None
        return _public(office.state, day.year).get(day)

    def day(self, office: Office, day: dt.date) -> CalendarDay:
        weekend = self.weekend(office, day)
        name = self.holiday(office, day)
        weekday = WEEKDAYS[day.weekday()]
        where = office.state or "no state"
        kind: DayKind
        if name is not None:
            kind, why = "holiday", f"{day} is a holiday in {where}: {name}"
        elif weekday in weekend:
            kind, why = "rest_day", f"{weekday} is a rest day in {where} ({'–'.join(weekend)})"
        else:
            kind, why = "working", f"{weekday} is a working day in {where}"
        short = (
            kind == "working"
            and weekend == ("FRI", "SAT")
            and WEEKDAYS[(day.weekday() + 1) % 7] == "FRI"
        )
        if short:
            why += ", the short day before a Fri–Sat weekend"
        return CalendarDay(day, kind, name, weekend, short, why)


@functools.lru_cache(maxsize=256)
def _public(state: str | None, year: int) -> dict[dt.date, str]:
    """The package's holidays of a state in a year (observed days included), as a plain dict."""
    found = holidays.country_holidays("MY", subdiv=state, years=year, observed=True)
    return {d: "; ".join(found.get_list(d)) for d in found}
