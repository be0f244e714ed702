"""Date-times in exports: one naive wall-clock time per row, never a silent guess.

The format is chosen once per file from strict candidates (ISO, `YYYY/MM/DD`, d/m/Y, m/d/Y with
24-hour or 12-hour AM/PM clocks, unpadded hours), then every row is parsed with it in pandas' C
parser; a row that does not fit is quarantined. When a file reads equally well as day/month and
month/day (every day ≤ 12) and neither `dayfirst` nor `date_format` is set, it is refused.
Excel serial numbers are converted with the workbook's epoch and rounded to whole seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from .errors import NothingToImport, UndecidedDates
from .reader import FileRefused, excerpt

_DATES: list[tuple[str, str]] = [
    ("%Y-%m-%d", "ymd"), ("%Y/%m/%d", "ymd"), ("%Y.%m.%d", "ymd"),
    ("%d/%m/%Y", "dmy"), ("%m/%d/%Y", "mdy"), ("%d-%m-%Y", "dmy"), ("%m-%d-%Y", "mdy"),
    ("%d.%m.%Y", "dmy"), ("%m.%d.%Y", "mdy"), ("%d/%m/%y", "dmy"), ("%m/%d/%y", "mdy"),
]  # fmt: skip
_TIMES = ["%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p", "%I:%M:%S%p", "%I:%M%p"]
CANDIDATES: list[tuple[str, str]] = [(f"{d} {t}", order) for d, order in _DATES for t in _TIMES]
CANDIDATES += [(f"%Y-%m-%dT{t}", "ymd") for t in _TIMES[:2]]
SAMPLE = 500


@dataclass(frozen=True, slots=True)
class TimeFormat:
    format: str
    order: str  # ymd | dmy | mdy | given
    #: a token every time carries that is not part of it (`02/12/2024 5:15 A12P12`, written by
    #: some standalone terminals): removed from each value before it is read
    constant: str = ""

    def label(self) -> str:
        """How the summary names it."""
        if not self.constant:
            return self.format
        return f"{self.format} (the constant {self.constant!r} removed from every time)"

    def alternatives(self) -> list[str]:
        """Other forms tried for rows the main one cannot read (workbook columns mix `time`
        cells and "5:31 PM" text): same day/month order only, so nothing is guessed."""
        if self.order == "given":
            return []
        orders = {"ymd", self.order}
        return [f for f, o in CANDIDATES if o in orders and f != self.format]


@dataclass(frozen=True, slots=True)
class Ambiguous:
    dayfirst: TimeFormat
    monthfirst: TimeFormat
    example: str


def time_values(frame: pd.DataFrame, columns: list[str], excel_epoch: datetime | None) -> pd.Series:
    """The pre-step that builds ONE time text per row from one column or a date + time pair."""
    if not len(frame):  # a header and no rows
        return pd.Series([], dtype=object)
    if len(columns) == 1:
        s = _strip(frame[columns[0]])
        if excel_epoch is not None:
            s = _midnight(_excel_serials(s, excel_epoch, "datetime"))
    else:
        d = _strip(frame[columns[0]])
        t = _strip(frame[columns[1]])
        if excel_epoch is not None:
            d = _excel_serials(d, excel_epoch, "date")
            t = _excel_serials(t, excel_epoch, "time")
        d = d.str.partition(" ")[0]
        if t.str.contains("-", regex=False).any():  # a time cell that carries a dummy date
            t = t.str.replace(r"^\d{4}-\d{2}-\d{2}[ T]", "", regex=True)
        s = (d + " " + t).where((d != "") & (t != ""), "")
    return s


def _midnight(s: pd.Series) -> pd.Series:
    """A workbook's date-time cell at exactly 00:00:00 comes out of the reader as a bare date
    (python-calamine returns a whole serial as a date): in a column of date-times it is midnight.
    A column of dates alone is left as it is (no time can be read from it: refused)."""
    bare = s.str.fullmatch(r"\d{4}-\d{2}-\d{2}")
    if bare.any() and s.str.match(r"\d{4}-\d{2}-\d{2} \d").any():
        return s.where(~bare, s + " 00:00:00")
    return s


def _strip(col: pd.Series) -> pd.Series:
    """Strip and collapse inner runs of spaces, once per distinct value (none when every value is
    clean already, which one vectorised check over them all tells)."""
    values = col.to_numpy(dtype=object)
    if _all_clean(values):
        return pd.Series(values, index=col.index, dtype=object)
    codes, uniques = pd.factorize(values)
    clean = np.array([" ".join(str(u).split()) for u in uniques.tolist()] + [""], dtype=object)
    return pd.Series(clean[codes], index=col.index, dtype=object)


def _all_clean(values: np.ndarray) -> bool:
    """True when `" ".join(v.split()) == v` for every value: all ASCII text, no control
    character but the newlines that join them, no space next to a space or a value's edge.
    Vectorised over the joined bytes; False (the exact per-value path) when unsure."""
    try:
        joined = "\n".join(values.tolist())
    except TypeError:  # not all text
        return False
    if not joined.isascii():  # other whitespace exists outside ASCII: let the exact path judge
        return False
    b = np.frombuffer(b"\n" + joined.encode("ascii") + b"\n", dtype=np.uint8)
    if np.count_nonzero(b < 32) != len(values) + 1:  # tabs, CRs... or a newline inside a value
        return False
    space = b == 32
    edge = space | (b == 10)
    return not (space[1:-1] & (edge[:-2] | edge[2:])).any()


def _excel_serials(s: pd.Series, epoch: datetime, part: str) -> pd.Series:
    num = pd.to_numeric(s.where(s.str.fullmatch(r"\d+(\.\d+)?"), None), errors="coerce")
    mask = num.notna()
    if not mask.any():
        return s
    days = num[mask].to_numpy(dtype="float64")
    secs = np.rint(days * 86400.0).astype("int64")
    out = s.copy()
    if part == "time":
        secs = secs % 86400
        text = [f"{x // 3600:02d}:{x // 60 % 60:02d}:{x % 60:02d}" for x in secs.tolist()]
    else:
        when = np.datetime64(epoch, "s") + secs.astype("timedelta64[s]")
        text = np.datetime_as_string(when, unit="s").tolist()
        text = [t.replace("T", " ") for t in text]
        if part == "date":
            text = [t[:10] for t in text]
    out[mask] = text
    return out


def choose_format(
    sample: pd.Series, dayfirst: bool | None, date_format: str | None, label: str
) -> TimeFormat | Ambiguous:
    """The format that reads the most sample values (strict), or the day/month ambiguity."""
    if date_format:
        return TimeFormat(date_format, "given")
    values = pd.Series(pd.unique(sample[sample != ""]))[:SAMPLE]
    if values.empty:
        raise NothingToImport(f"{label}: no time values found")
    found = _best(values, dayfirst)
    if found is None:
        for token in _constant_tokens(values):
            found = _best(_without(values, token), dayfirst)
            if found is not None:
                found = _with_constant(found, token)
                break
    if found is None:
        examples = ", ".join(excerpt(str(v)) for v in values[:3])
        raise FileRefused(
            f"{label}: no known date-time format reads values like {examples}; give the "
            "format with --date-format (or `date_format:` for the device), e.g. "
            "--date-format '%d/%m/%Y %I:%M %p'"
        )
    return found


def _constant_tokens(values: pd.Series) -> list[str]:
    """Words (split at spaces) that every value has, at the same place from its start or its
    end, and that no date or time is made of (no `:`, `/`, `-` or `.`, not all digits)."""
    words = [str(v).split() for v in values]
    shortest = min(len(w) for w in words)
    found: list[str] = []
    for place in [*range(shortest), *range(-1, -shortest - 1, -1)]:
        token = words[0][place]
        if (
            all(w[place] == token for w in words)
            and token not in found
            and not (token.isdigit() or any(ch in token for ch in ":/-."))
        ):
            found.append(token)
    return found


def _without(values: pd.Series, token: str) -> pd.Series:
    """`values` with the word `token` taken out (and the spaces it leaves collapsed)."""
    pattern = rf"(?:^|\s+){re.escape(token)}(?=\s|$)"
    return values.astype(str).str.replace(pattern, "", regex=True).str.strip()


def _with_constant(found: TimeFormat | Ambiguous, token: str) -> TimeFormat | Ambiguous:
    if isinstance(found, Ambiguous):
        return Ambiguous(_with_constant(found.dayfirst, token),  # type: ignore[arg-type]
                         _with_constant(found.monthfirst, token), found.example)  # type: ignore[arg-type]  # fmt: skip
    return TimeFormat(found.format, found.order, token)


def _best(values: pd.Series, dayfirst: bool | None) -> TimeFormat | Ambiguous | None:
    """The candidate format that reads the most values; None when none reads any."""
    scores: list[tuple[int, TimeFormat]] = []
    for fmt, order in CANDIDATES:
        if dayfirst is True and order == "mdy" or dayfirst is False and order == "dmy":
            continue
        ok = int(pd.to_datetime(values, format=fmt, errors="coerce").notna().sum())
        if ok:
            scores.append((ok, TimeFormat(fmt, order)))
    if not scores:
        return None
    best = max(n for n, _ in scores)
    top = [f for n, f in scores if n == best]
    first = top[0]
    if first.order in ("dmy", "mdy"):
        twin = "mdy" if first.order == "dmy" else "dmy"
        swapped = _swap(first.format)
        if any(f.order == twin and f.format == swapped for f in top):
            d, m = (first, TimeFormat(swapped, twin))
            if first.order == "mdy":
                d, m = m, d
            return Ambiguous(d, m, str(values.iloc[0]))
    return first


def _swap(fmt: str) -> str:
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def settle(amb: Ambiguous, columns: Iterable[pd.Series], label: str) -> TimeFormat:
    """Read the whole file's times both ways: the one that reads more wins, a tie is refused."""
    d_ok = m_ok = 0
    for s in columns:
        s = s[s != ""]
        if amb.dayfirst.constant:
            s = _without(s, amb.dayfirst.constant)
        d_ok += int(pd.to_datetime(s, format=amb.dayfirst.format, errors="coerce").notna().sum())
        m_ok += int(pd.to_datetime(s, format=amb.monthfirst.format, errors="coerce").notna().sum())
    if d_ok > m_ok:
        return amb.dayfirst
    if m_ok > d_ok:
        return amb.monthfirst
    raise UndecidedDates(
        f"{label}: cannot tell day from month — every date reads both as day/month and as "
        f"month/day (e.g. {amb.example!r}). Set `dayfirst: true` (03/02/2025 = 3 February), "
        "`dayfirst: false` (= 2 March) or a `date_format` for this device, or pass --dayfirst, "
        "--monthfirst or --date-format."
    )


