"""Properties of the day rules over generated punches: arrival order and a duplicate of a punch
from another source never change a day."""

from __future__ import annotations

import datetime as dt
import random

from hypothesis import Phase, given, settings
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


# -- live and from scratch -------------------------------------------------------------------------

LEDGER_DATES = [dt.date(2025, 7, 15), dt.date(2025, 7, 16), dt.date(2025, 7, 17)]
live_punches = st.lists(
    st.tuples(
        st.sampled_from(["S-pjy", "S-kdh", "N1"]),
        st.sampled_from(LEDGER_DATES),
        st.integers(0, 24 * 3600 - 1),  # seconds after local midnight (night shifts cross it)
        st.sampled_from(["in", "out", None]),
        st.sampled_from(["zk-pjy", "zk-kdh", "phone"]),
    ),
    min_size=1,
    max_size=14,
)


# each example runs a store and a ledger: no shrinking (it takes minutes); a failure prints
# the draws that made it
@settings(max_examples=60, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(live_punches, st.data())
def test_a_day_is_the_same_live_and_recomputed_from_scratch(
    items: list[tuple[str, dt.date, int, str | None, str]], data: st.DataObject
) -> None:
    """Punches committed in arbitrary batches, the ledger stepping between them at clock times
    that move forward through the days (so days are stored provisional, then settle): at the end
    every stored day equals the day worked out from scratch from the same records."""
    import tempfile
    from pathlib import Path

    from test_days import settings as day_settings

    from spotme_hub.attendance.book import DayBook
    from spotme_hub.attendance.ledger import DayLedger, days_page
    from spotme_hub.normalize import Normalizer
    from spotme_hub.record import RawPunch, Record
    from spotme_hub.service import config_from_dict, open_store

    with tempfile.TemporaryDirectory() as tmp:
        base = day_settings(
            Path(tmp),
            schemes={"NIGHT": {"kind": "roster", "shifts": {"n": {"start": "22:00", "end": "07:00"}}}},
            employees=[{"id": "N1", "user_ids": ["zk-pjy:9", "phone:9"], "office": "pjy",
                        "scheme": "NIGHT"}],
            facts=[{"id": "t1", "employee": "S-pjy", "kind": "time_off", "date": "2025-07-16",
                    "start": "08:00", "end": "10:00"}],
        )  # fmt: skip
        cfg = config_from_dict(base, base_dir=Path(tmp))
        store = open_store(cfg)
        clock_at = [dt.datetime(2025, 7, 15, 0, 0, tzinfo=dt.UTC)]
        ledger = DayLedger(cfg, store, lambda: clock_at[0])
        normalizer = Normalizer(cfg)
        users = {("S-pjy", "zk-pjy"): "1", ("S-pjy", "phone"): "pjy", ("S-kdh", "zk-kdh"): "1",
                 ("S-kdh", "phone"): "kdh", ("N1", "zk-pjy"): "9", ("N1", "phone"): "9"}  # fmt: skip
        order = data.draw(st.permutations(range(len(items))))
        cuts = sorted(data.draw(st.sets(st.integers(1, len(items)), max_size=4)))
        times = sorted(
            data.draw(
                st.lists(st.integers(0, 4 * 24 * 3600), min_size=len(cuts), max_size=len(cuts))
            )
        )
        start = 0
        for cut, offset in zip([*cuts, len(items)], [*times, 5 * 24 * 3600], strict=True):
            batch = []
            for i in order[start:cut]:
                emp, day, sec, kind, device = items[i]
                user = users.get((emp, device), users[(emp, "phone")])
                device = device if (emp, device) in users else "phone"
                local = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=sec)
                rec = normalizer.normalize(
                    cfg.device(device),
                    RawPunch(device_time=local, user_id=user, punch=kind),
                    now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
                )
                assert isinstance(rec, Record)
                batch.append(rec)
            store.commit(batch)
            start = cut
            clock_at[0] = dt.datetime(2025, 7, 15, tzinfo=dt.UTC) + dt.timedelta(seconds=offset)
            while ledger.step():
                pass
        import orjson

        stored = {(d["employee_id"], d["date"]): d for d in map(orjson.loads, days_page(
            store, 0, 100_000)[0])}  # fmt: skip
        assert stored, "the ledger stored no day"
        book = DayBook(cfg, store)
        kept_dates = {dt.date.fromisoformat(d) for _, d in stored}
        first, last = min(kept_dates), max(kept_dates)
        fresh = {
            (d.employee_id, d.date): d.to_dict() for d in book.days(first, last, now=clock_at[0])
        }
        for key, day in stored.items():
            day.pop("seq")
            assert day == fresh[key], key
        # every date a punch fell on is kept for every officer
        dates = {d for _, d in stored}
        assert {(e.id, d) for e in cfg.employees for d in dates} == set(stored)
        store.close()
