"""One officer's day from the punches of every source, by the rules of the officer's scheme.

Pure: the punches, the calendar day, the facts and `now` in; a `Day` out, with the rule trace in
words (`explain`). Times are worked in minutes (or seconds) after the local midnight of the day,
in the zone of the officer's home office; a cross-midnight shift's morning is past 24:00.

The order of the rules (WBF, `docs/days.md` has the worked examples):
1. the day's kind from the calendar: a rest day or holiday is `off` (tagged if worked);
2. the punches sorted by time, near-duplicates (any source, within `merge_window_s`) collapsed;
3. in = the first punch not marked out, out = the last later punch not marked in;
4. effective in = in, but not before `count_from`; late when in is after `late_after`;
5. required = the span (short day: `short_span`) less early-leave facts; due out = effective in +
   required, or for a late officer office end less the same facts;
6. approved time-off excuses lateness and early leaving up to min(4 h, half the day's work);
7. status: `leave` (a leave fact), else `complete` (in and out), `incomplete` (one of them, or
   today's day before it has settled), `absent` (nothing, once the day has settled).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ..clock import parse_utc
from ..config import Office
from ..normalize.geo import haversine_m
from ..record import Punch as PunchType
from ..schedule import (
    SPAN_REDUCTION,
    WEEKDAYS,
    Fact,
    FixedScheme,
    RosterScheme,
    WbfScheme,
    hhmm,
)
from .calendar import CalendarDay

Status = Literal["complete", "incomplete", "absent", "leave", "off"]
AnyScheme = WbfScheme | FixedScheme | RosterScheme

_INWARD = {PunchType.IN.value, PunchType.OVERTIME_IN.value}
_OUTWARD = {PunchType.OUT.value, PunchType.OVERTIME_OUT.value}
#: SR.4.2.2: time off within working hours, at most 4 h and half the day's working time.
TIME_OFF_CAP_MIN = 240
REST_MIN = 60


@dataclass(frozen=True, slots=True)
class Punch:
    """A stored record as the day rules see it."""

    id: str
    at: dt.datetime  # aware
    punch: str
    device_kind: str
    device_id: str
    within_geofence: bool | None = None
    latitude: float | None = None
    longitude: float | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Punch:
        at = parse_utc(str(rec["occurred_at"]))
        return cls(
            id=str(rec["id"]),
            at=at,
            punch=str(rec.get("punch") or PunchType.UNKNOWN.value),
            device_kind=str(rec.get("device_kind") or ""),
            device_id=str(rec.get("device_id") or ""),
            within_geofence=rec.get("within_geofence"),
            latitude=rec.get("latitude"),
            longitude=rec.get("longitude"),
        )


@dataclass(slots=True)
class Day:
    """One officer's status on one date (the stable shape of `docs/days.md`)."""

    employee_id: str
    date: str
    office_id: str
    state: str | None
    scheme: str
    day_kind: str
    holiday: str | None
    status: Status
    late: bool = False
    late_min: int = 0
    early_out: bool = False
    early_min: int = 0
    first_in: str | None = None
    last_out: str | None = None
    effective_in: str | None = None
    due_out: str | None = None
    span_min: int | None = None
    required_min: int | None = None
    tags: list[str] = field(default_factory=list)
    punches: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    explain: list[str] = field(default_factory=list)
    #: when a provisional day settles (RFC 3339, the office's offset); None once it has
    settles_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    #: The fields that say what the day is (not which records or words said it).
    VERDICT = (
        "status", "day_kind", "holiday", "late", "late_min", "early_out", "early_min",
        "first_in", "last_out", "effective_in", "due_out", "span_min", "required_min", "tags",
    )  # fmt: skip

    def verdict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.VERDICT}


@dataclass(frozen=True, slots=True)
class Hours:
    """What a scheme expects on one date, in minutes after the local midnight."""

    start: int | None  # a fixed start (fixed, roster); None under WBF
    count_from: int | None  # WBF: earlier punches count from here
    late_after: int
    span: int
    office_end: int  # when a late officer is due out (fixed, roster: the end)
    flexible: bool  # WBF: due out = effective in + span
    granularity: Literal["minute", "second"]
    settle: int
    label: str
    cross_midnight: bool = False


