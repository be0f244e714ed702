"""Reading records: keyset pages in commit order, served as the stored text."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import select

from ..record import RECORD_FIELDS
from .counts import RecordCounts, Span, hour_end, hourly
from .schema import HOUR_OF, RECORDS, row_to_dict
from .shapes import SEP

#: Record fields the records table keeps in columns of their own (read without `doc`).
COLUMN_FIELDS = ("seq", "id", "employee_id", "device_id", "office_id", "occurred_at")
#: Stands in for a shape's varying fields while it is read for what it holds (`_picker`).
_MARK = 7_340_000_000_000_000
#: Above every seq.
_NO_SEQ = 1 << 62
#: The index a filter is read over, the most selective of its fields first (ids: the unique one).
_LEADS = {
    "employee_id": "ix_records_hour_employee",
    "device_id": "ix_records_device_seq",
    "office_id": "ix_records_office_seq",
    "flag": "ix_records_flagged",
}


@dataclass(slots=True)
class RecordFilter:
    office_id: str | None = None
    employee_id: str | None = None
    device_id: str | None = None
    since: str | None = None  # occurred_at >= (UTC, RFC 3339 Z)
    until: str | None = None  # occurred_at <
    flag: str | None = None
    ids: tuple[str, ...] | None = None  # only these records (by id: the unique index)


class RecordPages(RecordCounts):
    def records(
        self, after: int = 0, limit: int = 1000, flt: RecordFilter | None = None
    ) -> list[dict[str, Any]]:
        """Records with seq > after, in commit order (dicts, each with its `seq`)."""
        render = self.shapes.render
        rows = self._page(after, limit, flt, "seq, id, doc, shape")
        return [row_to_dict(seq, render(shape, doc, rid)) for seq, rid, doc, shape in rows]

    def last_records(self, limit: int, flt: RecordFilter | None = None) -> list[dict[str, Any]]:
        """The `limit` newest records `flt` selects (by seq), oldest first: read newest first
        over the same index as a page, nothing before them."""
        render = self.shapes.render
        rows = self._page(0, limit, flt, "seq, id, doc, shape", newest=True)
        return [row_to_dict(seq, render(shape, doc, rid)) for seq, rid, doc, shape in rows[::-1]]

    def records_json(
        self,
        after: int = 0,
        limit: int = 1000,
        flt: RecordFilter | None = None,
        with_seq: bool = True,
    ) -> tuple[list[tuple[int, str, bytes]], int]:
        """A page as (seq, id, the record's JSON) in commit order, plus the last seq (or `after`).
        The feed, the event stream and the forwarder serve these bytes as they are: the stored
        text, with `"seq":N` spliced in front when `with_seq`."""
        rows = self._page(after, limit, flt, "seq, id, doc, shape", raw_text=True)
        render = self.shapes.render_bytes
        if with_seq:
            out = [
                (seq, rid.decode(), b'{"seq":%d,%s' % (seq, render(shape, doc, rid)[1:]))
                for seq, rid, doc, shape in rows
            ]
        else:
            out = [(seq, rid.decode(), render(shape, doc, rid)) for seq, rid, doc, shape in rows]
        return out, (out[-1][0] if out else after)

    def _page(
        self,
        after: int,
        limit: int,
        flt: RecordFilter | None,
        columns: str,
        raw_text: bool = False,
        newest: bool = False,
    ) -> list[Any]:
        """Rows of a page through the DB-API cursor; with `raw_text` text columns come back as
        UTF-8 bytes (served as they are: no decoding and encoding again). With `newest`, the
        `limit` newest rows after `after`, newest first. The counters bound the seq range read
        (`seq_bounds`): a page past the last match is answered without reading records."""
        if flt is not None and flt.ids == ():
            return []  # no ids asked for: no record
        bounds = self.seq_bounds(flt)
        if bounds is None or bounds.last <= after:
            return []
        order = "desc" if newest else "asc"
        sql, params = self._select_sql(flt, columns, "LIMIT {limit}", after, bounds, order)
        params["limit"] = limit
        return self._fetch(sql, params, raw_text, self._in_order(flt, bounds))

    def _in_order(self, f: RecordFilter | None, bounds: Span) -> bool:
        """Whether a page of `f` is read in commit order over its index (all but a window whose
        records a late import spread over a wide seq range: that one is read in time order and
        sorted)."""
        timed = f is not None and (f.since or f.until)
        led = f is not None and (f.employee_id or f.device_id or f.office_id or f.flag or f.ids)
        return bool(led) or not timed or bounds.dense

    def _fetch(
        self, sql: str, params: dict[str, Any], raw_text: bool = False, in_order: bool = False
    ) -> list[Any]:
        """Rows of `sql` through the DB-API cursor. `in_order` (PostgreSQL): the page is to be
        read in commit order over its index, so neither a sequential nor a bitmap scan (a bitmap
        scan must sort what it found) is considered: after a bulk import, before autovacuum has
        analysed it, the planner's estimates are stale and took a bitmap scan of a whole day's
        records and a sort for one page (250 ms at 1M)."""
        with self.engine.connect() as conn:
            dbapi: Any = conn.connection.dbapi_connection
            if raw_text and self.is_sqlite:
                dbapi.text_factory = bytes
            cur = dbapi.cursor()
            try:
                if in_order and not self.is_sqlite:  # for this transaction only
                    cur.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
                cur.execute(sql, params)
                rows = list(cur.fetchall())
            finally:
                cur.close()
                if raw_text and self.is_sqlite:
                    dbapi.text_factory = str
        if raw_text and not self.is_sqlite:
            rows = [(seq, rid.encode(), doc.encode(), *rest) for seq, rid, doc, *rest in rows]
        return rows

    def query_plan(self, flt: RecordFilter | None = None, count: bool = False) -> list[str]:
        """How the database reads a page of `flt` (or, with `count`, counts what the counters
        cannot): the lines of SQLite's `EXPLAIN QUERY PLAN` or PostgreSQL's `EXPLAIN`. Empty
        when the counters answer without reading records."""
        bounds = self.seq_bounds(flt)
        if bounds is None:
            return []
        if count:
            sql, params = self._select_sql(flt, "count(*)", "", 0, bounds)
        else:
            sql, params = self._select_sql(flt, "seq, id, doc, shape", "LIMIT {limit}", 0, bounds,
                                           "asc")  # fmt: skip
            params["limit"] = 1000
        prefix = "EXPLAIN QUERY PLAN " if self.is_sqlite else "EXPLAIN "
        in_order = not count and self._in_order(flt, bounds)
        return [str(row[-1]) for row in self._fetch(prefix + sql, params, False, in_order)]

    def seq_bounds(self, f: RecordFilter | None) -> Span | None:
        """The seq range that holds every record `f` selects, from the counters (a device's, an
        office's, the hours of a window), with the fewest records any of them counts; None when
        they say there is none."""
        spans = []
        if f is not None and f.device_id:
            spans.append(self.total("device", f.device_id))
        if f is not None and f.office_id:
            spans.append(self.total("office", f.office_id))
        if f is not None and (f.since or f.until) and hourly(f.since) and hourly(f.until):
            touched = self.hours(f.since, f.until, f.device_id, f.office_id, whole=False)
            spans.append(touched.get("", Span()))
        if not spans:
            spans.append(self.total())
        if not all(span.n for span in spans):
            return None
        lo, hi = max(s.first for s in spans), min(s.last for s in spans)
        return Span(min(s.n for s in spans), lo, hi) if lo <= hi else None

    def _select_sql(
        self,
        f: RecordFilter | None,
        columns: str,
        tail: str,
        after: int,
        bounds: Span,
        order: str = "",
    ) -> tuple[str, dict[str, Any]]:
        """Hand-written SQL over `records` for a filter (cached per filter shape: no per-call
        SQLAlchemy compilation on the hot path), `tail` (with `{limit}` for the limit's mark)
        after its WHERE. Every filter is shaped for an index that also yields commit order: an
        officer's `ix_records_hour_employee` hour by hour (the hours the store holds), a device's
        or an office's `(…, seq)`, a flag's `ix_records_flagged`, a window's or no filter's the
        primary key within the seq bounds."""
        # one lower bound: given two on one column, SQLite's planner may seek by either
        params: dict[str, Any] = {"after": max(after, bounds.first - 1), "hi": bounds.last}
        if f is not None:
            for name, value in (
                ("office_id", f.office_id), ("employee_id", f.employee_id),
                ("device_id", f.device_id), ("since", f.since), ("until", f.until),
            ):  # fmt: skip
                if value:
                    params[name] = value
            if f.employee_id:  # the hours the store holds (the officer index's first column)
                hours = self.hour_keys(f.since, f.until)
                params["hours"] = orjson.dumps(hours).decode() if self.is_sqlite else hours
            if f.flag:
                params["flag"] = f'%"{f.flag}"%'
            if f.ids is not None:  # rid0, rid1, … (`_page` answers an empty tuple itself)
                params.update({f"rid{i}": rid for i, rid in enumerate(f.ids)})
        # a window's records fill their seq range, or (a late import of earlier days) are spread
        # over a wider one: read the range, or the window in the time index
        dense = bounds.dense
        shape = (columns, tail, order + ("" if dense else " sparse"), *sorted(params))
        sql = self._page_sql_cache.get(shape)
        if sql is None:
            style = ":{}" if self.is_sqlite else "%({})s"

            def mark(name: str) -> str:
                return style.format(name)

            lead = next((name for name in _LEADS if name in params), None)
            conds = [f"seq > {mark('after')}", f"seq <= {mark('hi')}"]
            ops = {"since": "occurred_at >=", "until": "occurred_at <", "flag": "flags LIKE"}
            ids = [name for name in shape[3:] if name.startswith("rid")]
            if ids:
                conds.append(f"id IN ({', '.join(mark(n) for n in ids)})")
            if "hours" in params:  # a list (not a subquery): both planners seek hour by hour
                conds.append(
                    f"{HOUR_OF} IN (SELECT value FROM json_each({mark('hours')}))"
                    if self.is_sqlite
                    else f"{HOUR_OF} = ANY({mark('hours')})"
                )
            if "flag" in params:
                conds.append("flags <> '[]'")  # the partial index's own condition
            for name in shape[3:]:
                if name in ("after", "hi", "hours") or name in ids:
                    continue
                cond = f"{ops.get(name, name + ' =')} {mark(name)}"
                if name in ("since", "until") and not self.is_sqlite and (lead or dense and order):
                    # not a condition PostgreSQL can take its time index for: the filter's own
                    # index, or (where a window's records fill their seq range) the primary key,
                    # reads in order (with the stale estimates of a window just imported, it took
                    # both indexes and sorted the whole day: 190-245 ms for a one-day window's
                    # first page at 1M; an officer's window, the time index and a filter)
                    cond = f"({cond}) IS TRUE"
                conds.append(cond)
            table, keys = "records", ["seq"]
            if self.is_sqlite and lead and not ids:  # its own planner, without statistics,
                table += f" INDEXED BY {_LEADS[lead]}"  # takes the bounded rowid range
            elif self.is_sqlite and order and not ids:  # a window's page, or none's: the
                # rowid range where the records fill it (the time index would read the whole
                # window and sort it), else the time index
                timed = "since" in params or "until" in params
                table += (
                    " NOT INDEXED" if dense or not timed else " INDEXED BY ix_records_occurred_at"
                )
            elif lead in ("device_id", "office_id") and not ids and "hours" not in params:
                # keyset on (lead, seq): only its index gives that order, where PostgreSQL's
                # planner would walk the primary key and filter, for any but rare values
                col = mark(str(lead))
                conds = [c for c in conds if not c.startswith(("seq ", f"{lead} ="))]
                conds += [f"({lead}, seq) > ({col}, {mark('after')})",
                          f"({lead}, seq) <= ({col}, {mark('hi')})"]  # fmt: skip
                keys = [str(lead), "seq"]
            by = ""
            if order:
                by = "ORDER BY " + ", ".join(k + (" DESC" if order == "desc" else "") for k in keys)
            sql = f"SELECT {columns} FROM {table} WHERE {' AND '.join(conds)} {by} " + tail.format(
                limit=mark("limit")
            )
            self._page_sql_cache[shape] = sql
        return sql, params

    def record_fields(
        self, names: Sequence[str], flt: RecordFilter | None = None, page: int = 20_000
    ) -> Iterator[tuple[Any, ...]]:
        """The values of the fields `names` (record fields, or `seq`) of the records `flt`
        selects, a tuple a record in commit order: what `iter_records` gives, without rendering
        and decoding whole records. Fields with a column of their own are read from it; the
        others from `doc`, and for a shaped record from the shape's common part or the one
        varying text that holds the field. Quickest with the column fields first."""
        unknown = [n for n in names if n not in COLUMN_FIELDS and n not in RECORD_FIELDS]
        if unknown or not names:
            raise ValueError(f"not record fields: {unknown or names}")
        columns = [n for n in names if n in COLUMN_FIELDS and n != "seq"]
        in_doc = [n for n in names if n not in COLUMN_FIELDS]
        fetched = ["seq", *columns, *(("id", "shape", "doc") if in_doc else ())]
        end = 1 + len(columns)
        # each name's place in (*columns, *the doc fields' values), seq last
        where = [len(columns) + len(in_doc) if n == "seq" else columns.index(n) if n in columns
                 else len(columns) + in_doc.index(n) for n in names]  # fmt: skip
        natural = where == list(range(len(names)))
        pick: Callable[[Sequence[Any]], tuple[Any, ...]] = (
            itemgetter(*where) if len(where) > 1 else lambda row: (row[where[0]],)
        )
        pickers: dict[int | None, Callable[[str, str], tuple[Any, ...]]] = {}
        after = 0
        while True:
            rows = self._page(after, page, flt, ", ".join(fetched))
            if not rows:
                return
            after = rows[-1][0]
            if not in_doc:
                if natural:
                    yield from [row[1:] for row in rows]
                else:
                    yield from [pick((*row[1:], row[0])) for row in rows]
                continue
            for shape, run in itertools.groupby(rows, itemgetter(-2)):  # a page: a shape or two
                picker = pickers.get(shape)
                if picker is None:
                    picker = pickers[shape] = self._picker(shape, in_doc)
                if natural:
                    yield from [row[1:end] + picker(row[-1], row[-3]) for row in run]
                else:
                    yield from [
                        pick((*row[1:end], *picker(row[-1], row[-3]), row[0])) for row in run
                    ]

    def _picker(
        self, shape: int | None, names: Sequence[str]
    ) -> Callable[[str, str], tuple[Any, ...]]:
        """(doc, id) → the values of `names` for the records of a shape (None: a whole doc).
        The shape is rendered once with a number in each hole: a field whose value is such a
        number (or its text, in a quoted hole) is that varying text; one that holds none is
        common to the shape (a list or an object is decoded anew for each record); any other
        (a member of an object field varies) is read from the rendered record."""
        if shape is None:

            def whole(doc: str, _rid: str) -> tuple[Any, ...]:
                obj = orjson.loads(doc)
                return tuple([obj.get(n) for n in names])

            return whole
        fmt = self.shapes._fmt(shape)
        holes = re.findall(r"%[%s]", fmt).count("%s")  # ("%%" is a literal "%")
        sample = orjson.loads(fmt % tuple(str(_MARK + k) for k in range(holes)))
        marks = {_MARK + k for k in range(holes)} | {str(_MARK + k) for k in range(holes)}
        common: list[Any] = []
        varying: list[tuple[int, int, bool]] = []  # (place, index in the doc's texts, quoted)
        for place, name in enumerate(names):
            value = sample.get(name)
            if isinstance(value, int | str) and not isinstance(value, bool) and value in marks:
                varying.append((place, int(value) - _MARK - 1, isinstance(value, str)))
                common.append(None)
            elif _holds_mark(value, marks):
                break
            elif isinstance(value, list | dict):  # decoded anew, as a whole record's would be
                varying.append((place, -1, False))
                common.append(orjson.dumps(value).decode())
            else:
                common.append(value)
        else:
            return _split_picker(common, varying)
        render = self.shapes.render

        def rendered(doc: str, rid: str) -> tuple[Any, ...]:
            obj = orjson.loads(render(shape, doc, rid))
            return tuple([obj.get(n) for n in names])

        return rendered

    def iter_records(
        self, flt: RecordFilter | None = None, page: int = 5000
    ) -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            batch = self.records(after, page, flt)
            if not batch:
                return
            yield from batch
            after = batch[-1]["seq"]

    def record_keys(self, after: int, limit: int) -> list[tuple[int, str, str | None, str]]:
        """(seq, id, employee_id, occurred_at) of the records after `after`, in commit order:
        what a follower needs to know which records, officers and times a commit touched."""
        stmt = (
            select(RECORDS.c.seq, RECORDS.c.id, RECORDS.c.employee_id, RECORDS.c.occurred_at)
            .where(RECORDS.c.seq > after)
            .order_by(RECORDS.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(int(s), i, e, o) for s, i, e, o in conn.execute(stmt)]

    def count_records(self, flt: RecordFilter | None = None) -> int:
        """How many records `flt` selects, never by counting the table: the counters answer the
        store, a device, an office and the whole hours of a window; the partial hours at a
        window's ends and the filters they do not know (officer, flag, ids) are counted over an
        index within the counters' seq bounds."""
        f = flt or RecordFilter()
        if f.ids == ():
            return 0
        plain = f.employee_id is None and f.flag is None and f.ids is None
        if plain and not (f.since or f.until):
            if f.device_id and not f.office_id:
                return self.total("device", f.device_id).n
            if f.office_id and not f.device_id:
                return self.total("office", f.office_id).n
            if not f.device_id:
                return self.total().n
        if plain and hourly(f.since) and hourly(f.until):
            whole = self.hours(f.since, f.until, f.device_id, f.office_id).get("", Span()).n
            return whole + sum(self._counted(part) for part in _partial_hours(f))
        return self._counted(f)

    def count_after(self, seq: int) -> int:
        """How many records have a seq above `seq` (the forwarder's backlog): the hour counters
        wholly after it, and those it falls within counted over the device index from it."""
        total = 0
        for hour, device, office, n, first, last in self.cells_after(seq):
            if first > seq:
                total += n
                continue
            f = RecordFilter(office_id=office, device_id=device, since=hour + ":", until=hour + ";")
            sql, params = self._select_sql(f, "count(*)", "", seq, Span(n, first, last))
            total += int(self._fetch(sql, params)[0][0])
        return total

    def _counted(self, f: RecordFilter) -> int:
        bounds = self.seq_bounds(f)
        if bounds is None:
            return 0
        sql, params = self._select_sql(f, "count(*)", "", 0, bounds)
        return int(self._fetch(sql, params)[0][0])

    def punches_since(self, since_utc: str) -> dict[str, int]:
        """Per-device count of records with occurred_at >= since (for 'punches today'): the hour
        counters, and the hour `since` falls in counted over the primary key."""
        if not hourly(since_utc):
            raise ValueError(f"not a UTC time: {since_utc!r}")
        out = {d: span.n for d, span in self.hours(since_utc, by_device=True).items()}
        part = RecordFilter(since=since_utc, until=hour_end(since_utc))
        bounds = self.seq_bounds(part)
        if bounds is not None:
            sql, params = self._select_sql(part, "device_id, count(*)", "GROUP BY device_id",
                                           0, bounds)  # fmt: skip
            for device, n in self._fetch(sql, params):
                out[device] = out.get(device, 0) + int(n)
        return out

    def max_seq(self) -> int:
        with self.engine.connect() as conn:
            return self._top_seq(conn)

    def get_record(self, record_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(RECORDS.c.seq, RECORDS.c.doc, RECORDS.c.shape).where(
                    RECORDS.c.id == record_id
                )
            ).first()
        return row_to_dict(row[0], self.shapes.render(row[2], row[1], record_id)) if row else None


def _partial_hours(f: RecordFilter) -> list[RecordFilter]:
    """The parts of a window (well-formed bounds) in the hours its ends fall in, each within the
    whole window too: what the hour counters cannot split."""
    if f.since and f.until and f.since[:13] == f.until[:13]:
        return [f]
    parts = []
    if f.since:
        end = hour_end(f.since)
        parts.append(replace(f, until=min(f.until, end) if f.until else end))
    if f.until:
        start = f.until[:13] + ":"
        parts.append(replace(f, since=max(f.since, start) if f.since else start))
    return parts


def _holds_mark(value: Any, marks: set[Any]) -> bool:
    if isinstance(value, dict):
        return any(_holds_mark(v, marks) for v in value.values())
    if isinstance(value, list):
        return any(_holds_mark(v, marks) for v in value)
    return isinstance(value, int | str) and not isinstance(value, bool) and value in marks


def _split_picker(
    common: list[Any], varying: list[tuple[int, int, bool]]
) -> Callable[[str, str], tuple[Any, ...]]:
    """The values of a shape's records from their doc: `common` with, at each varying place,
    the text at its index (quoted: as it is, else decoded; index -1: `common`'s JSON decoded)."""
    loads = orjson.loads
    if not varying:
        fixed = tuple(common)
        return lambda _doc, _rid: fixed
    if len(varying) == 1 and varying[0][1] >= 0:
        ((place, index, quoted),) = varying
        head, tail = tuple(common[:place]), tuple(common[place + 1 :])

        def one(doc: str, _rid: str) -> tuple[Any, ...]:
            text = doc.split(SEP, index + 1)[index]
            return (*head, text if quoted else loads(text), *tail)

        return one
    deepest = max(index for _, index, _ in varying)

    def some(doc: str, _rid: str) -> tuple[Any, ...]:
        out = common.copy()
        texts = doc.split(SEP, deepest + 1) if deepest >= 0 else []
        for place, index, quoted in varying:
            if index < 0:
                out[place] = loads(common[place])
            else:
                out[place] = texts[index] if quoted else loads(texts[index])
        return tuple(out)

    return some
