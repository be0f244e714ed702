"""Fixed-width texts for many values at once, made with numpy integer arithmetic.

A column of texts of one width is built as an (n, width) array of code points and viewed as
numpy's `U<width>` strings, which `tolist()` hands over as Python str: no per-value formatting
and no bytes-to-str pass. For 1M date-times this is about twice as fast as
`np.datetime_as_string(...).tolist()`.
"""

from __future__ import annotations

import numpy as np

#: "00" … "99" as code points
_PAIRS = np.array([[ord("0") + i // 10, ord("0") + i % 10] for i in range(100)], dtype=np.uint32)


def code_points_to_str(codes: np.ndarray) -> list[str]:
    """An (n, width) array of code points (any integer dtype) → n str of that width."""
    n, width = codes.shape
    points = np.ascontiguousarray(codes, dtype=np.uint32)
    out: list[str] = points.view(f"U{width}").reshape(n).tolist()
    return out


def iso_seconds(seconds: np.ndarray, suffix: str = "") -> list[str]:
    """Seconds since 1970 (naive: the wall clock as if UTC) → `YYYY-MM-DDTHH:MM:SS` + suffix,
    the text `np.datetime_as_string(..., unit="s")` gives (which is used outside years 0-9999)."""
    secs = np.asarray(seconds, dtype=np.int64)
    days, rem = np.divmod(secs, 86400)
    # the proleptic Gregorian date of a day number (H. Hinnant's days_from_civil, inverted)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    if len(year) and (year.min() < 0 or year.max() > 9999):
        texts = np.datetime_as_string(secs.astype("datetime64[s]"), unit="s").tolist()
        return [t + suffix for t in texts] if suffix else texts
    hour, rest = np.divmod(rem, 3600)
    minute, second = np.divmod(rest, 60)
    out = np.empty((len(secs), 19 + len(suffix)), dtype=np.uint32)
    for start, value in (
        (0, year // 100), (2, year % 100), (5, month), (8, day), (11, hour), (14, minute),
        (17, second),
    ):  # fmt: skip
        out[:, start : start + 2] = _PAIRS[value]
    out[:, 4] = out[:, 7] = ord("-")
    out[:, 10] = ord("T")
    out[:, 13] = out[:, 16] = ord(":")
    for k, char in enumerate(suffix):
        out[:, 19 + k] = ord(char)
    return code_points_to_str(out)
