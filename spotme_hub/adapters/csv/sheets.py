"""Rows of workbooks, HTML tables and SpreadsheetML XML, one row at a time, every cell as text.

Nothing here holds a whole file as Python rows: the importer takes rows a chunk at a time.
Workbooks are read with python-calamine, which loads a sheet into its own memory (about 0.8 KB a
row of eight cells) and is fast; an `.xlsx` sheet whose XML is larger than `stream_sheet_mb` (default `STREAM_SHEET_BYTES`)
(roughly 70,000 to 150,000 rows, depending on the program that wrote it) is streamed with
openpyxl's read-only mode instead: flat memory, about fifteen times slower. Both give the same
text for the same cell (`tests/test_sheets.py`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from xml.parsers import expat

from .errors import FileRefused

STREAM_SHEET_BYTES = 32 << 20
TEXT_BLOCK = 1 << 20  # characters of HTML or XML fed to the parser at a time

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_SS = "{urn:schemas-microsoft-com:office:spreadsheet}"


def cell_text(value: Any) -> str:
    """A workbook cell as text: whole numbers without `.0`, date-times rounded to the second."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        if value.microsecond:
            value = value.replace(microsecond=0) + timedelta(
                seconds=1 if value.microsecond >= 500_000 else 0
            )
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, time):
        secs = value.hour * 3600 + value.minute * 60 + value.second
        secs += 1 if value.microsecond >= 500_000 else 0
        secs %= 86400
        return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    if isinstance(value, timedelta):
        secs = round(value.total_seconds()) % 86400
        return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    return str(value)


# --- workbooks ------------------------------------------------------------------------------


class Workbook:
    """One sheet of a workbook file; `rows()` can be called again (a new pass from row 1)."""

    def __init__(self, path: Path, sheet: str | int = 0, streamed: bool | None = None,
                 stream_bytes: int = STREAM_SHEET_BYTES):  # fmt: skip
        self.path = Path(path)
        self.sheet = sheet
        self.streamed = streamed if streamed is not None else (
            sheet_xml_bytes(self.path, sheet) > stream_bytes
        )  # fmt: skip
        self._calamine: Any = None  # the loaded sheet, kept for the next pass

    def rows(self) -> Iterator[list[str]]:
        """Sheet rows from row 1 and cells from column A (so a row's index + 1 is its number in
        the sheet, and a cell's index its column's). A workbook the library cannot read (cut
        short, damaged, no such sheet) is refused with what the library said."""
        try:
            yield from self._rows()
        except (FileRefused, OSError, MemoryError):
            raise
        except Exception as exc:
            raise FileRefused(_unreadable(self.path, exc)) from exc

    def _rows(self) -> Iterator[list[str]]:
        check_well_formed(self.path, self.sheet)
        if self.streamed:
            yield from self._openpyxl_rows()
            return
        sheet = self._calamine_sheet()
        first_column = sheet.start[1] if sheet.start else 0  # calamine skips empty columns
        pad = [""] * first_column
        for row in sheet.iter_rows():
            yield pad + [cell_text(c) for c in row]

    def _calamine_sheet(self) -> Any:
        if self._calamine is None:
            from python_calamine import CalamineWorkbook

            wb = CalamineWorkbook.from_path(str(self.path))
            try:
                if isinstance(self.sheet, int):
                    self._calamine = wb.get_sheet_by_index(self.sheet)
                else:
                    self._calamine = wb.get_sheet_by_name(self.sheet)
            finally:
                wb.close()
        return self._calamine

    def _openpyxl_rows(self) -> Iterator[list[str]]:
        import openpyxl

        wb = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        try:
            ws = wb.worksheets[self.sheet] if isinstance(self.sheet, int) else wb[self.sheet]
            day_zero = wb.epoch.date()
            for row in ws.iter_rows(values_only=True):
                yield [
                    cell_text(_as_calamine(v, day_zero) if isinstance(v, datetime) else v)
                    for v in row
                ]
        finally:
            wb.close()


def _as_calamine(value: datetime, day_zero: date) -> datetime | date | time:
    """A date-formatted cell as python-calamine returns it: a serial below 1 is a time of day,
    a whole one a date, anything else a date-time."""
    if value.date() == day_zero:
        return value.time()
    if value.hour == value.minute == value.second == value.microsecond == 0:
        return value.date()
    return value


def sheet_names(path: Path) -> list[str]:
    """The workbook's sheets, in order (refused when the workbook cannot be read)."""
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
    except Exception as exc:
        raise FileRefused(_unreadable(path, exc)) from exc
    try:
        return list(wb.sheet_names)
    finally:
        wb.close()


def _unreadable(path: Path, exc: Exception) -> str:
    return (
        f"{path.name}: cannot read the workbook ({type(exc).__name__}: {exc}); if it was copied "
        "or downloaded it may be incomplete, and a password-protected one must be saved "
        "without its password first"
    )