def hours_for(scheme: AnyScheme, cal: CalendarDay) -> Hours | None:
    """The expected hours of `scheme` on `cal`'s date (None: no shift that day)."""
    if isinstance(scheme, WbfScheme):
        span = scheme.short_span if cal.short else scheme.span
        end = scheme.short_office_end if cal.short else scheme.office_end
        label = "WBF short day" if cal.short else "WBF"
        return Hours(None, scheme.count_from, scheme.late_after, span, end, True,
                     scheme.late_granularity, scheme.settle, label)  # fmt: skip
    if isinstance(scheme, FixedScheme):
        return Hours(scheme.start, None, scheme.start + scheme.grace, scheme.end - scheme.start,
                     scheme.end, False, scheme.late_granularity, scheme.settle, "fixed hours")  # fmt: skip
    shift = scheme.shift_on(WEEKDAYS[cal.date.weekday()])
    if shift is None:
        return None
    end = shift.end if shift.end > shift.start else shift.end + 24 * 60
    return Hours(shift.start, None, shift.start + shift.grace, end - shift.start, end, False,
                 scheme.late_granularity, scheme.settle,
                 f"shift {hhmm(shift.start)}–{hhmm(shift.end)}", end > 24 * 60)  # fmt: skip


def assign_days(
    punches: Iterable[Punch], scheme: AnyScheme, zone: ZoneInfo
) -> dict[dt.date, list[Punch]]:
    """Each punch's working date: its local date, or under a roster the date before when the
    punch is the morning half of a night shift (`night_cutoff`)."""
    out: dict[dt.date, list[Punch]] = {}
    for p in punches:
        local = p.at.astimezone(zone)
        day = local.date()
        minute = local.hour * 60 + local.minute
        if isinstance(scheme, RosterScheme) and minute < night_cutoff(scheme, day.toordinal()):
            day -= dt.timedelta(days=1)
        out.setdefault(day, []).append(p)
    return out


def night_cutoff(scheme: RosterScheme, ordinal: int) -> int:
    """Under a roster, a punch before this minute of its local date belongs to the date before:
    the date before had a shift that ran past midnight, the punch is within `after` of its end,
    and today's shift window (`before` its start) has not opened. 0: no such shift."""
    day = dt.date.fromordinal(ordinal)
    prev = scheme.shift_on(WEEKDAYS[(day.weekday() - 1) % 7])
    if prev is None or not prev.end < prev.start:
        return 0
    today = scheme.shift_on(WEEKDAYS[day.weekday()])
    cut = prev.end + scheme.after + 1
    return cut if today is None else min(cut, today.start - scheme.before)


def compute_day(
    employee_id: str,
    office: Office,
    scheme_name: str,
    scheme: AnyScheme,
    cal: CalendarDay,
    facts: Sequence[Fact],
    punches: Sequence[Punch],
    now: dt.datetime,
    merge_window_s: float = 120,
) -> Day:
    """The day of `employee_id` on `cal.date` from its punches (those `assign_days` gave it):
    `day_of` over the date's context and the punches as `QuickPunch`es."""
    ctx = DayContext.of(office, scheme_name, scheme, cal, now)
    zone = ZoneInfo(office.timezone)
    return day_of(ctx, employee_id, [quick(p, zone) for p in punches], facts, merge_window_s)


#: A punch as the rules work it: (UTC seconds since 1970, id, punch, device kind, device id,
#: within_geofence, local clock ``HH:MM:SS``, local time in RFC 3339 with its offset, latitude,
#: longitude). Sorted tuples are in (time, id) order, as `merge` sorts punches.
QuickPunch = tuple[
    float, str, str, str, str, "bool | None", str, str, "float | None", "float | None"
]

#: `schedule.hhmm` of each minute of the day, by lookup (the rules format many times a day)
_HHMM = tuple(f"{m // 60:02d}:{m % 60:02d}" for m in range(24 * 60))
_DIRECTED = _INWARD | _OUTWARD


