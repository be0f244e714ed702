"""Workbook, HTML and XML rows: the streamed reader of a large `.xlsx` gives what calamine gives,
and an import through it gives the same records."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pytest
from fileimport_helpers import make_config, open_store, run_import
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from spotme_hub.adapters.csv import sheets
from spotme_hub.adapters.csv.sheets import Workbook, html_rows, sheet_xml_bytes, xml_rows


def _every_kind_of_cell(path: Path, epoch: dt.datetime | None = None) -> Path:
    wb = openpyxl.Workbook()
    if epoch is not None:
        wb.epoch = epoch
    wb.active.title = "Cover"
    wb.active.append(["Laporan"])
    ws = wb.create_sheet("Transactions")
    ws["B3"] = "Employee ID"  # the data starts at B3: two empty rows, one empty column
    names = ["Date", "Time", "When", "Late", "Shift", "Ok", "Note"]
    for col, name in zip("CDEFGHI", names, strict=True):
        ws[f"{col}3"] = name
    ws.append([None, "00012", dt.date(2025, 2, 3), dt.time(8, 1), dt.datetime(2025, 2, 3, 8, 1)])
    ws.append([None, 12, 45691, 0.7298611111111111, dt.datetime(2025, 2, 3, 8, 1, 0, 600_000)])
    ws.append([None, 1.5, "3/2/2025", "5:31 PM", 45691.3340277778, dt.timedelta(hours=30)])
    ws.append([None, None, None, None, None, None, 480, True, "Siti binti Abu, a/p"])
    ws.append([])  # a blank row in the middle
    ws.append([None, "7", dt.datetime(2025, 2, 4), dt.time(0, 0), dt.datetime(2025, 2, 4, 0, 0)])
    ws["D6"].number_format = "yyyy-mm-dd"  # a serial shown as a date
    wb.save(path)
    return path


@pytest.mark.parametrize("epoch", [None, CALENDAR_MAC_1904], ids=["1900", "1904"])
def test_streamed_xlsx_rows_are_calamines_rows(tmp_path: Path, epoch: dt.datetime | None) -> None:
    path = _every_kind_of_cell(tmp_path / "t.xlsx", epoch)
    fast = list(Workbook(path, "Transactions", streamed=False).rows())
    flat = list(Workbook(path, "Transactions", streamed=True).rows())
    assert [r for r in flat if any(r)] == [r for r in fast if any(r)]
    assert len(flat) >= len(fast)  # only trailing blank rows may differ
    assert fast[2][:3] == ["", "Employee ID", "Date"]  # row 3 of the sheet, from column A
    assert fast[3][1:5] == ["00012", "2025-02-03", "08:01:00", "2025-02-03 08:01:00"]
    assert fast[4][4] == "2025-02-03 08:01:01"  # microseconds rounded
    assert fast[8][2:5] == ["2025-02-04", "00:00:00", "2025-02-04"]  # midnight: calamine's date


def test_a_large_sheet_is_streamed_and_imports_the_same_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Transaction Report"])
    ws.append(["Employee ID", "First Name", "Date", "Punch Time", "Punch State"])
    start = dt.datetime(2025, 1, 6, 7, 30)
    for i in range(1_200):  # more than one 500-row chunk
        t = start + dt.timedelta(minutes=7 * i)
        state = "Check In" if i % 2 == 0 else ("Check Out" if i % 97 else "Rehat?")
        ws.append([f"{i % 40:05d}", "Siti", t.date(), t.time(), state])
    path = tmp_path / "year.xlsx"
    wb.save(path)
    assert sheet_xml_bytes(path, 0) > 50_000

    def run(where: str, threshold: int) -> tuple[dict, list]:
        monkeypatch.setattr(sheets, "STREAM_SHEET_BYTES", threshold)
        (tmp_path / where).mkdir()
        cfg = make_config(tmp_path / where, {"chunk_rows": 500})
        store = open_store(cfg)
        s = run_import(cfg, store, path)
        assert s.imported + s.quarantined == 1_200 and s.quarantined > 0, s.problems
        records = {r["id"]: (r["local_time"], r["punch"], r["raw"], r["source"])
                   for r in store.iter_records()}  # fmt: skip
        return records, sorted((q["source"]["line"], q["reason"]) for q in store.quarantine_items())

    streamed = run("streamed", 50_000)
    loaded = run("loaded", 1 << 40)
    assert streamed == loaded
    assert min(src["line"] for *_, src in streamed[0].values()) == 3  # sheet row numbers


def test_html_and_xml_rows_stream_in_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables longer than a parser block: every row, in order, each cell whole."""
    monkeypatch.setattr(sheets, "TEXT_BLOCK", 64)
    cells = [[f"{i:05d}", f"Nama {i} &amp; anak", "2025-02-03"] for i in range(50)]
    html = "<html><table>" + "".join(
        "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells
    ) + "</table></html>"  # fmt: skip
    (tmp_path / "a.xls").write_text(html, encoding="utf-8")
    got = list(html_rows(tmp_path / "a.xls", "utf-8"))
    want = [[c.replace("&amp;", "&") for c in row] for row in cells]
    assert got == want
    ns = 'xmlns="urn:schemas-microsoft-com:office:spreadsheet" ' \
         'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet"'  # fmt: skip
    rows = "".join(
        "<Row>" + "".join(f'<Cell><Data ss:Type="String">{c}</Data></Cell>' for c in row) + "</Row>"
        for row in cells
    )
    xml = f'<?xml version="1.0"?><Workbook {ns}><Worksheet><Table>{rows}</Table></Worksheet>' \
          '<Worksheet><Table><Row><Cell><Data ss:Type="String">other sheet</Data></Cell></Row>' \
          "</Table></Worksheet></Workbook>"  # fmt: skip
    (tmp_path / "b.xls").write_text(xml, encoding="utf-8")
    assert list(xml_rows(tmp_path / "b.xls", "utf-8")) == want


@pytest.mark.parametrize("streamed", [False, True])
def test_a_workbook_whose_xml_is_not_well_formed_is_refused(tmp_path: Path, streamed: bool) -> None:
    """python-calamine reads a sheet with a missing `</t>` and merges two cells into one value;
    the file is refused instead, naming the damaged part, and nothing is imported."""
    import zipfile

    from fileimport_helpers import MALAY_COLUMNS

    from spotme_hub.adapters.csv.reader import FileRefused

    good = tmp_path / "good.xlsx"
    wb = openpyxl.Workbook()
    for row in (["No. Pekerja", "Nama", "Tarikh", "Masa", "Status"],
                ["00012", "Siti", "13/02/2025", "08:01 AM", "Masuk"]):  # fmt: skip
        wb.active.append(row)
    wb.save(good)
    bad, part = tmp_path / "bad.xlsx", "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == part:
                data = data.replace(b"</t>", b"", 1)
            zout.writestr(item, data)
    with pytest.raises(FileRefused, match=f"{part} is not well-formed XML"):
        list(Workbook(bad, 0, streamed=streamed).rows())
    cfg = make_config(tmp_path, MALAY_COLUMNS)
    store = open_store(cfg)
    with pytest.raises(FileRefused, match="the workbook is damaged"):
        run_import(cfg, store, bad)
    assert store.count_records() == 0
