"""Any text in an export's place is imported or refused with a clear message, never a crash,
and importing it again adds nothing (hypothesis over pieces of real exports and of damage)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fileimport_helpers import MALAY_COLUMNS, make_config, open_store, run_import
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotme_hub.adapters.csv.reader import FileRefused

PIECES = [
    "1", "00012", "Siti", "2025-02-13", "13/02/2025", "02/13/2025", "08:01", "8:01 PM",
    "08:01:00", "2025-02-13 08:01:00", "45691.5", "Masuk", "Keluar", "Check In", "Lewat",
    "Jumlah", "Total", "No. Pekerja", "Tarikh", "Masa", "Status", "Employee ID", "Punch Time",
    "Date", "Punch State", '"', '""', ',"', '\t"', '"Siti', "\t", ",", ";", "\n", "\r\n", " ",
    "é", "\x00", "<",
    "<table>", "PK\x03\x04",
]  # fmt: skip
HEADERS = [
    "",
    "No. Pekerja\tNama\tTarikh\tMasa\tStatus\n",
    "Employee ID,Date,Punch Time,Punch State\n",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.sampled_from(HEADERS),
    body=st.lists(st.sampled_from(PIECES), max_size=60),
    name=st.sampled_from(["x.csv", "x.txt", "7_attlog.dat", "x.xls"]),
    malay=st.booleans(),
)
def test_any_text_is_imported_or_refused_and_a_second_import_adds_nothing(
    header: str, body: list[str], name: str, malay: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(Path(tmp), MALAY_COLUMNS if malay else {})
        store = open_store(cfg)
        path = Path(tmp) / name
        path.write_text(header + "".join(body), encoding="utf-8")
        try:
            first = run_import(cfg, store, path)
        except FileRefused as exc:
            assert str(exc).strip()
            store.close()
            return
        again = run_import(cfg, store, path, force=True)
        assert again.imported == 0 and again.quarantined == first.quarantined
        assert store.count_records() == first.imported
        assert len(store.quarantine_items()) == first.quarantined
        store.close()
