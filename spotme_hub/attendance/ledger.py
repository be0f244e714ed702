"""The stored days: kept up to date as records commit, facts change and days settle.

`DayLedger.step()` does one pass, each piece in its own transaction:
1. the facts file, if it changed: the days of the facts that came, changed or went are queued;
2. today: its date is *opened* (a day for every configured officer, punches or not — that is
   how `absent`, `off` and `leave` appear, and how the dashboard knows who is not yet in);
3. new records (after the ledger's cursor on `records.seq`, whatever wrote them: a live punch, a
   terminal's backlog, an import of last month, a replayed quarantine item): the days of their
   officers and dates are worked out again; a date not opened before is opened for everyone;
4. queued days (`attendance_dirty`: facts pushed or withdrawn, the rules changed);
5. provisional days whose clock-out window has closed (`settles_at`), so `absent` is decided.

A day is written only when it changed, and then takes the next number of the days' own change
sequence (`attendance_days.seq`): `GET /api/v1/days?after=N` follows changes as the feed follows
records. The cursor moves in the same transaction as the days it produced, so a crash repeats
work, never skips it. `rebuild` works out a range from scratch (`spotme-hub days rebuild`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, delete, func, select

from ..clock import DEFAULT_TZ, now_z_ms, parse_utc, utc_z, zone
from ..config import HubConfig
from ..schedule import FIRST_DAY, LAST_DAY, RosterScheme
from ..store import Store
from .book import DayBook
from .calendar import HOLIDAYS_VERSION
from .facts import FactBook, mark_dirty
from .rules import Day
from .tables import DAYS, DIRTY, OPEN_DATES

if TYPE_CHECKING:
    from ..pipeline.runtime import Hub

log = logging.getLogger("spotme_hub.attendance")

SCOPE = "attendance"
#: records read per pass of the cursor
RECORDS_PER_PASS = 50_000
#: days written per transaction (a rebuild of a month for 20,000 officers is many)
DAYS_PER_WRITE = 20_000
#: the longest gap of dates (a hub stopped for a while) opened when it runs again
GAP_DAYS = 62
#: officers of an `all` queue entry worked out per pass, a date at a time
DATES_PER_PASS = 1


Wanted = dict[str, set[dt.date]]


def day_json(day: Day) -> str:
    """The day's JSON text (`Day.to_dict`'s keys in field order: orjson reads the dataclass)."""
    return orjson.dumps(day).decode()


def local_today(cfg: HubConfig, now: dt.datetime) -> set[dt.date]:
    """Today in each office's zone (one date in Malaysia, where every zone is UTC+8)."""
    zones = {o.timezone for o in cfg.offices} or {DEFAULT_TZ}
    return {now.astimezone(zone(z)).date() for z in zones}


def today(cfg: HubConfig, now: dt.datetime | None = None) -> dt.date:
    """The date the dashboard and the demo call today (the latest of `local_today`)."""
    return max(local_today(cfg, now or dt.datetime.now(dt.UTC)))


