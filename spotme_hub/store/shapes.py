"""Record shapes: what the records of one bulk batch have in common, stored once.

A file import commits, per device and chunk, tens of thousands of records that differ in a few
fields (id, who, when, the source line, the raw row) and share the rest (device, office, time
zone, receive time, location, schema version...). The bulk path stores that common part once,
as a *shape*: the records' canonical JSON text with `%s` where each varying field goes. Each
record's `doc` then holds only its varying fields' JSON texts, in field order, separated by
U+001F, a character no JSON text holds raw (JSON escapes control characters inside strings and
allows none outside them); but not its id, which is the records row's own `id` column (always
the first field, always plain text). Reading a record renders `shape % (id, *fields)`: the
very text `record_doc` gives, as a whole stored `doc` would hold it. A 1M-row attlog import
keeps 183 bytes a record in `doc` instead of 733, and its insert is that much shorter.

An object field (an import's `raw` row) may be given member by member: its keys then go in the
shape and each member is a field of its own, encoded like any other, so neither the importing
process joins a JSON object per row nor does the store keep the keys of every row.

Records committed one at a time (live punches) keep their whole JSON in `doc` (shape NULL).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, Table, Text, select

from ..record import RECORD_FIELDS, plain_strings

#: Between a shaped record's field texts in `doc`.
SEP = "\x1f"
#: Fields whose values come as JSON text already (spliced in as they are).
JSON_FIELDS = ("flags", "source", "raw")


SHAPES = Table(
    "record_shapes",
    MetaData(),
    Column("shape", Integer, primary_key=True),
    Column("fmt", Text, nullable=False),
)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def json_column(values: Sequence[Any]) -> tuple[Sequence[Any], bool]:
    """Each value's JSON text, or (when every value is a plain string: printable ASCII without
    quotes or backslashes, so its JSON is itself in quotes) the values as they are and True."""
    if plain_strings(values):
        return values, True
    cache: dict[str, str] = {}
    out: list[str] = []
    for v in values:
        if v is None:
            out.append("null")
        elif type(v) is str:
            text_ = cache.get(v)
            if text_ is None:
                text_ = cache[v] = _dumps(v)
            out.append(text_)
        else:
            out.append(_dumps(v))
    return out, False


#: A batch's columns: each varying field's values, one per record (JSON fields as JSON text), or
#: for an object field a mapping of its members' values, in key order.
Columns = Mapping[str, "Sequence[Any] | Mapping[str, Sequence[Any]]"]


def lengths(columns: Columns) -> set[int]:
    """The lengths of a batch's columns (and members)."""
    return {
        len(part)
        for col in columns.values()
        for part in (col.values() if isinstance(col, Mapping) else [col])
    }


def layout(columns: Columns) -> list[tuple[str, tuple[str, ...] | None]]:
    """The varying fields in field order, each with its members (None: given whole)."""
    out: list[tuple[str, tuple[str, ...] | None]] = []
    for name in RECORD_FIELDS:
        if name in columns:
            col = columns[name]
            out.append((name, tuple(col) if isinstance(col, Mapping) else None))
    return out


def shape_of(
    fields: Sequence[tuple[str, tuple[str, ...] | None]], consts: Mapping[str, Any]
) -> str:
    """The shape of records whose varying `fields` (a `layout`) differ and whose others are
    `consts` (JSON fields as JSON text; a field in neither is null, flags `[]`): their canonical
    JSON text with `%s` for each varying field or member, in order (`%` itself doubled)."""
    varying = dict(fields)
    parts = ["{"]
    for k, name in enumerate(RECORD_FIELDS):
        parts[-1] += ("," if k else "") + f'"{name}":'
        if name == "id":  # from the row's id column: plain text, quoted here
            parts[-1] += '"'
            parts.append('"')
            continue
        if name in varying:
            members = varying[name]
            if members is None:
                parts.append("")
                continue
            parts[-1] += "{"
            for m, key in enumerate(members):
                parts[-1] += ("," if m else "") + _dumps(key) + ":"
                parts.append("")
            parts[-1] += "}"
        elif name in JSON_FIELDS:
            parts[-1] += consts.get(name, "[]" if name == "flags" else "null")
        else:
            parts[-1] += _dumps(consts.get(name))
    parts[-1] += "}"
    return "%s".join(part.replace("%", "%%") for part in parts)


def varying_texts(columns: Columns, n: int) -> Iterator[str]:
    """Each record's `doc` for its shape: its varying fields' (and members') JSON texts joined
    by SEP, made as the driver consumes them (a chunk's texts are never all in memory). Each
    column is encoded once per distinct value, or not at all when its values are plain
    strings (their quotes are in the format)."""
    holes: list[str] = []
    values: list[Sequence[Any]] = []
    for name, members in layout(columns):
        if name == "id":  # the row's own column
            continue
        col = columns[name]
        parts: list[Sequence[Any]] = (
            [col[m] for m in members or ()] if isinstance(col, Mapping) else [col]
        )
        for part in parts:
            quoted = False
            if name not in JSON_FIELDS or members is not None:  # JSON text comes as it is
                part, quoted = json_column(part)
            holes.append('"%s"' if quoted else "%s")
            values.append(part)
    if not values:
        return itertools.repeat("", n)
    return map(SEP.join(holes).__mod__, zip(*values, strict=True))


class Shapes:
    """A store's shapes: found or added inside a bulk transaction; read (and kept: a shape never
    changes once committed) to render shaped records."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._text: dict[int, str] = {}
        self._bytes: dict[int, bytes] = {}

    @staticmethod
    def id_for(conn: Connection, fmt: str) -> int:
        """The shape's id, added in `conn`'s transaction if it is new."""
        found = conn.execute(select(SHAPES.c.shape).where(SHAPES.c.fmt == fmt).limit(1)).scalar()
        if found is not None:
            return int(found)
        return int(
            conn.execute(SHAPES.insert().values(fmt=fmt).returning(SHAPES.c.shape)).scalar_one()
        )

    def _fmt(self, shape: int) -> str:
        fmt = self._text.get(shape)
        if fmt is None:
            with self._engine.connect() as conn:
                fmt = conn.execute(select(SHAPES.c.fmt).where(SHAPES.c.shape == shape)).scalar_one()
            self._text[shape] = fmt
        return fmt

    def render(self, shape: int | None, doc: str, rid: str) -> str:
        """A stored (shape, doc) and the row's id → the record's canonical JSON text."""
        if shape is None:
            return doc
        return self._fmt(shape) % (rid, *doc.split(SEP)) if doc else self._fmt(shape) % rid

    def render_bytes(self, shape: int | None, doc: bytes, rid: bytes) -> bytes:
        """`render` on UTF-8 bytes (the feed serves them as they are)."""
        if shape is None:
            return doc
        fmt = self._bytes.get(shape)
        if fmt is None:
            fmt = self._bytes[shape] = self._fmt(shape).encode()
        return fmt % (rid, *doc.split(b"\x1f")) if doc else fmt % rid
