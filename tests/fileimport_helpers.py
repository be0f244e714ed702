"""Shared helpers for the CSV/Excel import tests: a config, a store and export files written here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spotme_hub.adapters.csv.importer import ImportSummary, import_file, options_for
from spotme_hub.config import HubConfig
from spotme_hub.service import config_from_dict, tables
from spotme_hub.store import Store


def make_config(tmp: Path, device_options: dict[str, Any] | None = None, **extra: Any) -> HubConfig:
    devices = [{"id": "usb", "kind": "csv", "office": "hq", **(device_options or {})}]
    devices += extra.pop("more_devices", [])
    data = {
        "hub": {"database": f"sqlite:///{tmp / 'hub.db'}"},
        "offices": [{"id": "hq", "latitude": 2.9264, "longitude": 101.6964, "geofence_m": 150}],
        "devices": devices,
        "employees": [
            {"id": "J0001", "user_ids": ["1"]},
            {"id": "J0012", "user_ids": ["00012"]},
        ],
        **extra,
    }
    return config_from_dict(data, tmp)


def open_store(cfg: HubConfig) -> Store:
    store = Store(cfg.database_url)
    store.create_all(tables())
    return store


def run_import(
    cfg: HubConfig, store: Store, path: Path, device: str = "usb", **overrides: Any
) -> ImportSummary:
    dev = next(d for d in cfg.devices if d.id == device)
    force = overrides.pop("force", False)
    dry_run = overrides.pop("dry_run", False)
    writer = overrides.pop("writer", "auto")
    return import_file(
        cfg, store, path, dev, options_for(dev, **overrides), force=force, dry_run=dry_run,
        writer=writer,
    )  # fmt: skip


def attlog_line(pin: str, when: str, status: int = 0, verify: int = 1, fields: int = 6) -> str:
    cells = [f"{pin:>9}", when, "1", str(status), str(verify), "0"][:fields]
    return "\t".join(cells) + "\r\n"


def split_export(path: Path) -> Path:
    """A cover sheet, then a BioTime export split over two sheets (a bad row on the second)."""
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = "Ringkasan"
    wb.active.append(["Laporan Kehadiran", "Jan-Feb 2025"])
    for name, day, states in (("Jan", 13, ["Check In", "Check Out"]),
                              ("Feb", 14, ["Check In", "Lunch?"])):  # fmt: skip
        ws = wb.create_sheet(name)
        ws.append(["Transaction Report"])
        ws.append(["Employee ID", "First Name", "Date", "Punch Time", "Punch State"])
        for k, state in enumerate(states):
            ws.append(
                ["00012", "Siti", f"2025-0{1 + (name == 'Feb')}-{day}", f"0{8 + k}:00", state]
            )
    wb.save(path)
    return path


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


BIOTIME_CSV = (
    "Transaction Report,,,,,\n"
    "Employee ID,First Name,Department,Date,Punch Time,Punch State,Verify Type,Terminal SN\n"
    "00012,Siti,HR,2025-02-03,08:01:00,Check In,Fingerprint,CQZ7224460246\n"
    "00012,Siti,HR,2025-02-03,17:31:00,Check Out,Face,CQZ7224460246\n"
    "1,Tan,IT,2025-02-04,8:05:00,Check In,Card,CQZ7224460246\n"
)

MALAY_TSV = (
    "No. Pekerja\tNama\tTarikh\tMasa\tStatus\n"
    "00012\tSiti binti Abu\t13/02/2025\t08:01 AM\tMasuk\n"
    "00012\tSiti binti Abu\t13/02/2025\t05:31 PM\tKeluar\n"
)

MALAY_COLUMNS = {
    "columns": {
        "user_id": "No. Pekerja",
        "time": "Masa",
        "punch": {"path": "Status", "map": {"Masuk": "in", "Keluar": "out"}},
    },
    "date_column": "Tarikh",
    "preset": "generic",
}
