"""Reading export files: what the bytes are, how they decode, where the header is, chunk by chunk.

Every cell comes out as a string (ids keep leading zeros; an empty cell is ``""``). Text files are
streamed with pandas' C parser; workbooks are read with python-calamine; a `.xls` that is really
HTML, SpreadsheetML XML or tab-separated text is recognised by its first bytes.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import FileRefused
from .sheets import STREAM_SHEET_BYTES, Workbook, html_rows, xml_rows

PREVIEW_ROWS = 64
EXTRA_COLUMNS = 8  # room for lines with a few more fields than the header (they are quarantined)


@dataclass(slots=True)
class Chunk:
    frame: pd.DataFrame  # str cells, columns = table names + extra columns
    lines: list[int]  # 1-based line (text) or row (sheet) number of each row
    last: bool = False


@dataclass
class Table:
    """A readable file: its format, decoder, delimiter and a chunk iterator."""

    path: Path
    kind: str  # text | excel | html | xml
    encoding: str | None = None
    delimiter: str | None = None
    excel_epoch: datetime | None = None  # 1899-12-30 or 1904-01-01 for workbooks
    sheet: str | int = 0
    stream_bytes: int = STREAM_SHEET_BYTES  # a larger .xlsx sheet is streamed (`Workbook`)
    preview: list[list[str]] = field(default_factory=list)
    workbook: Workbook | None = None
    quoted: bool | None = None  # a text file holds a quote character (None: not looked yet)

    def describe(self) -> str:
        if self.kind == "text":
            return f"text, {self.encoding}, delimiter {self.delimiter!r}"
        return self.kind

    def looks(self) -> str:
        """What the file looks like, for a refusal: its kind and its first row with cells."""
        first = next((r for r in self.preview if any(c.strip() for c in r)), None)
        kind = {"text": f"text ({self.describe()})", "excel": "a workbook",
                "html": "an HTML table", "xml": "Excel XML"}[self.kind]  # fmt: skip
        if first is None:
            return f"{kind} with no rows"
        cells = ", ".join(c.strip() for c in first[:8] if c.strip())
        more = ", …" if len(first) > 8 else ""
        return f"{kind} whose first row reads: {excerpt(cells, 120)}{more}"

    def chunks(
        self, names: list[str], data_start: int, chunk_rows: int, usecols: list[str] | None = None
    ) -> Iterator[Chunk]:
        """Rows after the header (`data_start` = index of the first data row/line)."""
        wide = names + [f"_extra{i}" for i in range(1, EXTRA_COLUMNS + 1)]
        if self.kind == "text":
            yield from self._text_chunks(wide, data_start, chunk_rows, usecols)
            return
        rows = itertools.islice(self.rows(), data_start, None)
        line = data_start + 1
        ahead = next(rows, None)
        while ahead is not None:
            block = [ahead, *itertools.islice(rows, chunk_rows - 1)]
            ahead = next(rows, None)
            frame = pd.DataFrame(
                [(r + [""] * len(wide))[: len(wide)] for r in block], columns=wide, dtype=object
            )
            if usecols is not None:
                frame = frame[usecols]
            yield Chunk(frame, list(range(line, line + len(block))), last=ahead is None)
            line += len(block)

    def _text_chunks(
        self, wide: list[str], data_start: int, chunk_rows: int, usecols: list[str] | None
    ) -> Iterator[Chunk]:
        with self._refusing_parser_errors(data_start + 1):
            reader = pd.read_csv(
                self.path, sep=self.delimiter, header=None, names=wide,
                skiprows=data_start, dtype=object, na_filter=False, skip_blank_lines=False,
                encoding=self.encoding, chunksize=chunk_rows, engine="c",
            )  # fmt: skip
        line = data_start + 1
        if self.quoted is None:  # one scan of the file, however many passes read it
            self.quoted = _has_quotes(self.path)
        quoted = self.quoted
        pending: Chunk | None = None
        with reader:
            while (frame := self._parse(reader, line)) is not None:
                if pending is not None:
                    yield pending
                starts = np.arange(line, line + len(frame))
                inside = _newlines_inside(frame) if quoted else None
                if inside is not None:  # a quoted field spans lines: later rows start lower
                    starts[1:] += np.cumsum(inside[:-1])
                    line += int(inside.sum())
                pending = Chunk(frame if usecols is None else frame[usecols], starts.tolist())
                line += len(frame)
        if pending is not None:
            pending.last = True
            yield pending

    def _parse(self, reader: Any, line: int) -> pd.DataFrame | None:
        """pandas' next chunk (None at the end)."""
        with self._refusing_parser_errors(line):
            return next(reader, None)

    @contextmanager
    def _refusing_parser_errors(self, line: int) -> Iterator[None]:
        """A parser error is refused with where it happened (an unclosed quote swallows the
        rest of the file: nothing sound follows it)."""
        try:
            yield
        except pd.errors.ParserError as exc:
            detail = str(exc).removeprefix("Error tokenizing data. C error: ")
            hint = "; a quote that opens a field must close it" if "inside string" in detail else ""
            raise FileRefused(
                f"{self.path.name}: cannot read the text from line {line} on "
                f"(separator {self.delimiter!r}): {detail}{hint}"
            ) from exc

    def rows(self) -> Iterator[list[str]]:
        """Every row of a workbook, HTML or XML file from the first, one at a time (a new pass
        each call; text files are read by `chunks` with pandas)."""
        if self.kind == "excel":
            if self.workbook is None:
                self.workbook = Workbook(self.path, self.sheet, stream_bytes=self.stream_bytes)
            return self.workbook.rows()
        if self.kind == "xml":
            return xml_rows(self.path, self.encoding)
        if self.kind == "html":
            return html_rows(self.path, self.encoding)
        raise ValueError(f"{self.path.name}: a text file is read in chunks, not rows")


