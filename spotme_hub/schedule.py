"""Working-time settings: the calendar overrides, the schemes and the officer facts of a config.

Plain pydantic models (the `calendar:`, `schemes:` and `facts:` sections and a facts file), so the
configuration can validate them with file, line and field; the rules that use them live in
`spotme_hub/attendance/`. Times of day are ``HH:MM`` texts kept as minutes after midnight;
durations are ``9h``, ``7h30m``, ``45m`` or a number of minutes.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

#: Malaysian states and federal territories as the `holidays` package spells them (MY subdiv).
StateCode = Literal[
    "JHR", "KDH", "KTN", "MLK", "NSN", "PHG", "PNG", "PRK",
    "PLS", "SGR", "TRG", "SBH", "SWK", "KUL", "LBN", "PJY",
]  # fmt: skip

Weekday = Literal["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
#: Weekday names in `date.weekday()` order.
WEEKDAYS: tuple[Weekday, ...] = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?$")


def _minute_of_day(value: Any) -> Any:
    if isinstance(value, str):
        m = _HHMM.match(value.strip())
        if m is None:
            raise ValueError(f"not a time of day HH:MM: {value!r}")
        return int(m[1]) * 60 + int(m[2])
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return value  # already minutes (a model built in code)
    raise ValueError(f"not a time of day HH:MM: {value!r}")


def _minutes(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text.isdigit():
            return int(text)
        m = _DURATION.match(text)
        if m is not None and (m[1] or m[2]):
            return int(m[1] or 0) * 60 + int(m[2] or 0)
    raise ValueError(f"not a duration (e.g. 9h, 7h30m, 45m or minutes): {value!r}")


def _upper(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().upper()
    if isinstance(value, list):
        return [v.strip().upper() if isinstance(v, str) else v for v in value]
    return value


#: A time of day, as minutes after midnight (written ``HH:MM``; the schema says so to editors).
TimeOfDay = Annotated[
    int,
    BeforeValidator(_minute_of_day),
    WithJsonSchema({"anyOf": [
        {"type": "string", "pattern": _HHMM.pattern, "description": "HH:MM"},
        {"type": "integer", "minimum": 0, "maximum": 24 * 60 - 1, "description": "minutes"},
    ]}),
]  # fmt: skip
#: A duration in minutes (written ``9h``, ``7h30m``, ``45m`` or minutes).
Minutes = Annotated[
    int,
    BeforeValidator(_minutes),
    Field(ge=0, le=24 * 60),
    WithJsonSchema({"anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+h)?\s*(\d+m)?\s*$|^\s*\d+\s*$",
         "description": "9h, 7h30m, 45m or minutes"},
        {"type": "integer", "minimum": 0, "maximum": 24 * 60},
    ]}),
]  # fmt: skip
Days = Annotated[list[Weekday], BeforeValidator(_upper)]


#: The dates the hub works attendance days out for (a date outside is refused, not computed).
FIRST_DAY = dt.date(1970, 1, 1)
LAST_DAY = dt.date(2199, 12, 31)


def parse_day(text: str) -> dt.date:
    """A working date written YYYY-MM-DD, within `FIRST_DAY`..`LAST_DAY`; ValueError saying
    which rule it broke."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date YYYY-MM-DD: {text!r}") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(
            f"{text} is outside the dates days are kept for ({FIRST_DAY} to {LAST_DAY})"
        )
    return day


def hhmm(minute: int) -> str:
    """Minutes after midnight as ``HH:MM`` (24:00 and later wrap to the next day's time)."""
    minute %= 24 * 60
    return f"{minute // 60:02d}:{minute % 60:02d}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)


# -- the calendar ----------------------------------------------------------------------------
class _Scoped(_Strict):
    """Applies to the named states and offices; naming neither: everywhere."""

    states: list[StateCode] | None = Field(None, description="State codes, e.g. [JHR].")
    offices: list[str] | None = Field(None, description="Office ids.")

    _states = field_validator("states", mode="before")(_upper)

    def applies(self, state: str | None, office_id: str) -> bool:
        if self.states is None and self.offices is None:
            return True
        return (state is not None and state in (self.states or ())) or office_id in (
            self.offices or ()
        )


class HolidayChange(_Scoped):
    """A date added to (or removed from) the public holidays."""

    date: dt.date
    name: str | None = Field(None, description="Shown in days and reports (added dates).")


class HolidayChanges(_Strict):
    add: list[HolidayChange] = Field(default_factory=list)
    remove: list[HolidayChange] = Field(default_factory=list)


class WeekendRule(_Scoped):
    """From `from` on, these are the rest days."""

    from_: dt.date = Field(alias="from")
    days: Days = Field(min_length=1, max_length=6)


