"""Counting records without counting the table: `record_counts` (per UTC hour, device and office)
and `record_totals` (all, per device, per office, per UTC day and hour), each with the first and last
seq of what it counts, moved in the transaction that commits the records.

A count the counters answer whole (the store, a device, an office, whole hours) is read from
them; the partial hours at the ends of a window and filters they do not know (an officer, a flag,
ids) are counted over an index range. The same counters bound the seq range a filtered page has
to read (`seq_bounds`): the last, empty page of a filter is answered without reading records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from .base import StoreBase
from .schema import HOUR_OF, RECORD_COUNTS, RECORD_TOTALS, RECORDS

#: An occurred_at bound the hour counters can split: starts with a whole UTC hour.
_HOUR = re.compile(r"\d{4}-\d\d-\d\dT\d\d", re.ASCII)


@dataclass(frozen=True, slots=True)
class Span:
    """What a set of counters says about some records: how many, their first and last seq."""

    n: int = 0
    first: int = 0
    last: int = 0

    @property
    def dense(self) -> bool:
        """Whether the records fill their seq range (not spread over a wider one, as a late import
        of earlier days leaves a window's)."""
        return self.last - self.first < 4 * self.n


class RecordCounts(StoreBase):
    def _top_seq(self, conn: Connection) -> int:
        """The highest seq stored (under the write lock: where this transaction's records start)."""
        return int(conn.execute(select(func.coalesce(func.max(RECORDS.c.seq), 0))).scalar_one())

    def _count_new(self, conn: Connection, before: int, new: int | None = None) -> None:
        """Add the records committed in this transaction (seq > `before`; `new` of them, when
        known) to the counters: one grouped read of those records, then an upsert a group
        (through the DB-API, SQL written once: this runs in every bulk commit)."""
        mark = "?" if self.is_sqlite else "%s"
        # in seq order with a limit, so both planners walk the primary key from `before` (SQLite
        # scanned the hour-led index whole for the GROUP BY's order, PostgreSQL the table, with
        # the estimates of a table never analysed: an import's commits grew with the store)
        fresh = (
            f"SELECT seq, occurred_at, device_id, office_id FROM records WHERE seq > {mark} "
            f"ORDER BY seq LIMIT {mark}"
        )
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute(
                f"SELECT {HOUR_OF}, device_id, office_id, count(*), min(seq), max(seq) "
                f"FROM ({fresh}) AS fresh GROUP BY 1, 2, 3",
                (before, new if new is not None else -1 if self.is_sqlite else None),
            )
            rows = cur.fetchall()
        finally:
            cur.close()
        if rows:
            self._add_counts(conn, rows)

    def _add_counts(
        self, conn: Connection, rows: list[tuple[str, str, str, int, int, int]]
    ) -> None:
        """(hour, device, office, n, first seq, last seq) groups → both counter tables."""
        totals: dict[tuple[str, str], list[int]] = {}
        for hour, device, office, n, first, last in rows:
            for key in (
                ("all", ""), ("device", device), ("office", office), ("day", hour[:10]),
                ("hour", hour),
            ):  # fmt: skip
                t = totals.get(key)
                if t is None:
                    totals[key] = [n, first, last]
                else:
                    t[0], t[1], t[2] = t[0] + n, min(t[1], first), max(t[2], last)
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.executemany(self._upsert_sql("record_counts", ("hour", "device_id", "office_id")),
                            rows)  # fmt: skip
            cur.executemany(
                self._upsert_sql("record_totals", ("scope", "key")),
                [(*key, *t) for key, t in totals.items()],
            )
        finally:
            cur.close()

    def _upsert_sql(self, table: str, keys: tuple[str, ...]) -> str:
        """Add (n, first_seq, last_seq) to the counter row of `keys`, or make it."""
        sql = self._rows_sql_cache.get((0, (table, *keys)))
        if sql is None:
            mark = "?" if self.is_sqlite else "%s"
            least, greatest = ("min", "max") if self.is_sqlite else ("least", "greatest")
            names = (*keys, "n", "first_seq", "last_seq")
            sql = self._rows_sql_cache[0, (table, *keys)] = (
                f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                f"({', '.join(mark for _ in names)}) ON CONFLICT ({', '.join(keys)}) DO UPDATE "
                f"SET n = {table}.n + excluded.n, "
                f"first_seq = {least}({table}.first_seq, excluded.first_seq), "
                f"last_seq = {greatest}({table}.last_seq, excluded.last_seq)"
            )
        return sql

    def _count_all_once(self, conn: Connection) -> None:
        """The counters of a store that had records before them: one grouped read of the table."""
        conn.execute(RECORD_COUNTS.delete())
        conn.execute(RECORD_TOTALS.delete())
        self._count_new(conn, 0)

    # --- reading --------------------------------------------------------------------------

    def total(self, scope: str = "all", key: str = "") -> Span:
        """The records of the store (`all`), a device, an office or a UTC day (`YYYY-MM-DD`)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(RECORD_TOTALS.c.n, RECORD_TOTALS.c.first_seq, RECORD_TOTALS.c.last_seq)
                .where(RECORD_TOTALS.c.scope == scope, RECORD_TOTALS.c.key == key)
            ).first()  # fmt: skip
        return Span(int(row[0]), int(row[1]), int(row[2])) if row else Span()

    def cells_after(self, seq: int) -> list[tuple[str, str, str, int, int, int]]:
        """The hour counters (hour, device, office, n, first seq, last seq) of records after
        `seq`."""
        c = RECORD_COUNTS.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.hour, c.device_id, c.office_id, c.n, c.first_seq, c.last_seq).where(
                    c.last_seq > seq
                )
            ).all()
        return [(h, d, o, int(n), int(f), int(last)) for h, d, o, n, f, last in rows]

    def hour_keys(self, since: str | None = None, until: str | None = None) -> list[str]:
        """The UTC hours (`YYYY-MM-DDTHH`) the store holds records of, those a window touches."""
        c = RECORD_TOTALS.c
        conds = [c.scope == "hour"]
        if since:
            conds.append(c.key >= since[:13])
        if until:
            conds.append(c.key <= until[:13])
        with self.engine.connect() as conn:
            return [k for (k,) in conn.execute(select(c.key).where(*conds).order_by(c.key))]

    def hours(
        self,
        since: str | None = None,
        until: str | None = None,
        device_id: str | None = None,
        office_id: str | None = None,
        by_device: bool = False,
        whole: bool = True,
    ) -> dict[str, Span]:
        """The hour counters of a window (bounds well-formed: `hourly`), summed (key '') or per
        device: of its whole hours (after `since`'s, before `until`'s), or with `whole` false of
        every hour it touches (a superset of its records, for their seq bounds)."""
        c = RECORD_COUNTS.c
        conds = []
        if since:
            conds.append(c.hour > since[:13] if whole else c.hour >= since[:13])
        if until:
            conds.append(c.hour < until[:13] if whole else c.hour <= until[:13])
        if device_id:
            conds.append(c.device_id == device_id)
        if office_id:
            conds.append(c.office_id == office_id)
        sums = (func.sum(c.n), func.min(c.first_seq), func.max(c.last_seq))
        with self.engine.connect() as conn:
            if by_device:
                rows = conn.execute(
                    select(c.device_id, *sums).where(*conds).group_by(c.device_id)
                ).all()
            else:
                rows = [("", *conn.execute(select(*sums).where(*conds)).one())]  # type: ignore[list-item]
        return {d: Span(int(n), int(f), int(last)) for d, n, f, last in rows if n}


def hourly(value: str | None) -> bool:
    """Whether an occurred_at bound names its UTC hour (`_HOUR`): the counters can split it."""
    return value is None or _HOUR.match(value) is not None


def hour_end(value: str) -> str:
    """Above every occurred_at of `value`'s hour (and below the next hour's): `HH;` (';' follows
    ':' in ASCII)."""
    return value[:13] + ";"