#: What each directive of a strptime format must be in full: minutes and seconds take two digits
#: (strptime also reads "17:4" as 17:04), days, months and hours one or two.
_WIDTHS = {"%Y": r"\d{4}", "%y": r"\d{2}", "%m": r"\d{1,2}", "%d": r"\d{1,2}", "%H": r"\d{1,2}",
           "%I": r"\d{1,2}", "%M": r"\d{2}", "%S": r"\d{2}", "%p": r"(?i:am|pm)", "%%": "%"}  # fmt: skip


def _shape(fmt: str) -> str | None:
    """A regex a value must match whole to be read with `fmt`; None when `fmt` has a directive
    not listed (a given --date-format with %b, %f…: then strptime alone decides)."""
    out, i = [], 0
    while i < len(fmt):
        if fmt[i] == "%":
            piece = _WIDTHS.get(fmt[i : i + 2])
            if piece is None:
                return None
            out.append(piece)
            i += 2
        else:
            out.append(re.escape(fmt[i]))
            i += 1
    return "".join(out)


def _whole(s: pd.Series, when: np.ndarray, formats: list[str], by_others: np.ndarray) -> None:
    """NaT (in place) for the rows read by a format they match only in part: a time cut short
    ("…17:4", a transfer that stopped) must not become 17:04. Looked at: the rows the first
    format did not read (`by_others`), those shorter than the longest, and every row of a
    small input (a replayed row); a full-length row the first format read is whole."""
    shapes = [_shape(f) for f in formats]
    if None in shapes or not len(s):
        return
    values = s.tolist()
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    suspect = by_others | (lengths < lengths.max()) | (len(values) <= 1000)
    look = np.flatnonzero(~np.isnat(when) & suspect)
    if not len(look):
        return
    whole = re.compile("|".join(f"(?:{p})" for p in shapes if p))
    for i in look.tolist():
        if whole.fullmatch(values[i]) is None:
            when[i] = np.datetime64("NaT")


def parse(s: pd.Series, fmt: TimeFormat) -> np.ndarray:
    """datetime64[s] per row (NaT where the value does not fit the file's format, whole)."""
    if fmt.constant:
        s = _without(s, fmt.constant)
    when = pd.to_datetime(s, format=fmt.format, errors="coerce").to_numpy(dtype="datetime64[s]")
    when = when.copy()  # writable: rows read by another form are filled in below
    missing = np.isnat(when) & (s.to_numpy(dtype=object) != "")
    by_others = missing.copy()
    for alt in fmt.alternatives():
        if not missing.any():
            break
        rows = np.flatnonzero(missing)
        again = pd.to_datetime(s.iloc[rows], format=alt, errors="coerce")
        when[rows] = again.to_numpy(dtype="datetime64[s]")
        missing[rows] = np.isnat(when[rows])
    _whole(s, when, [fmt.format, *fmt.alternatives()], by_others)
    return when