def quick(p: Punch, zone: ZoneInfo) -> QuickPunch:
    """A `Punch` as the rules work it, in the zone of the officer's home office."""
    local = p.at.astimezone(zone)
    return (p.at.timestamp(), p.id, p.punch, p.device_kind, p.device_id, p.within_geofence,
            local.strftime("%H:%M:%S"), local.isoformat(), p.latitude, p.longitude)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DayContext:
    """What every day of one office, scheme and date shares, worked out once."""

    cal: CalendarDay
    date: str
    office_id: str
    state: str | None
    scheme_name: str
    hours: Hours | None  # None: not a working day, or no shift that day
    midnight: int  # the local midnight, in UTC seconds since 1970
    settled: bool
    settles_at: str | None  # when a day not yet settled settles (RFC 3339)
    why: str  # the calendar's sentence
    label: str  # the scheme's sentence when the whole span is required
    provisional: str  # the sentence of a day not yet settled
    template: Day | None = None  # the day without punches or facts, of employee ""

    @classmethod
    def of(
        cls, office: Office, scheme_name: str, scheme: AnyScheme, cal: CalendarDay,
        now: dt.datetime,
    ) -> DayContext:  # fmt: skip
        zone = ZoneInfo(office.timezone)
        midnight = dt.datetime.combine(cal.date, dt.time(), zone)
        hours = hours_for(scheme, cal) if cal.kind == "working" else None
        settled, settles_at, label, provisional = True, None, "", ""
        if hours is not None:
            label = f"{hours.label}: span {_dur(hours.span)}, required {_dur(hours.span)}."
            closes = midnight + dt.timedelta(minutes=hours.office_end + hours.settle)
            settled = now >= closes
            if not settled:
                settles_at = closes.isoformat()
            provisional = f"Provisional until {closes.isoformat()}."
        ctx = cls(cal, cal.date.isoformat(), office.id, office.state, scheme_name, hours,
                  int(midnight.timestamp()), settled, settles_at, cal.why + ".", label,
                  provisional)  # fmt: skip
        return replace(ctx, template=day_of(ctx, "", (), ()))

    def blank(self, employee_id: str) -> Day:
        """The day of an officer without punches or facts."""
        t = self.template
        assert t is not None
        return Day(employee_id, t.date, t.office_id, t.state, t.scheme, t.day_kind, t.holiday,
                   t.status, t.late, t.late_min, t.early_out, t.early_min, t.first_in,
                   t.last_out, t.effective_in, t.due_out, t.span_min, t.required_min,
                   list(t.tags), [], [], list(t.explain), t.settles_at)  # fmt: skip


def _settle_run(run: list[QuickPunch]) -> QuickPunch:
    """`merge`'s kept punch of a run of near-duplicates."""
    first = run[0]
    if len(run) == 1:
        return first
    given = {"in" if q[2] in _INWARD else "out" for q in run if q[2] in _DIRECTED}
    if len(given) == 1:
        direction = next(q[2] for q in run if q[2] in _DIRECTED)
    else:
        direction = first[2] if not given else PunchType.UNKNOWN.value
    if direction == first[2]:
        return first
    return (first[0], first[1], direction, *first[3:])