def rules_fingerprint(cfg: HubConfig) -> str:
    """What the days of every officer depend on besides punches and facts: the officers' homes
    and schemes, the offices, the calendar, the schemes, the merge window, the holidays package."""
    parts = {
        "employees": [(e.id, e.office, e.scheme) for e in cfg.employees],
        "offices": [(o.id, o.state, o.timezone) for o in cfg.offices],
        "calendar": cfg.calendar.model_dump(mode="json"),
        "schemes": {k: v.model_dump(mode="json") for k, v in sorted(cfg.schemes.items())},
        "merge_window_s": cfg.attendance.merge_window_s,
        "holidays": HOLIDAYS_VERSION,
    }
    return hashlib.sha1(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


class DayLedger:
    """One per hub: the stored days of the configuration's officers."""

    def __init__(
        self,
        cfg: HubConfig,
        store: Store,
        clock: Callable[[], dt.datetime] | None = None,
    ):
        self.cfg = cfg
        self.store = store
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.factbook = FactBook(cfg, store)
        self.employees = {e.id: e for e in cfg.employees}
        self.wake = asyncio.Event()
        self._checked_rules = False
        self._book: DayBook | None = None

    # -- wiring ------------------------------------------------------------------------------
    def notify(self, *_: Any) -> None:
        """A commit listener: new records → look now instead of at the next poll."""
        self.wake.set()

    def book(self) -> DayBook:
        """The rules with today's facts (read once a pass: `step` drops it)."""
        if self._book is None:
            self._book = DayBook(self.cfg, self.store, self.factbook.facts())
        return self._book

    def cursor(self) -> int:
        return int(self.store.get_checkpoint(SCOPE, "cursor", 0))

    # -- one pass ----------------------------------------------------------------------------
    def step(self) -> int:
        """One pass (see the module's text); returns how many days changed."""
        now = self.clock()
        changed = 0
        self._book = None
        if not self._checked_rules:
            self._check_rules()
            self._checked_rules = True
        moved = self.factbook.reload_file()
        if moved:
            with self.store.write() as conn:
                mark_dirty(conn, moved, "facts file changed")
        changed += self._open(self._due_dates(now), now)
        changed += self._follow(now)
        changed += self._dirty(now)
        changed += self._settle(now)
        return changed

    def _today(self, now: dt.datetime) -> set[dt.date]:
        return local_today(self.cfg, now)

    def _due_dates(self, now: dt.datetime) -> set[dt.date]:
        """Dates to open now: today, and the dates since the last one opened (a hub that was
        stopped over a weekend still keeps the days it missed), at most `GAP_DAYS` back."""
        today = self._today(now)
        with self.store.engine.connect() as conn:
            latest = conn.execute(select(func.max(OPEN_DATES.c.date))).scalar()
        due = set(today)
        if latest is not None:
            d = max(dt.date.fromisoformat(latest), min(today) - dt.timedelta(days=GAP_DAYS))
            while d < min(today):
                d += dt.timedelta(days=1)
                due.add(d)
        return due - self._opened(due)

    def _opened(self, dates: Iterable[dt.date] | None = None) -> set[dt.date]:
        stmt = select(OPEN_DATES.c.date)
        if dates is not None:
            wanted = sorted(d.isoformat() for d in dates)
            if not wanted:
                return set()
            stmt = stmt.where(OPEN_DATES.c.date.in_(wanted))
        with self.store.engine.connect() as conn:
            return {dt.date.fromisoformat(d) for d in conn.execute(stmt).scalars()}

    def _check_rules(self) -> None:
        """The rules changed since the days were stored (a scheme, the calendar, an officer's
        home, the holidays package): queue every opened date to be worked out again."""
        fingerprint = rules_fingerprint(self.cfg)
        stored = self.store.get_checkpoint(SCOPE, "rules")
        if stored == fingerprint:
            return
        with self.store.write() as conn:
            first, last = conn.execute(
                select(func.min(OPEN_DATES.c.date), func.max(OPEN_DATES.c.date))
            ).one()
            if first is not None and stored is not None:
                log.info("attendance rules changed: days from %s to %s are worked out again",
                         first, last)  # fmt: skip
                conn.execute(
                    DIRTY.insert().values(
                        employee_id=None,
                        first=first,
                        last=last,
                        reason="rules changed",
                        created_at=now_z_ms(),
                    )  # fmt: skip
                )
            self.store.put_checkpoint(conn, SCOPE, "rules", fingerprint)

    def _open(self, dates: set[dt.date], now: dt.datetime) -> int:
        """Days for every officer on these dates (not opened before)."""
        if not dates or not self.employees:
            return 0
        changed = 0
        for d in sorted(dates):
            wanted = {e: {d} for e in self.employees}
            changed += self._write(self._recompute(wanted, (), now), opened=[d])
        return changed

    def _follow(self, now: dt.datetime) -> int:
        """The days of the records committed since the cursor."""
        changed = 0
        while True:
            after = self.cursor()
            keys = self.store.record_keys(after, RECORDS_PER_PASS)
            if not keys:
                return changed
            wanted: Wanted = defaultdict(set)
            fresh: list[str] = []
            for _, rid, emp, occurred in keys:
                if emp is None or emp not in self.employees:
                    continue
                wanted[emp].update(self._dates_of(emp, occurred))
                fresh.append(rid)
            last = keys[-1][0]
            touched = {d for ds in wanted.values() for d in ds if d <= max(self._today(now))}
            new_dates = touched - self._opened(touched)
            for d in new_dates:  # a date seen for the first time: everyone's day
                for emp in self.employees:
                    wanted[emp].add(d)
            changed += self._write(
                self._recompute(wanted, fresh, now), opened=sorted(new_dates), cursor=last
            )

    def _recompute(
        self, wanted: Mapping[str, set[dt.date]], fresh: Iterable[str], now: dt.datetime
    ) -> Iterator[Day]:
        """These days again, from the records they used before (their stored `punches`) and
        the records just committed (`fresh`): a punch's working date depends only on its time
        and the officer's scheme, so no other record can belong to them."""
        ids = [*self._stored_punches(wanted), *fresh]
        return self.book().days_of(wanted, ids, now)

    def _stored_punches(self, wanted: Mapping[str, set[dt.date]]) -> list[str]:
        """The record ids the stored days of `wanted` used."""
        by_date: dict[dt.date, list[str]] = defaultdict(list)
        for emp, dates in wanted.items():
            for d in dates:
                by_date[d].append(emp)
        out: list[str] = []
        with self.store.engine.connect() as conn:
            for d, emps in by_date.items():
                stmt = select(DAYS.c.employee_id, DAYS.c.doc).where(DAYS.c.date == d.isoformat())
                if len(emps) <= 500:  # else the whole date (one index range) and keep theirs
                    stmt = stmt.where(DAYS.c.employee_id.in_(emps))
                mine = set(emps)
                for emp, doc in conn.execute(stmt):
                    if emp in mine:
                        out.extend(orjson.loads(doc)["punches"])
        return out

    def _dates_of(self, employee_id: str, occurred_at: str) -> set[dt.date]:
        """The working dates a punch at `occurred_at` may belong to: its local date, and under a
        roster the day before (the morning half of a night shift)."""
        emp = self.employees[employee_id]
        d = parse_utc(occurred_at).astimezone(zone(self.book().home(emp).timezone)).date()
        dates = (
            {d - dt.timedelta(days=1), d}
            if isinstance(self.cfg.schemes[emp.scheme], RosterScheme)
            else {d}
        )
        # a clock set to 1900 or 2999 makes a record (flagged), not a day
        return {x for x in dates if FIRST_DAY <= x <= LAST_DAY}

    def _dirty(self, now: dt.datetime) -> int:
        """Work out the queued days again: those of one officer's range at once, those of
        everyone a date at a time (newest first)."""
        changed = 0
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(DIRTY).order_by(DIRTY.c.did).limit(100)).all()
        if not rows:
            return 0
        # facts read after their queue entries (a fact and its entry commit together)
        self._book = None
        opened = sorted(self._opened())
        today = max(self._today(now))
        for row in rows:
            first = dt.date.fromisoformat(row.first)
            last = min(dt.date.fromisoformat(row.last), today)
            if row.employee_id is not None:
                changed += self._redo_officer(row.did, row.employee_id, first, last, opened, now)
            else:
                changed += self._redo_everyone(row.did, first, last, opened, now)
        return changed

    def _redo_officer(
        self, did: int, emp: str, first: dt.date, last: dt.date, opened: list[dt.date],
        now: dt.datetime,
    ) -> int:  # fmt: skip
        """One officer's queued range: the opened dates and any day of theirs stored in it."""
        dates = {d for d in opened if first <= d <= last} | self._stored_dates(emp, first, last)
        wanted = {emp: dates} if emp in self.employees else {}
        return self._write(self._recompute(wanted, (), now), done=[did])

    def _redo_everyone(
        self, did: int, first: dt.date, last: dt.date, opened: list[dt.date], now: dt.datetime
    ) -> int:
        """Everyone's queued range, the newest `DATES_PER_PASS` opened dates of it per pass (the
        entry shrinks until it is done)."""
        dates = [d for d in opened if first <= d <= last]
        chunk, rest = dates[-DATES_PER_PASS:], dates[:-DATES_PER_PASS]
        # the rules changed: a punch may now belong to another date (a new scheme), so these
        # days come from their dates' records, not from what the stored days used
        days = self.book().days(chunk[0], chunk[-1], now=now) if chunk else iter(())
        return self._write(
            (d for d in days if dt.date.fromisoformat(d.date) in chunk),
            done=[] if rest else [did],
            shrink=(did, rest[-1]) if rest else None,
        )

    def _stored_dates(self, employee_id: str, first: dt.date, last: dt.date) -> set[dt.date]:
        with self.store.engine.connect() as conn:
            dates = conn.execute(
                select(DAYS.c.date).where(
                    DAYS.c.employee_id == employee_id,
                    DAYS.c.date >= first.isoformat(),
                    DAYS.c.date <= last.isoformat(),
                )
            ).scalars()
            return {dt.date.fromisoformat(d) for d in dates}

    def _settle(self, now: dt.datetime) -> int:
        """Provisional days whose clock-out window has closed."""
        with self.store.engine.connect() as conn:
            due = conn.execute(
                select(DAYS.c.employee_id, DAYS.c.date)
                .where(DAYS.c.settles_at.is_not(None), DAYS.c.settles_at <= utc_z(now))
                .limit(DAYS_PER_WRITE)
            ).all()
        wanted: Wanted = defaultdict(set)
        for emp, d in due:
            wanted[emp].add(dt.date.fromisoformat(d))
        return self._write(self._recompute(wanted, (), now)) if wanted else 0

    # -- from scratch ------------------------------------------------------------------------
    def rebuild(self, first: dt.date, last: dt.date) -> int:
        """Work out every officer's days of `first`..`last` from the stored records, and keep
        those dates from now on; returns how many days changed."""
        now = self.clock()
        dates = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        return self._write(self.book().days(first, last, now=now), opened=dates)

    # -- writing -----------------------------------------------------------------------------
    def _write(
        self,
        days: Iterable[Day],
        opened: Iterable[dt.date] = (),
        cursor: int | None = None,
        done: Iterable[int] = (),
        shrink: tuple[int, dt.date] | None = None,
    ) -> int:
        """Store the days that changed, each with the next change number, in transactions of
        `DAYS_PER_WRITE`; the last one also marks dates opened, moves the cursor and clears
        queue entries."""
        changed = 0
        batch: list[Day] = []
        for day in days:
            batch.append(day)
            if len(batch) >= DAYS_PER_WRITE:
                with self.store.write() as conn:
                    changed += self._upsert(conn, batch)
                batch = []
        with self.store.write() as conn:
            changed += self._upsert(conn, batch)
            stamp = now_z_ms()
            new = [{"date": d.isoformat(), "opened_at": stamp} for d in opened]
            if new:
                stmt = self.store.insert(OPEN_DATES).values(new).on_conflict_do_nothing()
                conn.execute(stmt)
            if cursor is not None:
                self.store.put_checkpoint(conn, SCOPE, "cursor", cursor, stamp)
            done = list(done)
            if done:
                conn.execute(delete(DIRTY).where(DIRTY.c.did.in_(done)))
            if shrink is not None:
                conn.execute(
                    DIRTY.update()
                    .where(DIRTY.c.did == shrink[0])
                    .values(last=shrink[1].isoformat())
                )
        return changed

    def _upsert(self, conn: Connection, days: list[Day]) -> int:
        if not days:
            return 0
        texts = {(d.employee_id, d.date): (d, day_json(d)) for d in days}
        stored = self._stored_docs(conn, texts)
        fresh = [(d, text) for key, (d, text) in texts.items() if stored.get(key) != text]
        if not fresh:
            return 0
        seq = int(conn.execute(select(func.coalesce(func.max(DAYS.c.seq), 0))).scalar_one())
        stamp = now_z_ms()
        rows = [
            (d.employee_id, d.date, d.office_id, d.status, seq + i,
             utc_z(dt.datetime.fromisoformat(d.settles_at)) if d.settles_at else None, text,
             stamp)
            for i, (d, text) in enumerate(fresh, start=1)
        ]  # fmt: skip
        conn.exec_driver_sql(self._upsert_sql(), rows)
        return len(fresh)

    def _upsert_sql(self) -> str:
        """The days' upsert, by hand: one DB-API executemany (no per-row SQLAlchemy work)."""
        mark = "?" if self.store.is_sqlite else "%s"
        columns = ("employee_id", "date", "office_id", "status", "seq", "settles_at", "doc",
                   "updated_at")  # fmt: skip
        kept = ", ".join(f"{c} = excluded.{c}" for c in columns[2:])
        return (
            f"INSERT INTO attendance_days ({', '.join(columns)}) "
            f"VALUES ({', '.join([mark] * len(columns))}) "
            f"ON CONFLICT (employee_id, date) DO UPDATE SET {kept}"
        )

    def _stored_docs(
        self, conn: Connection, keys: Mapping[tuple[str, str], object]
    ) -> dict[tuple[str, str], str]:
        """The stored JSON of these days (to write only those that changed)."""
        by_date: dict[str, list[str]] = defaultdict(list)
        for emp, d in keys:
            by_date[d].append(emp)
        mark = "?" if self.store.is_sqlite else "%s"
        out: dict[tuple[str, str], str] = {}
        for d, emps in by_date.items():
            for start in range(0, len(emps), 500):
                part = emps[start : start + 500]
                sql = (
                    f"SELECT employee_id, doc FROM attendance_days WHERE date = {mark} "
                    f"AND employee_id IN ({', '.join([mark] * len(part))})"
                )
                rows = conn.exec_driver_sql(sql, (d, *part))
                out.update({(e, d): doc for e, doc in rows})
        return out


