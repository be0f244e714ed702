"""Writing records: the live path's idempotent commit and the bulk path of file imports, each in
one transaction with the quarantine, the checkpoints and the record counters (`counts.py`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection

from ..clock import now_z_ms
from ..record import Record, Rejection, plain_strings
from .checkpoints import CheckpointStore
from .counts import RecordCounts
from .quarantine import QuarantineStore
from .schema import (
    BULK_COLUMNS,
    BULK_INSERT_COLUMNS,
    INSERT_COLUMNS,
    QUARANTINE,
    record_to_tuple,
)
from .shapes import Columns, Shapes, layout, lengths, shape_of, varying_texts


@dataclass(slots=True)
class CommitResult:
    new: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)


@dataclass(slots=True)
class BulkResult:
    new: int = 0
    duplicate: int = 0
    quarantined: list[int] = field(default_factory=list)


def _has_rows(parts: Sequence[Columns]) -> bool:
    return any(n for part in parts for n in lengths(part))


def _bulk_values(
    columns: Columns,
    fields: list[tuple[str, tuple[str, ...] | None]],
    consts: Mapping[str, Any],
    now: str,
    seen: list[int],
    shape: int,
) -> list[Any]:
    """One slice of `bulk_insert` → its rows' BULK_INSERT_COLUMNS values, row after row in one
    flat list (each column set in with one slice assignment), for records of one shape whose
    varying `fields` are the slice's columns; adds the slice's length to `seen[0]`."""
    unknown = set(columns) - set(BULK_COLUMNS)
    if unknown:
        raise ValueError(f"not record columns: {sorted(unknown)}")
    sizes = lengths(columns)
    if len(sizes) > 1:
        raise ValueError(f"columns of different lengths: {sorted(sizes)}")
    n = sizes.pop() if sizes else 0
    if n and "id" not in columns:
        raise ValueError("bulk_insert needs an id column")
    if n and layout(columns) != fields:
        raise ValueError("the slices of one bulk_insert must have the same columns")
    ids = columns.get("id")
    if n and (isinstance(ids, Mapping) or not plain_strings(ids or ())):  # quoted in the shape
        raise ValueError("record ids must be printable ASCII text without quotes")
    seen[0] += n
    width = len(BULK_INSERT_COLUMNS)
    flat: list[Any] = [None] * (n * width)
    for k, name in enumerate(INSERT_COLUMNS[:6]):
        col = columns.get(name)
        if col is not None and not isinstance(col, Mapping):
            flat[k::width] = col
        else:
            flat[k::width] = [consts.get(name, "[]" if name == "flags" else None)] * n
    flat[6::width] = [now] * n
    flat[7::width] = list(varying_texts(columns, n))
    flat[8::width] = [shape] * n
    return flat


#: Rows per statement on the bulk path. One statement per row costs more than the row's own
#: B-tree work: the driver's per-execution overhead, and on SQLite the AUTOINCREMENT bookkeeping
#: that every statement reads and writes back. 100 rows of 9 values stay under the 999 bound
#: parameters of older SQLite builds. A 1M-row import into SQLite measured 21 % faster.
ROWS_PER_INSERT = 100


def _blocks(slices: Iterable[list[Any]], size: int, tail: list[Any]) -> Iterator[tuple[Any, ...]]:
    """Flat value lists → parameter tuples of `size` values each (made as the driver consumes
    them); the last values, fewer than `size`, are left in `tail`."""
    carry: list[Any] = []
    for flat in slices:
        if carry:
            flat = carry + flat
        full = len(flat) - len(flat) % size
        for i in range(0, full, size):
            yield tuple(flat[i : i + size])
        carry = flat[full:]
    tail.extend(carry)


class RecordWrites(RecordCounts, QuarantineStore, CheckpointStore):
    def commit(
        self,
        records: Sequence[Record] = (),
        rejections: Sequence[Rejection] = (),
        checkpoints: Mapping[tuple[str, str], Any] | None = None,
    ) -> CommitResult:
        """Insert records idempotently (by id), quarantine rejections and move checkpoints, in one
        transaction. Returns which ids were new and which were already stored."""
        result = CommitResult()
        now = now_z_ms()
        with self.write() as conn:
            self._commit_records(conn, records, now, result)
            result.quarantined = self._quarantine_and_checkpoint(conn, rejections, checkpoints, now)
        return result

    def _quarantine_and_checkpoint(
        self,
        conn: Connection,
        rejections: Sequence[Rejection],
        checkpoints: Mapping[tuple[str, str], Any] | None,
        now: str,
    ) -> list[int]:
        """The rest of a commit: quarantine what was rejected (their ids), move the checkpoints."""
        quarantined = self._quarantine(conn, rejections, now) if rejections else []
        for (scope, key), value in (checkpoints or {}).items():
            self.put_checkpoint(conn, scope, key, value, now)
        return quarantined

    def _commit_records(
        self, conn: Connection, records: Sequence[Record], now: str, result: CommitResult
    ) -> None:
        if not records:
            return
        unique: dict[str, Record] = {}
        for rec in records:
            if rec.id in unique:
                result.duplicate.append(rec.id)
            else:
                unique[rec.id] = rec
        existing = self._existing(conn, list(unique))
        rows = []
        for rid, rec in unique.items():
            if rid in existing:
                result.duplicate.append(rid)
            else:
                rows.append(record_to_tuple(rec, now))
        if not rows:
            return
        seqs = self._insert_returning(conn, rows)
        groups: dict[tuple[str, str, str], list[int]] = {}
        for rid, rec in unique.items():
            seq = seqs.get(rid)
            if seq is None:
                if rid not in existing:  # stored by another hub since `_existing` looked
                    result.duplicate.append(rid)
                continue
            result.new.append(rid)
            g = groups.get((rec.occurred_at[:13], rec.device_id, rec.office_id))
            if g is None:
                groups[rec.occurred_at[:13], rec.device_id, rec.office_id] = [1, seq, seq]
            else:
                g[0], g[1], g[2] = g[0] + 1, min(g[1], seq), max(g[2], seq)
        self._add_counts(
            conn, [(h, d, o, n, f, last) for (h, d, o), (n, f, last) in groups.items()]
        )

    def _insert_returning(self, conn: Connection, rows: list[tuple[Any, ...]]) -> dict[str, int]:
        """The live path's insert: rows of INSERT_COLUMNS, up to ROWS_PER_INSERT a statement,
        through the DB-API (SQLAlchemy's per-row parameter processing costs more than the insert
        itself); returns the seq of each id stored. ON CONFLICT is a safety net (another hub on
        the same PostgreSQL); a row it skips is not returned."""
        seqs: dict[str, int] = {}
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            for start in range(0, len(rows), ROWS_PER_INSERT):
                part = rows[start : start + ROWS_PER_INSERT]
                sql = self._insert_rows_sql(len(part), INSERT_COLUMNS) + " RETURNING seq, id"
                cur.execute(sql, [value for row in part for value in row])
                seqs.update({rid: int(seq) for seq, rid in cur.fetchall()})
        finally:
            cur.close()
        return seqs

    def bulk_insert(
        self,
        columns: Columns | Iterable[Columns],
        constants: Mapping[str, Any] | None = None,
        rejections: Sequence[Rejection] = (),
        checkpoints: Mapping[tuple[str, str], Any] | None = None,
    ) -> BulkResult:
        """The bulk path (file imports). `columns` maps record fields to their values, one per
        record (the JSON ones already serialised, or an object field as a mapping of its members'
        values), best sorted by id; or it is an iterable of such mappings, slices of one batch
        taken one at a time (only one need be in memory).
        `constants` are fields with one value for every record (JSON ones serialised too); fields
        in neither are null (flags `[]`). The records are stored with one shape (`shapes.py`):
        what the constants make common is stored once. One transaction with the quarantine and
        the checkpoints, like `commit`. `INSERT ... ON CONFLICT (id) DO NOTHING`, 100 rows a
        statement: a duplicate costs one index probe and is counted from the change count."""
        result = BulkResult()
        now = now_z_ms()
        consts = dict(constants or {})
        unknown = set(consts) - set(BULK_COLUMNS)
        if unknown:
            raise ValueError(f"not record columns: {sorted(unknown)}")
        consts.pop("committed_at", None)
        parts = iter([columns] if isinstance(columns, Mapping) else columns)
        lead: list[Columns] = []
        for part in parts:  # up to the first slice with rows: its columns are the varying fields
            lead.append(part)
            if _has_rows([part]):
                break
        fields = layout(lead[-1]) if lead else []
        fmt = shape_of(fields, consts)
        seen = [0]
        with self.write() as conn:
            shape = Shapes.id_for(conn, fmt) if _has_rows(lead) else 0
            before = self._top_seq(conn)
            width = len(BULK_INSERT_COLUMNS)
            tail: list[Any] = []
            blocks = _blocks(
                (
                    _bulk_values(part, fields, consts, now, seen, shape)
                    for part in itertools.chain(lead, parts)
                ),
                ROWS_PER_INSERT * width,
                tail,
            )
            # both drivers count an executemany's inserted rows (a conflict inserts none)
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cur.executemany(self._insert_rows_sql(ROWS_PER_INSERT), blocks)
                result.new = max(cur.rowcount, 0)
                if tail:
                    cur.execute(self._insert_rows_sql(len(tail) // width), tail)
                    result.new += max(cur.rowcount, 0)
            finally:
                cur.close()
            result.duplicate = seen[0] - result.new
            if result.new:
                self._count_new(conn, before, result.new)
            result.quarantined = self._quarantine_and_checkpoint(conn, rejections, checkpoints, now)
        return result

    def _insert_rows_sql(self, n: int, columns: tuple[str, ...] = BULK_INSERT_COLUMNS) -> str:
        """`INSERT … VALUES (…), (…) … ON CONFLICT (id) DO NOTHING` for n rows at once."""
        sql = self._rows_sql_cache.get((n, columns))
        if sql is None:
            mark = "?" if self.is_sqlite else "%s"
            one = f"({', '.join(mark for _ in columns)})"
            sql = self._rows_sql_cache[n, columns] = (
                f"INSERT INTO records ({', '.join(columns)}) "
                f"VALUES {', '.join(itertools.repeat(one, n))} ON CONFLICT (id) DO NOTHING"
            )
        return sql

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are stored already (a re-import skips building those records)."""
        if not ids:
            return set()
        with self.engine.connect() as conn:
            return self._existing(conn, ids)

    def _existing(self, conn: Connection, ids: Sequence[str]) -> set[str]:
        """One query through the DB-API: on SQLite a JSON array of ids in and one of the known
        ones out (one row: fetching a row per id cost two to four times the lookups); on
        PostgreSQL an array parameter."""
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if self.is_sqlite:  # in key order: the index is walked forwards, not at random
                cur.execute(
                    "SELECT json_group_array(r.id) FROM json_each(?) AS j "
                    "JOIN records AS r ON r.id = j.value",
                    (orjson.dumps(sorted(ids)).decode(),),
                )
                return set(orjson.loads(cur.fetchone()[0]))
            cur.execute("SELECT id FROM records WHERE id = ANY(%s)", (list(ids),))
            return {row[0] for row in cur.fetchall()}
        finally:
            cur.close()

    def resolve_quarantine(
        self, qid: int, status: str, resolution: str, records: Sequence[Record] = ()
    ) -> CommitResult:
        """Mark an item replayed/discarded, committing the records it produced atomically."""
        result = CommitResult()
        now = now_z_ms()
        with self.write() as conn:
            self._commit_records(conn, records, now, result)
            conn.execute(
                QUARANTINE.update()
                .where(QUARANTINE.c.qid == qid)
                .values(status=status, resolution=resolution, resolved_at=now)
            )
        return result