class CalendarSection(_Strict):
    holidays: HolidayChanges = Field(default_factory=HolidayChanges)
    weekends: list[WeekendRule] = Field(
        default_factory=list,
        description="Weekend overrides, effective-dated; the built-in state table otherwise.",
    )
    public_holidays: bool = Field(
        True, description="Take public holidays from the `holidays` package (MY, office state)."
    )


# -- schemes ---------------------------------------------------------------------------------
class WbfScheme(_Strict):
    """Waktu Bekerja Fleksi (PP 5/2019, MyPPSM SR.4.1.1)."""

    kind: Literal["wbf"] = "wbf"
    ref: str | None = "PP 5/2019; MyPPSM SR.4.1.1"
    count_from: TimeOfDay = Field(7 * 60 + 30, description="Earlier punches count from here.")
    late_after: TimeOfDay = Field(9 * 60, description="A first punch after this is late.")
    span: Minutes = Field(9 * 60, description="In to out, rest included.")
    office_end: TimeOfDay = Field(18 * 60, description="When a late officer is due out.")
    short_span: Minutes = Field(7 * 60 + 30, description="Span on the short day.")
    short_office_end: TimeOfDay = Field(16 * 60 + 30)
    late_granularity: Literal["minute", "second"] = Field(
        "minute", description="minute: 09:00:59 is on time; second: 09:00:01 is late."
    )
    settle: Minutes = Field(
        60, description="After office end, this long before today's day stops being provisional."
    )


class FixedScheme(_Strict):
    """Fixed hours: in by `start` (+ grace), out at `end`."""

    kind: Literal["fixed"]
    ref: str | None = None
    start: TimeOfDay
    end: TimeOfDay
    grace: Minutes = 0
    late_granularity: Literal["minute", "second"] = "minute"
    settle: Minutes = 60


class Shift(_Strict):
    start: TimeOfDay
    end: TimeOfDay = Field(description="Before `start`: the shift ends the next day.")
    grace: Minutes = 0


class RosterScheme(_Strict):
    """Named shifts by weekday; a shift that ends before it starts crosses midnight and belongs
    to the day it starts. Punches belong to a shift from `before` its start to `after` its end."""

    kind: Literal["roster"]
    ref: str | None = None
    shifts: dict[str, Shift] = Field(min_length=1)
    week: dict[Weekday, str | None] = Field(
        default_factory=dict, description="Weekday → shift name (none: the first shift daily)."
    )
    before: Minutes = Field(3 * 60, description="How early a punch may still open a shift.")
    after: Minutes = Field(4 * 60, description="How late a punch may still close a shift.")
    late_granularity: Literal["minute", "second"] = "minute"
    settle: Minutes = 60

    @model_validator(mode="before")
    @classmethod
    def _week_keys(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("week"), dict):
            value = {**value, "week": {_upper(k): v for k, v in value["week"].items()}}
        return value

    @model_validator(mode="after")
    def _known_shifts(self) -> RosterScheme:
        for day, name in self.week.items():
            if name is not None and name not in self.shifts:
                known = ", ".join(self.shifts)
                raise ValueError(f"week.{day}: unknown shift {name!r} ({known})")
        return self

    def shift_on(self, weekday: Weekday) -> Shift | None:
        if not self.week:
            return next(iter(self.shifts.values()))
        name = self.week.get(weekday)
        return None if name is None else self.shifts[name]


SCHEME_KINDS = ("wbf", "fixed", "roster")


