"""Reading records: keyset pages in commit order, served as the stored text."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import func, select

from ..record import RECORD_FIELDS
from .base import StoreBase
from .schema import RECORDS, row_to_dict
from .shapes import SEP

#: Record fields the records table keeps in columns of their own (read without `doc`).
COLUMN_FIELDS = ("seq", "id", "employee_id", "device_id", "office_id", "occurred_at")
#: Stands in for a shape's varying fields while it is read for what it holds (`_picker`).
_MARK = 7_340_000_000_000_000


@dataclass(slots=True)
class RecordFilter:
    office_id: str | None = None
    employee_id: str | None = None
    device_id: str | None = None
    since: str | None = None  # occurred_at >= (UTC, RFC 3339 Z)
    until: str | None = None  # occurred_at <
    flag: str | None = None
    ids: tuple[str, ...] | None = None  # only these records (by id: the unique index)


class RecordPages(StoreBase):
    def _filtered(self, f: RecordFilter | None) -> list[Any]:
        conds: list[Any] = []
        if f is None:
            return conds
        if f.office_id:
            conds.append(RECORDS.c.office_id == f.office_id)
        if f.employee_id:
            conds.append(RECORDS.c.employee_id == f.employee_id)
        if f.device_id:
            conds.append(RECORDS.c.device_id == f.device_id)
        if f.since:
            conds.append(RECORDS.c.occurred_at >= f.since)
        if f.until:
            conds.append(RECORDS.c.occurred_at < f.until)
        if f.flag:
            conds.append(RECORDS.c.flags.like(f'%"{f.flag}"%'))
        if f.ids is not None:
            conds.append(RECORDS.c.id.in_(f.ids))
        return conds

    def records(
        self, after: int = 0, limit: int = 1000, flt: RecordFilter | None = None
    ) -> list[dict[str, Any]]:
        """Records with seq > after, in commit order (dicts, each with its `seq`)."""
        render = self.shapes.render
        rows = self._page(after, limit, flt, "seq, id, doc, shape")
        return [row_to_dict(seq, render(shape, doc, rid)) for seq, rid, doc, shape in rows]

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
        self, after: int, limit: int, flt: RecordFilter | None, columns: str, raw_text: bool = False
    ) -> list[Any]:
        """Rows of a page through the DB-API cursor; with `raw_text` text columns come back as
        UTF-8 bytes (served as they are: no decoding and encoding again)."""
        if flt is not None and flt.ids == ():
            return []  # no ids asked for: no record
        sql, params = self._page_sql(after, limit, flt, columns)
        with self.engine.connect() as conn:
            dbapi: Any = conn.connection.dbapi_connection
            if raw_text and self.is_sqlite:
                dbapi.text_factory = bytes
            cur = dbapi.cursor()
            try:
                cur.execute(sql, params)
                rows = list(cur.fetchall())
            finally:
                cur.close()
                if raw_text and self.is_sqlite:
                    dbapi.text_factory = str
        if raw_text and not self.is_sqlite:
            rows = [(seq, rid.encode(), doc.encode(), *rest) for seq, rid, doc, *rest in rows]
        return rows

    def _page_sql(
        self, after: int, limit: int, f: RecordFilter | None, columns: str
    ) -> tuple[str, dict[str, Any]]:
        """Hand-written keyset SQL for a page (cached per filter shape: no per-call SQLAlchemy
        compilation on the hot path)."""
        params: dict[str, Any] = {"after": after, "limit": limit}
        if f is not None:
            for name, value in (
                ("office_id", f.office_id), ("employee_id", f.employee_id),
                ("device_id", f.device_id), ("since", f.since), ("until", f.until),
            ):  # fmt: skip
                if value:
                    params[name] = value
            if f.flag:
                params["flag"] = f'%"{f.flag}"%'
            if f.ids is not None:  # rid0, rid1, … (`_page` answers an empty tuple itself)
                params.update({f"rid{i}": rid for i, rid in enumerate(f.ids)})
        shape = (columns, *sorted(params))
        sql = self._page_sql_cache.get(shape)
        if sql is None:
            style = ":{}" if self.is_sqlite else "%({})s"

            def mark(name: str) -> str:
                return style.format(name)

            conds = [f"seq > {mark('after')}"]
            ops = {"since": "occurred_at >=", "until": "occurred_at <", "flag": "flags LIKE"}
            ids = [name for name in shape[1:] if name.startswith("rid")]
            if ids:
                conds.append(f"id IN ({', '.join(mark(n) for n in ids)})")
            for name in shape[1:]:
                if name in ("after", "limit") or name in ids:
                    continue
                conds.append(f"{ops.get(name, name + ' =')} {mark(name)}")
            sql = (
                f"SELECT {columns} FROM records WHERE {' AND '.join(conds)} "
                f"ORDER BY seq LIMIT {mark('limit')}"
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
        stmt = select(func.count()).select_from(RECORDS).where(*self._filtered(flt))
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def max_seq(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(RECORDS.c.seq), 0))).scalar_one())

    def get_record(self, record_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(RECORDS.c.seq, RECORDS.c.doc, RECORDS.c.shape).where(
                    RECORDS.c.id == record_id
                )
            ).first()
        return row_to_dict(row[0], self.shapes.render(row[2], row[1], record_id)) if row else None

    def punches_since(self, since_utc: str) -> dict[str, int]:
        """Per-device count of records with occurred_at >= since (for 'punches today')."""
        stmt = (
            select(RECORDS.c.device_id, func.count())
            .where(RECORDS.c.occurred_at >= since_utc)
            .group_by(RECORDS.c.device_id)
        )
        with self.engine.connect() as conn:
            return {d: int(n) for d, n in conn.execute(stmt)}


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
