"""CSV/Excel imports: presets, encodings, date forms, refusal, quarantine, idempotency."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pytest
from fileimport_helpers import (
    BIOTIME_CSV,
    MALAY_COLUMNS,
    MALAY_TSV,
    attlog_line,
    make_config,
    open_store,
    run_import,
    split_export,
    write,
)

from spotme_hub.adapters.csv.reader import FileRefused


def _records(store):
    return list(store.iter_records())


def _import_malay(tmp_path: Path, name: str, text: str, encoding: str = "utf-8"):  # type: ignore[no-untyped-def]
    """Import `text` as a file with the Malay column mapping: (store, summary)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = make_config(tmp_path, MALAY_COLUMNS)
    store = open_store(cfg)
    return store, run_import(cfg, store, write(tmp_path / name, text, encoding))


# --- presets ------------------------------------------------------------------------------------


def test_attlog_padded_pins_short_lines_and_codes(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    text = (
        attlog_line("1", "2026-10-03 08:59:01", 0, 1)
        + attlog_line("00012", "2026-10-03 17:59:01", 1, 15)
        + attlog_line("7", "2026-10-03 12:00:00", 2, 4, fields=4)
        + attlog_line("7", "2026-10-03 13:00:00", 3, 1, fields=5)
    )
    s = run_import(cfg, store, write(tmp_path / "7_attlog.dat", text))
    assert (s.preset, s.rows_read, s.imported, s.quarantined) == ("zkteco_attlog", 4, 4, 0)
    recs = {(r["source_user_id"], r["punch"], r["verify"]) for r in _records(store)}
    assert recs == {
        ("1", "in", "fingerprint"),
        ("00012", "out", "face"),
        ("7", "break_out", "unknown"),
        ("7", "break_in", "fingerprint"),
    }
    by_user = {r["source_user_id"]: r for r in _records(store)}
    assert by_user["00012"]["employee_id"] == "J0012"
    assert by_user["1"]["local_time"] == "2026-10-03T08:59:01+08:00"
    assert by_user["1"]["occurred_at"] == "2026-10-03T00:59:01Z"
    assert by_user["1"]["source"] == {"file": "7_attlog.dat", "line": 1}


def test_attlog_ssr_serial_and_checksum_lines_are_skipped(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    text = (
        "CQZ7224460246\r\n"
        + attlog_line("1", "2026-10-03 08:59:01")
        + attlog_line("2", "2026-10-03 09:00:00")
        + "A1B2C3D4\r\n"
    )
    s = run_import(cfg, store, write(tmp_path / "ssr_attlog.dat", text))
    assert (s.imported, s.skipped, s.quarantined) == (2, 2, 0)


def test_biotime_csv_title_row_separate_date_and_time(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    s = run_import(cfg, store, write(tmp_path / "transactions.csv", BIOTIME_CSV))
    assert (s.preset, s.imported, s.quarantined) == ("biotime", 3, 0)
    rows = sorted(_records(store), key=lambda r: r["occurred_at"])
    assert [r["punch"] for r in rows] == ["in", "out", "in"]
    assert rows[0]["local_time"] == "2025-02-03T08:01:00+08:00"
    assert rows[2]["local_time"] == "2025-02-04T08:05:00+08:00"  # unpadded hour
    assert rows[0]["device_serial"] == "CQZ7224460246"
    assert rows[0]["source_user_id"] == "00012"  # leading zeros kept
    assert rows[2]["verify"] == "card"


def test_biotime_xlsx_with_times_as_objects_and_serials(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Transactions"])
    ws.append(["Employee ID", "First Name", "Date", "Punch Time", "Punch State"])
    ws.append(["00012", "Siti", dt.date(2025, 2, 3), dt.time(8, 1), "Check In"])
    ws.append(["00012", "Siti", dt.date(2025, 2, 3), 0.7298611111111111, "Check Out"])  # 17:31
    ws.append(["1", "Tan", 45692, "5:31 PM", "Check Out"])  # serial date, 12-hour text
    path = tmp_path / "transactions.xlsx"
    wb.save(path)
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    s = run_import(cfg, store, path)
    assert (s.reader, s.imported, s.quarantined) == ("excel", 3, 0), s.problems
    times = sorted(r["local_time"] for r in _records(store))
    assert times == [
        "2025-02-03T08:01:00+08:00",
        "2025-02-03T17:31:00+08:00",
        "2025-02-04T17:31:00+08:00",
    ]


def test_excel_serial_datetime_float_noise_rounds_to_seconds(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Employee ID", "Time", "Punch State"])
    ws.append(["5", 45691.3340277778, "Check In"])  # 2025-02-03 08:01:00 + float noise
    path = tmp_path / "t.xlsx"
    wb.save(path)
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    assert run_import(cfg, store, path).imported == 1
    assert _records(store)[0]["local_time"] == "2025-02-03T08:01:00+08:00"


def test_generic_malay_headers(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, MALAY_COLUMNS)
    store = open_store(cfg)
    s = run_import(cfg, store, write(tmp_path / "kehadiran.txt", MALAY_TSV))
    assert (s.preset, s.imported, s.quarantined) == ("generic", 2, 0)
    rows = sorted(_records(store), key=lambda r: r["occurred_at"])
    assert [(r["punch"], r["local_time"]) for r in rows] == [
        ("in", "2025-02-13T08:01:00+08:00"),
        ("out", "2025-02-13T17:31:00+08:00"),
    ]


# --- encodings and fake .xls ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"), ("cp1252", "cp1252")],
)
def test_encodings_are_detected_and_reported(tmp_path: Path, encoding: str, expected: str) -> None:
    text = MALAY_TSV.replace("Siti binti Abu", "Zoë d’Almeida")  # non-ASCII in cp1252 too
    cfg = make_config(tmp_path, MALAY_COLUMNS)
    store = open_store(cfg)
    s = run_import(cfg, store, write(tmp_path / "k.txt", text, encoding))
    assert s.reader.startswith(f"text, {expected},")
    assert s.imported == 2
    assert {r["raw"]["Nama"] for r in _records(store)} == {"Zoë d’Almeida"}


def test_gbk_is_told_from_cp1252(tmp_path: Path) -> None:
    """Chinese names from a Chinese-locale export are read as GBK; a cp1252 file whose accented
    letters and curly quotes happen to be valid GBK byte pairs stays cp1252."""
    for name, encoding in (("陈志明", "gbk"), ("Renée D’Cruz", "cp1252")):
        store, s = _import_malay(
            tmp_path / encoding, "k.txt", MALAY_TSV.replace("Siti binti Abu", name), encoding
        )
        assert s.reader.startswith(f"text, {encoding},"), s.reader
        assert s.imported == 2
        assert {r["raw"]["Nama"] for r in _records(store)} == {name}


def test_comma_and_semicolon_delimiters_are_sniffed(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, MALAY_COLUMNS)
    store = open_store(cfg)
    semi = MALAY_TSV.replace("\t", ";")
    assert run_import(cfg, store, write(tmp_path / "a.csv", semi)).reader.endswith("';'")
    comma = MALAY_TSV.replace("\t", ",").replace("Siti binti Abu", '"Abu, Siti"')
    s = run_import(cfg, store, write(tmp_path / "b.csv", comma))
    assert s.reader.endswith("','") and s.duplicates == 2


def test_xls_that_is_html_tsv_or_xml(tmp_path: Path) -> None:
    html = (
        "<html><body><table><tr><th>Employee ID</th><th>Date</th><th>Punch Time</th>"
        "<th>Punch State</th></tr><tr><td>00012</td><td>2025-02-03</td><td>08:01:00</td>"
        "<td>Check In</td></tr></table></body></html>"
    )
    tsv = "Employee ID\tDate\tPunch Time\tPunch State\n00012\t2025-02-03\t08:01:00\tCheck In\n"
    xml = (
        '<?xml version="1.0"?>\n<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet" '
        'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet"><Worksheet ss:Name="S"><Table>'
        '<Row><Cell><Data ss:Type="String">Employee ID</Data></Cell><Cell><Data ss:Type="String">'
        'Time</Data></Cell><Cell><Data ss:Type="String">Punch State</Data></Cell></Row>'
        '<Row><Cell><Data ss:Type="String">00012</Data></Cell><Cell><Data ss:Type="DateTime">'
        '2025-02-03T08:01:00.000</Data></Cell><Cell><Data ss:Type="String">Check In</Data>'
        "</Cell></Row></Table></Worksheet></Workbook>"
    )
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    kinds = []
    for name, text, enc in [
        ("a.xls", html, "utf-8"),
        ("b.xls", tsv, "utf-16"),
        ("c.xls", xml, "utf-8"),
    ]:
        s = run_import(cfg, store, write(tmp_path / name, text, enc))
        kinds.append((s.reader.split(",")[0], s.imported + s.duplicates))
    assert kinds == [("html", 1), ("text", 1), ("xml", 1)]
    assert store.count_records() == 1  # the same punch three times


# --- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "clock", "expected"),
    [
        ("2025/02/03", "8:01", "2025-02-03T08:01:00"),
        ("2025-02-03", "08:01:09 PM", "2025-02-03T20:01:09"),
        ("13/02/2025", "12:05 AM", "2025-02-13T00:05:00"),
        ("02/13/2025", "12:05 PM", "2025-02-13T12:05:00"),
        ("13.02.2025", "23:59", "2025-02-13T23:59:00"),
    ],
)
def test_date_forms(tmp_path: Path, date: str, clock: str, expected: str) -> None:
    text = f"No. Pekerja\tTarikh\tMasa\tStatus\n1\t{date}\t{clock}\tMasuk\n"
    cfg = make_config(tmp_path, MALAY_COLUMNS)
    store = open_store(cfg)
    s = run_import(cfg, store, write(tmp_path / "d.txt", text))
    assert s.imported == 1, s.problems
    assert _records(store)[0]["local_time"] == expected + "+08:00"


def test_stray_whitespace_in_date_and_time_cells_is_read(tmp_path: Path) -> None:
    """Padding, doubled spaces and a tab inside one row's date or time among clean rows."""
    text = (
        "No. Pekerja\tTarikh\tMasa\tStatus\n"
        "1\t13/02/2025\t08:01 AM\tMasuk\n"
        "2\t 13/02/2025 \t08:02  AM\tMasuk\n"
        "3\t13/02/2025\t 08:03 \x0bAM \tMasuk\n"
        "4\t13/02/2025\t08:04 AM\tMasuk\n"
    )
    store, s = _import_malay(tmp_path, "ws.txt", text)
    assert (s.imported, s.quarantined) == (4, 0), s.problems
    assert sorted(r["local_time"] for r in _records(store)) == [
        f"2025-02-13T08:0{m}:00+08:00" for m in range(1, 5)
    ]


def test_ambiguous_day_month_is_refused_then_resolved_by_dayfirst(tmp_path: Path) -> None:
    text = "No. Pekerja\tTarikh\tMasa\tStatus\n1\t03/02/2025\t08:01\tMasuk\n2\t04/02/2025\t08:02\tMasuk\n"
    cfg = make_config(tmp_path, MALAY_COLUMNS)
    store = open_store(cfg)
    path = write(tmp_path / "amb.txt", text)
    with pytest.raises(FileRefused, match="cannot tell day from month"):
        run_import(cfg, store, path)
    assert store.count_records() == 0
    assert run_import(cfg, store, path, dayfirst=True).imported == 2
    assert {r["local_time"][:10] for r in _records(store)} == {"2025-02-03", "2025-02-04"}
    s = run_import(cfg, store, path, dayfirst=False, force=True)
    assert s.imported == 2  # 2 and 3 April: different punches
    assert run_import(cfg, store, path, date_format="%d/%m/%Y %H:%M", force=True).duplicates == 2


def test_a_later_row_settles_the_day_month_order(tmp_path: Path) -> None:
    rows = "".join(f"1\t0{d}/02/2025\t08:0{d}\tMasuk\n" for d in range(1, 9))
    text = "No. Pekerja\tTarikh\tMasa\tStatus\n" + rows + "1\t25/02/2025\t08:00\tMasuk\n"
    cfg = make_config(tmp_path, {**MALAY_COLUMNS, "chunk_rows": 100})
    store = open_store(cfg)
    s = run_import(cfg, store, write(tmp_path / "late.txt", text))
    assert s.imported == 9 and s.time_format.startswith("%d/%m/%Y")


# --- messy rows ---------------------------------------------------------------------------------


def test_title_blank_repeated_header_summary_skipped_and_bad_rows_quarantined(
    tmp_path: Path,
) -> None:
    text = (
        "Laporan Kehadiran Januari 2025\n"  # line 1: title
        "\n"  # 2
        "No. Pekerja\tNama\tTarikh\tMasa\tStatus\n"  # 3: header
        "00012\tSiti\t13/02/2025\t08:01 AM\tMasuk\n"  # 4
        "\t\t\t\t\n"  # 5 blank
        "No. Pekerja\tNama\tTarikh\tMasa\tStatus\n"  # 6 repeated header
        "00012\tSiti\t31/02/2025\t05:31 PM\tKeluar\n"  # 7 no such day
        "00013\tAli\t13/02/2025\t05:31 PM\tRehat panjang\n"  # 8 unknown punch
        "00014\tAbu\t14/02/2025\t09:00 AM\tMasuk\textra\n"  # 9 too many fields
        "\tBadrul\t14/02/2025\t09:00 AM\tMasuk\n"  # 10 no id
        "00015\tAmin\t14/02/2025\t09:00 AM\tMasuk\n"  # 11
        "Jumlah\t\t\t\t3\n"  # 12 summary
        "TOTAL: 3 rekod\n"  # 13 summary
    )
    cfg = make_config(tmp_path, MALAY_COLUMNS)
    store = open_store(cfg)
    s = run_import(cfg, store, write(tmp_path / "messy.txt", text))
    assert (s.imported, s.quarantined, s.skipped) == (2, 4, 4)
    lines = {line: reason for line, reason in s.problems}
    assert sorted(lines) == [7, 8, 9, 10]
    assert "cannot read time" in lines[7]
    assert "unknown punch type" in lines[8]
    assert "too many fields" in lines[9]
    assert "no user id or card" in lines[10]
    items = store.quarantine_items()
    assert sorted(i["source"]["line"] for i in items) == [7, 8, 9, 10]
    assert {i["source"]["file"] for i in items} == {"messy.txt"}


def test_importing_again_adds_no_quarantine_items(tmp_path: Path) -> None:
    """A forced re-import (or one after a crash) rejects the same rows again: they are the
    items already in quarantine, not new ones; the summary still counts them."""
    text = MALAY_TSV + (
        "00013\tAli\t31/02/2025\t05:31 PM\tKeluar\n"  # no such day (read before normalising)
        "00014\tAbu\t\t\tMasuk\n"  # no time
        "00015\tAmin\t13/02/2025\t09:31 AM\tLewat\n"  # a word normalisation does not know
    )
    store, first = _import_malay(tmp_path, "bad.txt", text)
    cfg = make_config(tmp_path, MALAY_COLUMNS)
    again = run_import(cfg, store, tmp_path / "bad.txt", force=True)
    assert first.quarantined == again.quarantined == 3 and again.duplicates == 2
    items = store.quarantine_items()
    assert sorted(i["source"]["line"] for i in items) == [4, 5, 6]
    assert "punch" in next(i for i in items if i["source"]["line"] == 6)["source"]


def test_ids_and_names_that_contain_a_summary_word_are_rows(tmp_path: Path) -> None:
    """Only a first cell that starts with a summary word (a whole word) is a summary row: "SUM01",
    "Summit", "A-TOTAL" and "Countess" are data (the word search over the chunk only picks
    candidates for the exact per-cell test)."""
    text = (
        "No. Pekerja\tNama\tTarikh\tMasa\tStatus\n"
        "SUM01\tSiti\t13/02/2025\t08:01 AM\tMasuk\n"
        "A-TOTAL\tAli\t13/02/2025\t08:02 AM\tMasuk\n"
        "00016\tCountess\t13/02/2025\t08:03 AM\tMasuk\n"
        "Summit\tAbu\t13/02/2025\t08:04 AM\tMasuk\n"
        "Jumlah\t\t\t\t4\n"
    )
    store, s = _import_malay(tmp_path, "words.txt", text)
    assert (s.imported, s.skipped, s.quarantined) == (4, 1, 0), s.problems
    users = sorted(r["source_user_id"] for r in _records(store))
    assert users == ["00016", "A-TOTAL", "SUM01", "Summit"]


def test_line_numbers_count_the_lines_inside_quoted_fields(tmp_path: Path) -> None:
    """A quoted note that spans lines (an HR export's remarks column) moves every later row down
    by its extra lines; quarantine and records name the physical line, across chunks too."""
    header = "No. Pekerja,Nama,Tarikh,Masa,Status,Catatan\r\n"
    rows, expect_bad, expect_user_line = [], {}, {}
    line = 2
    for i in range(260):  # three chunks of 100 rows
        user = f"{i:05d}"
        note = f'"cuti separuh hari\r\nbalik {i}\nok"' if i % 7 == 0 else "biasa"
        status = "Rehat panjang" if i % 50 == 49 else "Masuk"
        rows.append(f"{user},Siti,13/02/2025,08:{i % 60:02d} AM,{status},{note}\r\n")
        if status == "Masuk":
            expect_user_line[user] = line
        else:
            expect_bad[line] = user
        line += 3 if i % 7 == 0 else 1
    cfg = make_config(tmp_path, {**MALAY_COLUMNS, "chunk_rows": 100})
    store = open_store(cfg)
    s = run_import(cfg, store, write(tmp_path / "nota.csv", header + "".join(rows)))
    assert (s.imported, s.quarantined) == (len(expect_user_line), len(expect_bad)), s.problems
    items = store.quarantine_items()
    assert {i["source"]["line"]: i["raw"]["No. Pekerja"] for i in items} == expect_bad
    got = {r["source_user_id"]: r["source"]["line"] for r in _records(store)}
    assert got == expect_user_line
    lines = (tmp_path / "nota.csv").read_text().splitlines()
    assert all(lines[n - 1].startswith(u) for u, n in got.items())


def test_implausible_time_is_quarantined(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    text = attlog_line("1", "1999-12-31 08:00:00") + attlog_line("1", "2025-01-02 08:00:00")
    s = run_import(cfg, store, write(tmp_path / "x_attlog.dat", text))
    assert (s.imported, s.quarantined) == (1, 1)
    assert s.problems[0][0] == 1 and "before 2000" in s.problems[0][1]


# --- idempotency ----------------------------------------------------------------------------


def test_reimport_and_overlapping_exports_add_no_duplicates(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, {"chunk_rows": 100})
    store = open_store(cfg)
    first = "".join(
        attlog_line(str(u), f"2025-03-0{d} 08:00:0{u}") for d in (1, 2) for u in range(5)
    )
    second = "".join(
        attlog_line(str(u), f"2025-03-0{d} 08:00:0{u}") for d in (2, 3) for u in range(5)
    )
    a = run_import(cfg, store, write(tmp_path / "a_attlog.dat", first))
    assert (a.imported, a.duplicates) == (10, 0)
    again = run_import(cfg, store, tmp_path / "a_attlog.dat")
    assert again.already_imported is not None and store.count_records() == 10
    b = run_import(cfg, store, write(tmp_path / "b_attlog.dat", second))
    assert (b.imported, b.duplicates) == (5, 5)
    forced = run_import(cfg, store, tmp_path / "b_attlog.dat", force=True)
    assert (forced.imported, forced.duplicates) == (0, 10)
    assert store.count_records() == 15


def test_dry_run_commits_nothing(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    s = run_import(
        cfg,
        store,
        write(tmp_path / "d_attlog.dat", attlog_line("1", "2025-01-02 08:00:00")),
        dry_run=True,
    )
    assert s.imported == 1 and store.count_records() == 0
    assert run_import(cfg, store, tmp_path / "d_attlog.dat").imported == 1


def test_device_column_maps_rows_to_configured_devices(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path,
        {"device_column": "device_no", "devices": {"1": "lobby", "2": "gate"}},
        more_devices=[
            {"id": "lobby", "kind": "csv", "office": "hq"},
            {"id": "gate", "kind": "csv", "office": "hq", "timezone": "Asia/Kuching"},
        ],
    )
    store = open_store(cfg)
    text = (
        "1\t2025-01-02 08:00:00\t1\t0\t1\t0\r\n"
        "1\t2025-01-02 08:00:00\t2\t0\t1\t0\r\n"
        "1\t2025-01-02 08:00:00\t9\t0\t1\t0\r\n"
    )
    s = run_import(cfg, store, write(tmp_path / "m_attlog.dat", text))
    assert (s.imported, s.quarantined) == (2, 1)
    assert {r["device_id"] for r in _records(store)} == {"lobby", "gate"}
    assert "unknown device '9'" in s.problems[0][1]


def test_a_midnight_punch_in_a_workbook_date_time_column_is_read(tmp_path: Path) -> None:
    """The workbook reader gives a date-time cell at exactly 00:00:00 as a bare date; in a column
    of date-times that is midnight. A column holding dates only still cannot give a time."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Employee ID", "Time", "Punch State"])
    ws.append(["5", dt.datetime(2025, 2, 3, 23, 59, 59), "Check Out"])
    ws.append(["5", dt.datetime(2025, 2, 4, 0, 0, 0), "Check In"])
    wb.save(tmp_path / "night.xlsx")
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    s = run_import(cfg, store, tmp_path / "night.xlsx")
    assert (s.imported, s.quarantined) == (2, 0), s.problems
    times = sorted(r["local_time"] for r in _records(store))
    assert times == ["2025-02-03T23:59:59+08:00", "2025-02-04T00:00:00+08:00"]
    only_dates = openpyxl.Workbook()
    only_dates.active.append(["Employee ID", "Time", "Punch State"])
    only_dates.active.append(["5", dt.date(2025, 2, 4), "Check In"])
    only_dates.save(tmp_path / "dates.xlsx")
    with pytest.raises(FileRefused):
        run_import(cfg, store, tmp_path / "dates.xlsx")


def test_mac_1904_workbook_and_named_sheet(tmp_path: Path) -> None:
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    wb = openpyxl.Workbook()
    wb.epoch = CALENDAR_MAC_1904
    wb.active.title = "Cover"
    wb.active.append(["Laporan"])
    ws = wb.create_sheet("Transactions")
    ws.append(["Employee ID", "Time", "Punch State"])
    ws.append(["5", 44229.3340277778, "Check In"])  # 1904 system: 2025-02-03 08:01:00
    path = tmp_path / "mac.xlsx"
    wb.save(path)
    cfg = make_config(tmp_path, {"sheet": "Transactions"})
    store = open_store(cfg)
    assert run_import(cfg, store, path).imported == 1
    assert _records(store)[0]["local_time"] == "2025-02-03T08:01:00+08:00"


def test_every_sheet_with_a_header_is_imported_and_named_in_the_source(tmp_path: Path) -> None:
    path = split_export(tmp_path / "split.xlsx")
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    s = run_import(cfg, store, path)
    assert s.sheets == ["Jan", "Feb"] and "(sheets Jan, Feb)" in s.line()
    assert (s.imported, s.quarantined) == (3, 1), s.problems
    assert s.problems == [(4, "sheet 'Feb': unknown punch type 'Lunch?'")]
    sources = sorted((r["source"]["sheet"], r["source"]["line"]) for r in _records(store))
    assert sources == [("Feb", 3), ("Jan", 3), ("Jan", 4)]  # sheet rows
    [item] = store.quarantine_items()
    where = {k: item["source"][k] for k in ("file", "sheet", "line")}  # (+ the punch read)
    assert where == {"file": "split.xlsx", "sheet": "Feb", "line": 4}
    assert run_import(cfg, store, path).already_imported  # the fingerprint after both sheets
    (tmp_path / "one").mkdir()
    one = make_config(tmp_path / "one", {"sheet": "Jan"})
    only = open_store(one)
    assert run_import(one, only, path).imported == 2


def test_a_workbook_with_no_sheet_to_import_is_refused_naming_each(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.title = "Cover"
    wb.active.append(["Laporan"])
    wb.create_sheet("Notes").append(["nothing here"])
    wb.save(tmp_path / "empty.xlsx")
    cfg = make_config(tmp_path)
    with pytest.raises(FileRefused, match="no sheet to import.*'Cover'.*'Notes'"):
        run_import(cfg, open_store(cfg), tmp_path / "empty.xlsx")


def test_the_workbook_tells_day_from_month_not_each_sheet(tmp_path: Path) -> None:
    """A sheet whose dates all read both ways takes the order its sibling sheets settle
    (the file can tell); when none can, the whole workbook is refused, not passed over."""

    def book(name: str, sheets: dict[str, list[str]]) -> Path:
        wb = openpyxl.Workbook()
        wb.active.title = "Cover"
        for title, times in sheets.items():
            ws = wb.create_sheet(title)
            ws.append(["Employee ID", "Time", "Punch State"])
            for t in times:
                ws.append(["5", t, "Check In"])
        wb.save(tmp_path / name)
        return tmp_path / name

    cfg = make_config(tmp_path)
    store = open_store(cfg)
    told = book(
        "told.xlsx",
        {"Jan": ["13/01/2025 08:01"], "Feb": ["03/02/2025 08:01"], "Mac": ["04/03/2025 08:01"]},
    )
    assert run_import(cfg, store, told).imported == 3
    days = sorted(r["local_time"][:10] for r in _records(store))
    assert days == ["2025-01-13", "2025-02-03", "2025-03-04"]
    untold = book("untold.xlsx", {"Feb": ["03/02/2025 08:01"], "Mac": ["04/03/2025 08:01"]})
    with pytest.raises(FileRefused, match="cannot tell day from month"):
        run_import(cfg, store, untold)
    assert store.count_records() == 3


def test_a_header_alone_is_refused_as_having_no_times(tmp_path: Path) -> None:
    with pytest.raises(FileRefused, match="kosong.txt: no time values found"):
        _import_malay(tmp_path, "kosong.txt", MALAY_TSV.splitlines()[0] + "\n")


def test_quarantined_rows_can_be_replayed(tmp_path: Path) -> None:
    from spotme_hub.pipeline.replay import replay_item

    cfg = make_config(tmp_path, {**MALAY_COLUMNS, "punch": {"Lewat": "in"}})
    store = open_store(cfg)
    text = (
        "No. Pekerja\tTarikh\tMasa\tStatus\n"
        "1\t2025-02-13\t08:01\tMasuk\n"
        "2\t13/02/2025\t08:02\tMasuk\n"  # another date form than the file's: quarantined
        "3\t2025-02-13\t08:03\tLewat\n"
    )
    s = run_import(cfg, store, write(tmp_path / "r.txt", text))
    assert (s.imported, s.quarantined) == (2, 1)
    [item] = store.quarantine_items()
    assert item["source"] == {"file": "r.txt", "line": 3}
    outcome = replay_item(cfg, store, item)
    assert outcome.status == "replayed", outcome.detail
    rec = next(r for r in store.iter_records() if r["source_user_id"] == "2")
    assert rec["local_time"] == "2025-02-13T08:02:00+08:00"
    assert rec["source"] == {"file": "r.txt", "line": 3}
    assert store.quarantine_count() == 0


def test_a_row_with_an_unknown_punch_word_replays_once_the_device_knows_it(tmp_path: Path) -> None:
    """Quarantined by normalisation (its time already read, here from Excel serials), then the
    csv device's `punch:` map learns the word: the replay uses the device's map, as imports do."""
    from spotme_hub.pipeline.replay import replay_item

    wb = openpyxl.Workbook()
    wb.active.append(["Employee ID", "Date", "Punch Time", "Punch State"])
    wb.active.append(["5", 45691, 0.3340277777777778, "Check In"])
    wb.active.append(["6", 45691, 0.3340277777777778, "Lewat"])
    wb.save(tmp_path / "r.xlsx")
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    assert run_import(cfg, store, tmp_path / "r.xlsx").quarantined == 1
    [item] = store.quarantine_items()
    assert replay_item(cfg, store, item).status == "open"  # nothing changed yet
    fixed = make_config(tmp_path, {"punch": {"Lewat": "in"}})
    outcome = replay_item(fixed, store, item)
    assert outcome.status == "replayed", outcome.detail
    rec = next(r for r in store.iter_records() if r["source_user_id"] == "6")
    assert (rec["punch"], rec["local_time"]) == ("in", "2025-02-03T08:01:00+08:00")


@pytest.mark.parametrize(
    "rows", [3, 1500]
)  # a small file, and one where only short rows are read again
def test_a_time_cut_inside_the_last_line_is_quarantined_not_read_short(
    tmp_path: Path, rows: int
) -> None:
    """A transfer cut off inside the last line (`…17:4`) is not 17:04: the row does not match
    the file's format whole, so it is quarantined with its line."""
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    whole = "".join(attlog_line("1", f"2026-10-03 08:{i // 60 % 60:02d}:{i % 60:02d}")
                    for i in range(rows))  # fmt: skip
    text = whole + "        7\t2026-10-03 17:4"  # no newline: the file ends there
    s = run_import(cfg, store, write(tmp_path / "7_attlog.dat", text))
    assert (s.rows_read, s.imported, s.quarantined) == (rows + 1, rows, 1)
    (item,) = store.quarantine_items("open")
    assert item["source"]["line"] == rows + 1
    assert "cannot read time '2026-10-03 17:4'" in item["reason"]
    assert not [r for r in store.iter_records() if r["source_user_id"] == "7"]
    # a replay reads the same row the same way
    from spotme_hub.pipeline.replay import replay_item

    again = replay_item(cfg, store, item)
    assert again.status == "open" and again.detail.startswith("still rejected: cannot read time")


def test_minutes_take_two_digits_in_a_12_hour_export_too(tmp_path: Path) -> None:
    text = MALAY_TSV + "00012\tSiti binti Abu\t14/02/2025\t5:3 PM\tKeluar\n"
    store, s = _import_malay(tmp_path, "kehadiran.tsv", text)
    assert (s.imported, s.quarantined) == (2, 1)
    assert "5:3 PM" in store.quarantine_items("open")[0]["reason"]


def test_a_refusal_says_what_the_file_looks_like_and_what_would_read_it(tmp_path: Path) -> None:
    import os

    cfg = make_config(tmp_path)
    store = open_store(cfg)
    noise = os.urandom(600).replace(b"PK", b"pk").replace(b"\xd0\xcf", b"dc")
    for name in ("export.csv", "7_attlog.dat"):
        with pytest.raises(FileRefused) as err:
            run_import(cfg, store, _bytes(tmp_path / name, noise))
        msg = str(err.value)
        assert "binary data, not a text export or a workbook; it starts " in msg
        assert len(msg) < 200 and "\\x" not in msg  # a short hex excerpt, not the bytes
    with pytest.raises(FileRefused, match=r"not a workbook, although its name ends \.xlsx"):
        run_import(cfg, store, _bytes(tmp_path / "report.xlsx", noise))
    malay = "No. Pekerja,Nama,Tarikh,Masa,Status\n00012,Siti,13/02/2025,08:01 AM,Masuk\n"
    with pytest.raises(FileRefused) as err:
        run_import(cfg, store, write(tmp_path / "kehadiran.csv", malay))
    msg = str(err.value)
    assert "no preset recognises it" in msg and "'No. Pekerja, Nama, Tarikh, Masa, Status'" in msg
    assert "zkteco_attlog" in msg and "biotime" in msg and "preset: generic" in msg
    # a time no format reads: a short escaped excerpt, and the way out
    text = attlog_line("1", "07-Dec-26 8h01\x07") * 3
    with pytest.raises(FileRefused) as err:
        run_import(cfg, store, write(tmp_path / "9_attlog.dat", text))
    assert "'07-Dec-26 8h01\\x07'" in str(err.value) and "--date-format" in str(err.value)
    assert store.count_records() == 0


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_the_summary_says_which_lines_were_skipped_and_why(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    text = ("SN0012345\r\n" + attlog_line("1", "2026-10-03 08:59:01") + "\r\n"
            + attlog_line("1", "2026-10-03 17:59:01") + "C3A9\r\n")  # fmt: skip
    s = run_import(cfg, store, write(tmp_path / "7_attlog.dat", text))
    assert (s.imported, s.skipped) == (2, 3)
    assert s.skips == [(1, "a terminal's serial-number or checksum line"),
                       (5, "a terminal's serial-number or checksum line")]  # fmt: skip


def test_a_constant_token_after_every_time_is_recognised_and_said(tmp_path: Path) -> None:
    """Some standalone terminals write `02/12/2024 5:15 A12P12`: a word that every time carries
    and no date is made of is taken out (the summary says so); one that varies is not guessed."""
    columns = {"columns": {"user_id": "No. Pekerja", "time": "Masa", "punch": "Status"},
               "preset": "generic", "dayfirst": False}  # fmt: skip
    cfg = make_config(tmp_path, columns)
    store = open_store(cfg)
    text = ("No. Pekerja,Masa,Status\n1,02/12/2024 5:15 A12P12,in\n"
            "1,02/13/2024 17:20 A12P12,out\n")  # fmt: skip
    s = run_import(cfg, store, write(tmp_path / "t.csv", text))
    assert (s.imported, s.quarantined) == (2, 0)
    assert s.time_format == "%m/%d/%Y %H:%M (the constant 'A12P12' removed from every time)"
    assert sorted(r["local_time"] for r in _records(store)) == [
        "2024-02-12T05:15:00+08:00", "2024-02-13T17:20:00+08:00"]  # fmt: skip
    varies = "No. Pekerja,Masa,Status\n1,02/12/2024 5:15 A12P12,in\n1,02/13/2024 17:20 B7,out\n"
    with pytest.raises(FileRefused, match="--date-format"):
        run_import(cfg, store, write(tmp_path / "v.csv", varies))