def _scheme_kind(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("kind", "wbf")  # WBF unless said otherwise
    return getattr(value, "kind", None)


Scheme = Annotated[
    Annotated[WbfScheme, Tag("wbf")]
    | Annotated[FixedScheme, Tag("fixed")]
    | Annotated[RosterScheme, Tag("roster")],
    Discriminator(_scheme_kind),
]

#: The scheme every officer has unless the config says otherwise.
DEFAULT_SCHEME = "WBF"


def default_schemes() -> dict[str, WbfScheme | FixedScheme | RosterScheme]:
    return {DEFAULT_SCHEME: WbfScheme()}


# -- officer facts ---------------------------------------------------------------------------
FactKind = Literal[
    "pregnancy_early_leave", "ramadan_early_leave", "bdr", "time_off", "official_duty", "leave"
]
#: How much each early-leave fact takes off the span, in minutes.
SPAN_REDUCTION: dict[str, int] = {"pregnancy_early_leave": 60, "ramadan_early_leave": 30}


class Fact(_Strict):
    """Something known about an officer on some dates that changes what is due (or explains it)."""

    id: str = Field(min_length=1)
    employee: str = Field(min_length=1)
    kind: FactKind
    from_: dt.date | None = Field(None, alias="from")
    to: dt.date | None = None
    date: dt.date | None = None
    weekdays: Days | None = Field(None, description="Only on these weekdays of the range.")
    part: Literal["full", "am", "pm"] = Field("full", description="BDR and leave: a half day.")
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    radius_m: float = Field(200, gt=0, description="BDR: the home geofence.")
    start: TimeOfDay | None = None
    end: TimeOfDay | None = None
    type: str | None = Field(None, description="Leave type (annual, medical…), duty place…")
    ref: str | None = Field(None, description="The approval's reference.")

    @model_validator(mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = {
                k: str(v) if k in ("id", "employee") and isinstance(v, int) else v
                for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Fact:
        if self.date is not None and (self.from_ is not None or self.to is not None):
            raise ValueError("give `date` or `from`/`to`, not both")
        if self.date is None and self.from_ is None:
            raise ValueError("give `date` or `from` (and `to`)")
        if self.from_ is not None and self.to is not None and self.to < self.from_:
            raise ValueError(f"`to` {self.to} is before `from` {self.from_}")
        if self.kind == "time_off" and (self.start is None or self.end is None):
            raise ValueError("time_off needs `start` and `end`")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("`end` must be after `start`")
        if self.kind == "bdr" and (self.latitude is None) != (self.longitude is None):
            raise ValueError("bdr: give both `latitude` and `longitude` (the home), or neither")
        return self

    @property
    def first(self) -> dt.date:
        d = self.date or self.from_
        assert d is not None
        return d

    @property
    def last(self) -> dt.date | None:
        """The last date covered; None: open-ended."""
        return self.date or self.to

    def covers(self, day: dt.date) -> bool:
        if day < self.first:
            return False
        last = self.last
        if last is not None and day > last:
            return False
        return self.weekdays is None or WEEKDAYS[day.weekday()] in self.weekdays


class DaysSettings(_Strict):
    """How the hub keeps attendance days (`attendance:` in the configuration)."""

    enabled: bool = Field(
        True, description="Keep every configured officer's days in the store as punches commit."
    )
    merge_window_s: float = Field(
        120, ge=0, description="Punches of one officer this close (any source) are taken as one."
    )
    poll_s: float = Field(
        0.5, gt=0, description="Look for new records, facts and settled days this often."
    )


# -- the monthly report ----------------------------------------------------------------------
#: The colour card, from the normal card up: yellow → green → red (agency practice, SPA 11/1981).
CardColour = Literal["yellow", "green", "red"]
#: The counts a card level may name, and what each counts in the month.
CARD_COUNTS: dict[str, str] = {
    "lates": "days late",
    "absences": "working days absent",
    "early_outs": "days out early",
    "incompletes": "settled days with only one of in and out",
}


class CardLevel(_Strict):
    """A card an officer is given when any count named here reaches its number in the month;
    a level that names nothing is never given."""

    lates: int | None = Field(None, ge=1, description="Days late in the month.")
    absences: int | None = Field(
        None, ge=1, description="Working days absent (no punch, no leave)."
    )
    early_outs: int | None = Field(None, ge=1, description="Days out before due.")
    incompletes: int | None = Field(
        None, ge=1, description="Settled days with an in or an out only."
    )

    def thresholds(self) -> dict[str, int]:
        """The counts this level names, with their numbers (in `CARD_COUNTS` order)."""
        return {k: n for k in CARD_COUNTS if (n := getattr(self, k)) is not None}


def _green() -> CardLevel:
    return CardLevel(lates=3, absences=1)


def _red() -> CardLevel:
    return CardLevel(lates=6, absences=3)


class ColourCard(_Strict):
    """The month's colour card: red when any red number is reached, else green when any green
    one is, else yellow. A level written in the file replaces its default whole."""

    green: CardLevel = Field(default_factory=_green, description="Default: 3 lates or 1 absence.")
    red: CardLevel = Field(default_factory=_red, description="Default: 6 lates or 3 absences.")

    @model_validator(mode="after")
    def _red_after_green(self) -> ColourCard:
        green = self.green.thresholds()
        for name, n in self.red.thresholds().items():
            g = green.get(name)
            if g is not None and n < g:
                default = "" if "red" in self.model_fields_set else ", the default"
                raise ValueError(
                    f"red.{name} ({n}{default}) is below green.{name} ({g}): "
                    "red must not come before green"
                )
        return self


class ReportSection(_Strict):
    """The `report:` section: settings of `spotme-hub report monthly`."""

    colour_card: ColourCard = Field(default_factory=ColourCard)
