"""Properties of the day rules over generated punches: arrival order and a duplicate of a punch
from another source never change a day."""

from __future__ import annotations

import datetime as dt
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from spotme_hub.attendance.calendar import Calendar
from spotme_hub.attendance.rules import Punch, compute_day
from spotme_hub.config import Office
from spotme_hub.schedule import CalendarSection, Fact, WbfScheme

OFFICE = Office(id="pjy", state="PJY")
KL = dt.timezone(dt.timedelta(hours=8))
WEDNESDAY = Calendar(CalendarSection()).day(OFFICE, dt.date(2025, 7, 16))
LATER = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SOURCES = [("zk-1", "zkteco"), ("phone", "http"), ("door", "mqtt"), ("usb", "csv")]

punches = st.lists(
    st.tuples(
        st.integers(6 * 3600, 20 * 3600),  # seconds after local midnight
        st.sampled_from(["in", "out", "unknown", "break_out"]),
        st.sampled_from(SOURCES),
    ),
    max_size=8,
).map(
    lambda items: [
        Punch(
            f"r{i:03d}",
            dt.datetime(2025, 7, 16, tzinfo=KL) + dt.timedelta(seconds=s),
            kind,
            device,
            device_kind,
        )  # fmt: skip
        for i, (s, kind, (device, device_kind)) in enumerate(items)
    ]
)
facts = st.lists(
    st.sampled_from([
        Fact.model_validate({"id": "p", "employee": "E", "kind": "pregnancy_early_leave",
                             "date": "2025-07-16"}),
        Fact.model_validate({"id": "t", "employee": "E", "kind": "time_off", "date": "2025-07-16",
                             "start": "15:00", "end": "17:00"}),
        Fact.model_validate({"id": "d", "employee": "E", "kind": "official_duty",
                             "date": "2025-07-16", "end": "17:45"}),
    ]),
    max_size=2, unique_by=lambda f: f.id,
)  # fmt: skip


def compute(ps: list[Punch], fs: list[Fact], granularity: str = "minute"):  # type: ignore[no-untyped-def]
    scheme = WbfScheme(late_granularity=granularity)  # type: ignore[arg-type]
    return compute_day("E", OFFICE, "WBF", scheme, WEDNESDAY, fs, ps, LATER)


@settings(max_examples=200, deadline=None)
@given(punches, facts, st.randoms(use_true_random=False), st.sampled_from(["minute", "second"]))
def test_arrival_order_never_changes_a_day(
    ps: list[Punch], fs: list[Fact], rnd: random.Random, granularity: str
) -> None:
    shuffled = list(ps)
    rnd.shuffle(shuffled)
    assert compute(shuffled, fs, granularity) == compute(ps, fs, granularity)


@settings(max_examples=200, deadline=None)
@given(punches.filter(bool), facts, st.data())
def test_a_duplicate_from_another_source_never_changes_a_day(
    ps: list[Punch], fs: list[Fact], data: st.DataObject
) -> None:
    original = data.draw(st.sampled_from(ps))
    device, kind = data.draw(st.sampled_from([s for s in SOURCES if s[0] != original.device_id]))
    copy_id = data.draw(st.sampled_from(["a000", "z999"]))  # sorts before or after the original
    twin = Punch(copy_id, original.at, original.punch, kind, device)
    before, after = compute(ps, fs), compute([*ps, twin], fs)
    assert after.verdict() == before.verdict()
    assert copy_id in after.punches  # traced, though it changed nothing