async def run_ledger(hub: Hub, stop: asyncio.Event) -> None:
    """The service `spotme-hub run` starts when officers are configured: a pass whenever records
    commit, else every `attendance.poll_s`. The first pass (catching up on the dates the hub was
    stopped; the calendar's holiday tables load with it) waits until the devices run, so it does
    not hold up the hub's start."""
    await hub.started.wait()
    ledger = DayLedger(hub.cfg, hub.store)
    hub.commit_listeners.append(ledger.notify)
    poll = hub.cfg.attendance.poll_s
    while not stop.is_set():
        ledger.wake.clear()
        try:
            if await asyncio.to_thread(ledger.step):
                continue  # more may be waiting (a long backlog, a queued rebuild)
        except Exception:  # a store hiccup: log, wait, go on (the cursor has not moved)
            log.exception("attendance days: pass failed")
        with contextlib.suppress(TimeoutError):
            waiter = asyncio.ensure_future(ledger.wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, timeout=poll, return_when="FIRST_COMPLETED")
            waiter.cancel()
            stopper.cancel()


# -- reading the stored days ---------------------------------------------------------------------


def days_page(
    store: Store,
    after: int,
    limit: int,
    first: str | None = None,
    last: str | None = None,
    office: str | None = None,
    employee: str | None = None,
    status: str | None = None,
) -> tuple[list[bytes], int]:
    """Stored days changed after `after`, in change order, as JSON texts with their `seq`; and the
    last seq (or `after`): the cursor the core follows."""
    stmt = select(DAYS.c.seq, DAYS.c.doc).where(DAYS.c.seq > after)
    conds = [
        DAYS.c.date >= first if first else None,
        DAYS.c.date <= last if last else None,
        DAYS.c.office_id == office if office else None,
        DAYS.c.employee_id == employee if employee else None,
        DAYS.c.status == status if status else None,
    ]
    stmt = stmt.where(*(c for c in conds if c is not None))
    with store.engine.connect() as conn:
        rows = conn.execute(stmt.order_by(DAYS.c.seq).limit(limit)).all()
    texts = [with_seq(seq, doc) for seq, doc in rows]
    return texts, (rows[-1][0] if rows else after)