def _has_quotes(path: Path) -> bool:
    """Whether the file holds a quote character at all (only then can a field span lines)."""
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            if b'"' in block:
                return True
    return False


def _newlines_inside(frame: pd.DataFrame) -> np.ndarray | None:
    """Line breaks inside each row's cells (quoted fields), or None when there are none."""
    inside: np.ndarray | None = None
    for col in frame.columns:
        values = frame[col].tolist()
        if "\n" not in "\x00".join(values):
            continue
        counts = np.fromiter((v.count("\n") for v in values), dtype=np.int64, count=len(values))
        inside = counts if inside is None else inside + counts
    return inside


# --- opening ----------------------------------------------------------------------------------


def is_workbook(path: Path) -> bool:
    """An OLE2 (`.xls`) or zip (`.xlsx`, `.ods`) file, whatever its name says."""
    with Path(path).open("rb") as fh:
        return fh.read(4) in (b"\xd0\xcf\x11\xe0", b"PK\x03\x04")


def open_table(
    path: Path,
    encoding: str = "auto",
    delimiter: str | None = None,
    sheet: str | int = 0,
    stream_bytes: int = STREAM_SHEET_BYTES,
) -> Table:
    """Sniff `path` (magic bytes, encoding, delimiter) and preview its first rows."""
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(4096)
    if not head:
        raise FileRefused(f"{path.name}: the file is empty")
    if head.startswith(b"\xd0\xcf\x11\xe0") or head.startswith(b"PK\x03\x04"):
        table = Table(path, "excel", excel_epoch=_excel_epoch(path, head), sheet=sheet,
                      stream_bytes=stream_bytes)  # fmt: skip
        table.preview = list(itertools.islice(table.rows(), PREVIEW_ROWS))
        return table
    if _binary(head):
        named = path.suffix.lower() in WORKBOOK_SUFFIXES
        what = (f"not a workbook, although its name ends {path.suffix} (no zip or OLE2 header)"
                if named else "binary data, not a text export or a workbook")  # fmt: skip
        raise FileRefused(f"{path.name}: {what}; it starts {head[:12].hex(' ')} …")
    enc = _detect_encoding(path, head) if encoding == "auto" else encoding
    text_head = _decode_head(path, enc)
    stripped = text_head.lstrip()
    if stripped.startswith("<"):
        low = stripped[:2000].lower()
        kind = "xml" if "urn:schemas-microsoft-com:office:spreadsheet" in low else "html"
        if kind == "html" and "<table" not in low and "<html" not in low:
            raise FileRefused(f"{path.name}: starts with '<' but is neither HTML nor Excel XML")
        table = Table(path, kind, encoding=enc)
        table.preview = list(itertools.islice(table.rows(), PREVIEW_ROWS))
        return table
    lines = text_head.splitlines()[:PREVIEW_ROWS]
    delim = delimiter or sniff_delimiter(lines)
    table = Table(path, "text", encoding=enc, delimiter=delim)
    table.preview = [next(csv.reader([ln], delimiter=delim), []) for ln in lines]
    return table


WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")


def excerpt(text: str, limit: int = 40) -> str:
    """`text` quoted, control characters escaped, cut at `limit` characters (for messages)."""
    shown = repr(text[:limit])
    return shown + ("…" if len(text) > limit else "")


def _binary(head: bytes) -> bool:
    """Not text in any encoding an export uses: a NUL byte, or more than 1 in 20 bytes a control
    character other than tab, CR, LF and form feed (UTF-16 has a BOM and is read as text)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return controls * 20 > len(head)


def _detect_encoding(path: Path, head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if _looks_gbk(path):
        return "gbk"
    try:
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                block.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


_HIGH_RUN = re.compile(rb"[\x80-\xff]+")


def _looks_gbk(path: Path) -> bool:
    """GBK (Chinese-locale Excel and HR software) rather than cp1252: the whole file decodes as
    GBK and its non-ASCII bytes come in runs of two characters or more (Chinese names), where
    cp1252 text has a lone accented letter or curly quote between ASCII ones (`Renée D’Cruz`
    happens to be valid GBK too, one byte at a time)."""
    decoder = codecs.getincrementaldecoder("gbk")()
    high = in_runs = 0
    try:
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                decoder.decode(block)
                for run in _HIGH_RUN.findall(block):
                    high += len(run)
                    in_runs += len(run) if len(run) >= 4 else 0
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return high > 0 and in_runs >= 0.8 * high


def _decode_head(path: Path, encoding: str) -> str:
    with path.open("r", encoding=encoding, errors="replace", newline="") as fh:
        return fh.read(65536)


def sniff_delimiter(lines: list[str]) -> str:
    """The separator that splits most of the sample lines the same way (tab, comma, ; or |)."""
    sample = [ln for ln in lines if ln.strip()][:40]
    best, best_score = ",", -1
    for cand in ("\t", ",", ";", "|"):
        counts = [len(next(csv.reader([ln], delimiter=cand), [])) - 1 for ln in sample]
        counts = [c for c in counts if c > 0]
        if not counts:
            continue
        mode = max(set(counts), key=counts.count)
        score = counts.count(mode) * 10 + mode
        if score > best_score:
            best, best_score = cand, score
    return best


def _excel_epoch(path: Path, head: bytes) -> datetime:
    """1904 date system when a zip workbook says so (Mac Excel), else the 1900 system."""
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                if "xl/workbook.xml" in zf.namelist():
                    wb = zf.read("xl/workbook.xml")[:20000]
                    if re.search(rb'date1904="(1|true)"', wb):
                        return datetime(1904, 1, 1)
        except zipfile.BadZipFile:
            pass
    return datetime(1899, 12, 30)


def find_header(
    preview: list[list[str]], wanted: Callable[[list[str]], bool]
) -> tuple[int, list[str]] | None:
    """(row index, names) of the first preview row accepted by `wanted` (title rows skipped)."""
    for i, row in enumerate(preview):
        names = [c.strip() for c in row]
        if wanted(names):
            return i, unique_names(names)
    return None


def unique_names(names: list[str]) -> list[str]:
    out: list[str] = []
    for i, n in enumerate(names):
        base = n or f"column{i + 1}"
        name, k = base, 1
        while name in out:
            name, k = f"{base}.{k}", k + 1
        out.append(name)
    return out