def _sheet_part(zf: zipfile.ZipFile, sheet: str | int) -> str | None:
    """The zip member holding an `.xlsx` sheet's XML (None for other workbooks or no such
    sheet)."""
    try:
        if "xl/workbook.xml" not in zf.namelist():
            return None
        listed = list(ElementTree.fromstring(zf.read("xl/workbook.xml")).iter(f"{_MAIN}sheet"))
        pick = (
            listed[sheet]
            if isinstance(sheet, int)
            else next(s for s in listed if s.get("name") == sheet)
        )
        rid = pick.get(f"{_REL}id")
        rels = ElementTree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
        target = next(r.get("Target") for r in rels if r.get("Id") == rid) or ""
        part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        zf.getinfo(part)
        return part
    except (KeyError, IndexError, StopIteration, ElementTree.ParseError):
        return None


def sheet_xml_bytes(path: Path, sheet: str | int) -> int:
    """Uncompressed size of an `.xlsx` sheet's XML (0 for other workbooks or when not found)."""
    try:
        with zipfile.ZipFile(path) as zf:
            part = _sheet_part(zf, sheet)
            return zf.getinfo(part).file_size if part else 0
    except zipfile.BadZipFile:
        return 0


def check_well_formed(path: Path, sheet: str | int) -> None:
    """Refuse an `.xlsx` whose sheet or shared-strings XML is not well formed: python-calamine
    reads some damaged XML without a word (a missing `</t>` merges two cells into one value).
    A streaming parse, ~0.1 s per 10 MB of XML; other workbooks are left to their reader."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return  # not a zip workbook: its reader says what it is
    with zf:
        part = _sheet_part(zf, sheet)
        for name in (part, "xl/sharedStrings.xml"):
            if name is None or name not in zf.namelist():
                continue
            parser = expat.ParserCreate()
            try:
                with zf.open(name) as member:
                    while block := member.read(TEXT_BLOCK):
                        parser.Parse(block, False)
                parser.Parse(b"", True)
            except expat.ExpatError as exc:
                raise FileRefused(
                    f"{path.name}: the workbook is damaged — {name} is not well-formed XML "
                    f"({expat.ErrorString(exc.code)} at line {exc.lineno}, column {exc.offset}); "
                    "open it in Excel and save it again, or export it afresh"
                ) from None


# --- HTML and SpreadsheetML XML ---------------------------------------------------------------


def _text_blocks(path: Path, encoding: str | None) -> Iterator[str]:
    with path.open("r", encoding=encoding or "utf-8", errors="replace") as fh:
        while block := fh.read(TEXT_BLOCK):
            yield block


def html_rows(path: Path, encoding: str | None) -> Iterator[list[str]]:
    """Rows of the HTML table rows (what 'Excel' exports from web systems really are)."""
    parser = _HtmlRows()
    for block in _text_blocks(path, encoding):
        parser.feed(block)
        yield from parser.take()
    parser.close()
    yield from parser.take()


class _HtmlRows(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def take(self) -> list[list[str]]:
        rows, self.rows = self.rows, []
        return rows

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def xml_rows(path: Path, encoding: str | None) -> Iterator[list[str]]:
    """Rows of the first table of an Excel 2003 XML (SpreadsheetML) file; XML that is not well
    formed is refused."""
    try:
        yield from _xml_rows(path, encoding)
    except ElementTree.ParseError as exc:
        raise FileRefused(f"{path.name}: not well-formed XML ({exc})") from exc


def _xml_rows(path: Path, encoding: str | None) -> Iterator[list[str]]:
    parser: Any = ElementTree.XMLPullParser(events=("start", "end"))
    tables = 0
    table: ElementTree.Element | None = None
    for block in _text_blocks(path, encoding):
        parser.feed(block)
        for event, elem in parser.read_events():
            assert isinstance(elem, ElementTree.Element)
            if elem.tag == f"{_SS}Table" and event == "start":
                tables += 1
                table = elem
            elif event == "end" and elem.tag == f"{_SS}Row" and table is not None:
                if tables == 1:
                    yield _xml_row(elem)
                table.remove(elem)  # a row read is a row let go
    parser.close()


def _xml_row(row: ElementTree.Element) -> list[str]:
    cells: list[str] = []
    for cell in row.iter(f"{_SS}Cell"):
        index = cell.get(f"{_SS}Index")
        if index is not None:
            cells.extend([""] * (int(index) - 1 - len(cells)))
        data = cell.find(f"{_SS}Data")
        value = "" if data is None or data.text is None else data.text
        if data is not None and data.get(f"{_SS}Type") == "DateTime" and "T" in value:
            value = value.replace("T", " ").split(".")[0]
            if value.startswith("1899-12-31 "):  # a time of day without a date
                value = value[11:]
        cells.append(value)
    return cells