def with_seq(seq: int, doc: str) -> bytes:
    """A stored day's JSON with its change number in front."""
    return b'{"seq":%d,%s' % (seq, doc.encode()[1:])


def outbox_rows(store: Store, after: int, limit: int) -> list[tuple[int, str, bytes]]:
    """The days changed after `after` as the forwarder sends them: (seq, "EMPLOYEE/DATE", the
    day's JSON with its `seq`)."""
    stmt = (
        select(DAYS.c.seq, DAYS.c.employee_id, DAYS.c.date, DAYS.c.doc)
        .where(DAYS.c.seq > after)
        .order_by(DAYS.c.seq)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [(int(seq), f"{emp}/{date}", with_seq(seq, doc)) for seq, emp, date, doc in rows]


def stored_day(store: Store, employee: str, date: dt.date) -> dict[str, Any] | None:
    with store.engine.connect() as conn:
        row = conn.execute(
            select(DAYS.c.seq, DAYS.c.doc).where(
                DAYS.c.employee_id == employee, DAYS.c.date == date.isoformat()
            )
        ).first()
    if row is None:
        return None
    return {"seq": int(row[0]), **orjson.loads(row[1])}


def today_summary(
    cfg: HubConfig, store: Store, date: dt.date, office: str | None
) -> list[dict[str, Any]]:
    """Per office, what the dashboard's Today panel shows: officers, present, late, not yet in,
    on BDR, on leave, absent, off."""
    stmt = select(DAYS.c.office_id, DAYS.c.doc).where(DAYS.c.date == date.isoformat())
    if office is not None:
        stmt = stmt.where(DAYS.c.office_id == office)
    counts: dict[str, dict[str, int]] = {}
    with store.engine.connect() as conn:
        for office_id, doc in conn.execute(stmt):
            day = orjson.loads(doc)
            c = counts.setdefault(office_id, dict.fromkeys(SUMMARY_KEYS, 0))
            c["officers"] += 1
            tags = day["tags"]
            if "bdr" in tags:
                c["bdr"] += 1
            if day["status"] in ("off", "leave", "absent"):
                c[day["status"]] += 1
            elif day["status"] == "complete" or day["first_in"] or day["last_out"]:
                c["present"] += 1
                c["late"] += bool(day["late"])
            else:
                c["not_yet_in"] += 1
    names = {o.id: o.name for o in cfg.offices}
    return [{"office_id": oid, "name": names.get(oid), **c} for oid, c in sorted(counts.items())]


SUMMARY_KEYS = ("officers", "present", "late", "not_yet_in", "bdr", "leave", "absent", "off")
