"""`spotme-hub import` on the project's sample exports in fixtures/ (summary, refusal, dry run)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from spotme_hub.cli import cli

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

CONFIG = """
hub:
  database: sqlite:///{db}
offices:
  - id: hq
employees:
  - {{id: J1, user_ids: ["1"]}}
devices:
  - id: usb
    kind: csv
    office: hq
  - id: hr
    kind: csv
    office: hq
    preset: generic
    columns:
      user_id: "No. Pekerja"
      time: Masa
      punch: {{path: Status, map: {{Masuk: in, Keluar: out}}}}
    date_column: Tarikh
"""


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG.format(db=tmp_path / "hub.db"))
    return cfg


def _run(*args: str):
    return CliRunner().invoke(cli, ["import", *args], catch_exceptions=False)


def test_import_fixtures_with_summary_and_idempotency(tmp_path: Path) -> None:
    cfg = str(_config(tmp_path))
    att = _run(str(FIXTURES / "7_attlog.dat"), "-c", cfg, "--device", "usb")
    assert att.exit_code == 0, att.output
    assert "rows read 24" in att.output and "imported 24" in att.output
    assert "zkteco_attlog" in att.output and "utf-8" in att.output
    bio = _run(str(FIXTURES / "biotime_transactions.csv"), "-c", cfg, "--device", "usb")
    assert "imported 12" in bio.output and "skipped 1" in bio.output  # the Total row
    again = _run(str(FIXTURES / "7_attlog.dat"), "-c", cfg, "--device", "usb")
    assert "already imported" in again.output
    assert "committed by a worker thread" in " ".join(att.output.split())  # a small file
    forced = _run(str(FIXTURES / "7_attlog.dat"), "-c", cfg, "--device", "usb", "--force",
                  "--writer", "process")  # fmt: skip
    assert forced.exit_code == 0, forced.output
    assert "committed by a worker process" in " ".join(forced.output.split())
    assert "imported 0" in forced.output and "duplicates 24" in forced.output


def test_ambiguous_fixture_is_refused_until_dayfirst_given(tmp_path: Path) -> None:
    cfg = str(_config(tmp_path))
    path = str(FIXTURES / "kehadiran_pekerja.csv")
    refused = _run(path, "-c", cfg, "--device", "hr")
    assert refused.exit_code == 1
    assert "cannot tell day from month" in " ".join(refused.output.split())
    dry = _run(path, "-c", cfg, "--device", "hr", "--dayfirst", "--dry-run")
    assert dry.exit_code == 0 and "would import 12" in dry.output
    done = _run(path, "-c", cfg, "--device", "hr", "--dayfirst")
    assert "imported 12" in done.output and "skipped 1" in done.output  # the Jumlah row
    records = CliRunner().invoke(cli, ["records", "-c", cfg, "--format", "json", "--limit", "0"])
    assert records.output.count('"device_id": "hr"') == 12
    assert '"local_time": "2026-11-03T17:46:00+08:00"' in records.output


def test_a_damaged_file_is_refused_and_the_next_one_imported(tmp_path: Path) -> None:
    """A quote that never closes (it would swallow the rest of the file) and a workbook cut
    short are refused with what is wrong; the files after them are imported; exit 1."""
    cfg = str(_config(tmp_path))
    quote = tmp_path / "quote.csv"
    quote.write_text(
        "Employee ID,Date,Punch Time,Punch State\n"
        '1,2025-02-13,08:01,"Check In\n'  # the quote opens and never closes
        "1,2025-02-13,17:01,Check Out\n"
    )
    cut = tmp_path / "cut.xlsx"
    cut.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    out = _run(str(quote), str(cut), str(FIXTURES / "7_attlog.dat"), "-c", cfg, "--device", "usb")
    text = " ".join(out.output.split())
    assert out.exit_code == 1, out.output
    assert "refused quote.csv" in text and "a quote that opens a field must close it" in text
    assert "refused cut.xlsx" in text and "cannot read the workbook" in text
    assert "imported 24" in text


def test_every_bad_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    export = tmp_path / "kehadiran.csv"
    export.write_text("No. Pekerja,Tarikh,Masa,Status\n1,13/02/2025,08:01 AM,Masuk\n")
    cases = {
        ("--dayfirst", "--monthfirst"): "--dayfirst and --monthfirst contradict each other",
        ("--timezone", "Mars/Olympus"): "--timezone: unknown IANA time zone 'Mars/Olympus'",
        ("--preset", "generic"): "preset generic needs a `columns` mapping (--columns",
        ("--columns", "user_id"): "'user_id' is not FIELD=COLUMN",
        ("--columns", "user_id=No. Pekerja,tme=Masa"): "tme: unknown key (did you mean `time`?)",
    }
    for args, said in cases.items():
        res = CliRunner().invoke(cli, ["import", str(export), "-c", str(cfg), "--device", "usb",
                                       *args])  # fmt: skip
        assert res.exit_code == 2, (args, res.output)
        assert said in res.output and "Traceback" not in res.output, (args, res.output)
        assert "validation error" not in res.output and "pydantic" not in res.output
    # --columns gives the generic preset its mapping on the command line
    ok = CliRunner().invoke(cli, [
        "import", str(export), "-c", str(cfg), "--device", "usb", "--dayfirst",
        "--columns", "user_id=No. Pekerja,time=Masa,punch=Status", "--date-column", "Tarikh"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "preset generic" in ok.output and "imported 1" in ok.output