def day_of(
    ctx: DayContext,
    employee_id: str,
    punches: Sequence[QuickPunch],
    facts: Sequence[Fact],
    merge_window_s: float = 120,
) -> Day:
    """The rules (the module's text, in that order): the day of `employee_id` on the context's
    date from its punches and the facts (those of other officers or dates are passed over)."""
    cal, hours = ctx.cal, ctx.hours
    day = Day(employee_id, ctx.date, ctx.office_id, ctx.state, ctx.scheme_name, cal.kind,
              cal.holiday, "absent")  # fmt: skip
    why = day.explain
    why.append(ctx.why)
    tags: set[str] = set()
    active = [f for f in facts if f.employee == employee_id and f.covers(cal.date)] if facts else []
    for f in active:
        why.append(f"Fact {f.id}: {_fact_words(f)}.")

    ordered = sorted(punches)
    kept: list[QuickPunch] = []
    run: list[QuickPunch] = []
    for p in ordered:
        if run and p[0] - run[0][0] <= merge_window_s:
            run.append(p)
        else:
            if run:
                kept.append(_settle_run(run))
            run = [p]
    if run:
        kept.append(_settle_run(run))
    day.punches = [p[1] for p in ordered]
    day.sources = sorted({p[3] for p in ordered if p[3]})
    if ordered:
        listed = ", ".join([f"{p[6]} {p[2]} ({p[4]})" for p in kept])
        why.append(f"Punches: {listed}.")
        collapsed = len(ordered) - len(kept)
        if collapsed:
            why.append(
                f"{collapsed} punch(es) within {merge_window_s:g} s of another were taken as one."
            )

    # where: the office geofence, or the home of a BDR day
    bdr = [f for f in active if f.kind == "bdr"]
    if bdr:
        tags.add("bdr")
    for p in kept:
        home = next((f for f in bdr if _at_home(f, p[8], p[9])), None) if bdr else None
        if home is not None and home.latitude is not None:
            why.append(f"{p[6]} is inside the BDR home geofence ({home.id}).")
        elif p[5] is False:
            tags.add("external")
            why.append(f"{p[6]} is outside the office geofence: external.")

    # directions
    first = next((p for p in kept if p[2] not in _OUTWARD), None)
    last: QuickPunch | None = None
    for p in reversed(kept):
        if p is first:
            break
        if p[2] not in _INWARD and (first is None or p[0] > first[0]):
            last = p
            break
    if first is not None:
        day.first_in = first[7]
    if last is not None:
        day.last_out = last[7]

    if hours is None:
        day.status = "off"
        if kept:
            tags.add("worked_holiday" if cal.kind == "holiday" else "worked_rest_day")
            why.append("Worked on a day off.")
        elif cal.kind == "working":
            why.append("No shift on this day.")
        day.tags = sorted(tags)
        return day

    second = hours.granularity == "second"
    if hours.cross_midnight:
        tags.add("cross_midnight")
    midnight = ctx.midnight
    in_s = float(first[0] - midnight) if first is not None else None
    out_s = float(last[0] - midnight) if last is not None else None
    in_min = int(in_s // 60) if in_s is not None else None
    out_min = int(out_s // 60) if out_s is not None else None

    # deemed times of official duty
    duty_all_day = False
    for f in active:
        if f.kind != "official_duty":
            continue
        tags.add("official_duty")
        if f.start is None and f.end is None:
            duty_all_day = True
            continue
        if f.start is not None and (in_min is None or f.start < in_min):
            in_min, in_s = f.start, f.start * 60.0
            why.append(f"Official duty {f.id}: in deemed at {_HHMM[f.start % 1440]}.")
        if f.end is not None and (out_min is None or f.end > out_min):
            out_min, out_s = f.end, f.end * 60.0
            why.append(f"Official duty {f.id}: out deemed at {_HHMM[f.end % 1440]}.")

    # what is due
    reduction = 0
    half_leave = full_leave = None
    for f in active:
        cut = SPAN_REDUCTION.get(f.kind)
        if cut:
            reduction += cut
            tags.add(f.kind)
            why.append(f"{f.kind.replace('_', ' ').capitalize()}: {cut} min less.")
        if f.kind == "leave" and f.part != "full" and half_leave is None:
            half_leave = f
        if f.kind == "leave" and f.part == "full" and full_leave is None:
            full_leave = f
    required = max(hours.span - reduction, 0)
    if half_leave is not None:
        required //= 2
        why.append(f"Half-day leave ({half_leave.part}): {required} min required.")
    day.span_min = hours.span
    day.required_min = required
    why.append(
        ctx.label
        if required == hours.span
        else f"{hours.label}: span {_dur(hours.span)}, required {_dur(required)}."
    )

    if full_leave is not None:
        day.status = "leave"
        why.append(f"On leave ({full_leave.type or 'leave'}): not absent, nothing due.")
        day.tags = sorted(tags)
        return day
    if duty_all_day:
        day.status = "complete"
        why.append("On official duty all day: present.")
        day.tags = sorted(tags)
        return day

    time_off = [(f.start, f.end) for f in active if f.kind == "time_off"] if active else []
    if time_off:
        tags.add("time_off")
    # SR.4.2.2: what approved time-off may excuse today, used up by lateness first
    credit = [min(TIME_OFF_CAP_MIN, max(hours.span - REST_MIN, 0) // 2)]

    if in_min is not None and in_s is not None:
        start = hours.count_from if hours.flexible else hours.start
        assert start is not None
        effective = max(in_min, start) if hours.flexible else in_min
        if hours.flexible and in_min < start:
            why.append(f"In at {_HHMM[in_min % 1440]} counts from {_HHMM[start % 1440]}.")
        day.effective_in = _HHMM[effective % 1440]
        if second:
            over = in_s - hours.late_after * 60
            late_min = math.ceil(over / 60) if over > 0 else 0
        else:
            late_min = max(in_min - hours.late_after, 0)
        if late_min and time_off:
            excused = _excuse(time_off, credit, hours.late_after, hours.late_after + late_min)
            if excused:
                why.append(f"{excused} min of the lateness is approved time-off.")
                late_min -= excused
        if late_min > 0:
            day.late, day.late_min = True, late_min
            due = hours.office_end - reduction
            if half_leave is not None and half_leave.part == "pm":
                due = effective + required
            why.append(
                f"Late: in {_HHMM[in_min % 1440]} is after {_HHMM[hours.late_after % 1440]} by {late_min} min; "
                f"due out at {_HHMM[due % 1440]} (office end)."
            )
        else:
            due = effective + required if hours.flexible else hours.office_end - reduction
            if half_leave is not None:
                due = effective + required
            why.append(f"On time; due out at {_HHMM[due % 1440]}.")
        day.due_out = _HHMM[due % 1440]
        if out_min is not None and out_s is not None:
            short_by = (
                max(math.ceil((due * 60 - out_s) / 60), 0) if second else max(due - out_min, 0)
            )
            if short_by and time_off:
                excused = _excuse(time_off, credit, due - short_by, due)
                if excused:
                    why.append(f"{excused} min of the early leaving is approved time-off.")
                    short_by -= excused
            if short_by > 0:
                day.early_out, day.early_min = True, short_by
                why.append(
                    f"Early out: out {_HHMM[out_min % 1440]} is {short_by} min before {_HHMM[due % 1440]}."
                )

    if in_min is not None and out_min is not None:
        day.status = "complete"
    elif in_min is None and out_min is None:
        day.status = "absent" if ctx.settled else "incomplete"
        why.append("No punches." if ctx.settled else "No punches yet.")
    else:
        day.status = "incomplete"
        why.append("Only an in punch." if out_min is None else "Only an out punch.")
    if not ctx.settled:
        tags.add("provisional")
        day.settles_at = ctx.settles_at
        why.append(ctx.provisional)
    day.tags = sorted(tags)
    return day


def _excuse(
    time_off: Sequence[tuple[int | None, int | None]], credit: list[int], a: int, b: int
) -> int:
    """Minutes of [a, b) covered by approved time-off, within what is left of the credit (taken
    from it)."""
    covered = sum(
        max(0, min(b, e) - max(a, s)) for s, e in time_off if s is not None and e is not None
    )
    used = min(covered, credit[0])
    credit[0] -= used
    return used


def _at_home(fact: Fact, latitude: float | None, longitude: float | None) -> bool:
    """A BDR punch counts at home when it carries coordinates inside the home radius (or the
    fact names no home)."""
    if fact.latitude is None or fact.longitude is None:
        return True
    if latitude is None or longitude is None:
        return False
    return haversine_m(fact.latitude, fact.longitude, latitude, longitude) <= fact.radius_m


def _dur(minutes: int) -> str:
    h, m = divmod(minutes, 60)
    return f"{h} h {m:02d} min" if m else f"{h} h"


def _fact_words(f: Fact) -> str:
    when = f"{f.first}" if f.date else f"{f.first} to {f.last or 'open'}"
    extra = f", {hhmm(f.start)}–{hhmm(f.end)}" if f.start is not None and f.end is not None else ""
    ref = f", ref {f.ref}" if f.ref else ""
    return f"{f.kind.replace('_', ' ')} ({when}{extra}{ref})"
