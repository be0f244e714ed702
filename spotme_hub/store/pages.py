"""Reading records: keyset pages in commit order, served as the stored text."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from .base import StoreBase
from .schema import RECORDS, row_to_dict


@dataclass(slots=True)
class RecordFilter:
    office_id: str | None = None
    employee_id: str | None = None
    device_id: str | None = None
    since: str | None = None  # occurred_at >= (UTC, RFC 3339 Z)
    until: str | None = None  # occurred_at <
    flag: str | None = None


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
        shape = (columns, *sorted(params))
        sql = self._page_sql_cache.get(shape)
        if sql is None:
            style = ":{}" if self.is_sqlite else "%({})s"

            def mark(name: str) -> str:
                return style.format(name)

            conds = [f"seq > {mark('after')}"]
            ops = {"since": "occurred_at >=", "until": "occurred_at <", "flag": "flags LIKE"}
            for name in shape[1:]:
                if name in ("after", "limit"):
                    continue
                conds.append(f"{ops.get(name, name + ' =')} {mark(name)}")
            sql = (
                f"SELECT {columns} FROM records WHERE {' AND '.join(conds)} "
                f"ORDER BY seq LIMIT {mark('limit')}"
            )
            self._page_sql_cache[shape] = sql
        return sql, params

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

    def record_keys(self, after: int, limit: int) -> list[tuple[int, str | None, str]]:
        """(seq, employee_id, occurred_at) of the records after `after`, in commit order: what
        a follower needs to know which officers and times a commit touched."""
        stmt = (
            select(RECORDS.c.seq, RECORDS.c.employee_id, RECORDS.c.occurred_at)
            .where(RECORDS.c.seq > after)
            .order_by(RECORDS.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(int(s), e, o) for s, e, o in conn.execute(stmt)]

    def officer_records(
        self, employee_ids: Sequence[str], since: str, until: str
    ) -> list[dict[str, Any]]:
        """The records of these officers with `since` <= occurred_at < `until` (UTC texts), in
        commit order: one indexed lookup per officer (`ix_records_employee_occurred`)."""
        render = self.shapes.render
        mark = "?" if self.is_sqlite else "%s"
        sql = (
            f"SELECT seq, id, doc, shape FROM records WHERE employee_id = {mark} "
            f"AND occurred_at >= {mark} AND occurred_at < {mark}"
        )
        out: list[tuple[int, str, str, int | None]] = []
        with self.engine.connect() as conn:
            dbapi: Any = conn.connection.dbapi_connection
            cur = dbapi.cursor()
            try:
                for emp in dict.fromkeys(employee_ids):
                    cur.execute(sql, (emp, since, until))
                    out.extend(cur.fetchall())
            finally:
                cur.close()
        out.sort()
        return [row_to_dict(seq, render(shape, doc, rid)) for seq, rid, doc, shape in out]

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
