"""Presets: each export format as (where the header is, which columns) + ONE shared `Mapping`.

* ``zkteco_attlog`` — USB ``<dev>_attlog.dat``: no header, tab-separated, right-aligned PIN,
  4–6 fields (PIN, time, device no, status 0..5, verify, workcode); the SSR variant's serial-number
  first line and checksum last line are skipped.
* ``biotime`` — ZKBioTime "Transactions" (CSV or XLSX): a title row, then a header with separate
  ``Date`` and ``Punch Time`` columns and ``Punch State`` words (``Check In``/``Check Out``).
* ``generic`` — an explicit `columns` mapping (the same Mapping as MQTT; paths are column names),
  e.g. Malay headers ``No. Pekerja``, ``Tarikh`` + ``Masa``, ``Status`` = ``Masuk``/``Keluar``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...normalize.mapping import FieldSpec, Mapping
from .errors import NothingToImport
from .options import CsvOptions
from .reader import FileRefused, Table, find_header

TIME_KEY = "@time"  # the pre-step's joined, parsed time value in each row document
ATTLOG_NAMES = ["pin", "time", "device_no", "status", "verify", "workcode"]

_BIOTIME_USER = ["Employee ID", "Personnel ID", "Emp Code", "emp_code", "Employee No.", "ID"]
_BIOTIME_TIME = ["Punch Time", "Time"]
_BIOTIME_STATE = ["Punch State", "State", "Status"]
_BIOTIME_VERIFY = ["Verify Type", "Verification", "Verify Mode"]
_BIOTIME_SERIAL = ["Terminal SN", "Device Serial", "Serial Number"]


@dataclass
class Plan:
    """How to read one file: header position, column names, the time pre-step and the mapping."""

    preset: str
    names: list[str]
    data_start: int  # index of the first data row/line
    time_columns: list[str]  # one column, or [date, time]
    mapping: Mapping  # time → TIME_KEY, bad_time: quarantine
    header_names: set[str]  # a data row that repeats these is a page header (skipped)
    edge_lines: bool = False  # attlog: a one-field first/last line is a serial/checksum


#: What `preset: auto` knows, for a refusal to list.
KNOWN = (
    "the presets are zkteco_attlog (a terminal's USB attlog.dat: tab-separated PIN, date-time, "
    "status, verify), biotime (a ZKBioTime export: a header with one of "
    f"{', '.join(_BIOTIME_USER)} and one of {', '.join(_BIOTIME_TIME)}); for any other columns "
    "use `preset: generic` with a `columns` mapping (docs/import.md)"
)


def plan_for(table: Table, opts: CsvOptions) -> Plan:
    preset = opts.preset
    if preset == "auto":
        if opts.columns is not None:
            preset = "generic"
        elif table.path.name.lower().endswith(".dat") or _looks_like_attlog(table):
            preset = "zkteco_attlog"
        elif _biotime_header(table) is None:
            raise NothingToImport(
                f"{table.path.name}: no preset recognises it — {table.looks()}; {KNOWN}"
            )
        else:
            preset = "biotime"
    if preset == "zkteco_attlog":
        return _attlog(table, opts)
    if preset == "biotime":
        return _biotime(table, opts)
    return _generic(table, opts)


def _finish(mapping: Mapping, opts: CsvOptions) -> Mapping:
    update: dict[str, object] = {
        "time": FieldSpec.model_validate({"path": TIME_KEY}),
        "bad_time": "quarantine",
    }
    if opts.timezone:
        update["timezone"] = opts.timezone
    return mapping.model_copy(update=update)


def _looks_like_attlog(table: Table) -> bool:
    rows = [r for r in table.preview if len(r) > 1][:5]
    return bool(rows) and all(r[0].strip().isdigit() and len(r) in (4, 5, 6) for r in rows)


def _attlog(table: Table, opts: CsvOptions) -> Plan:
    if table.kind == "text" and opts.delimiter is None:
        table.delimiter = "\t"
    mapping = Mapping.model_validate(
        {"user_id": "pin", "time": "time", "punch": "status", "verify": "verify"}
    )
    return Plan(
        "zkteco_attlog", list(ATTLOG_NAMES), 0, ["time"], _finish(mapping, opts), set(),
        edge_lines=True,
    )  # fmt: skip


def _pick(names: list[str], options: list[str]) -> str | None:
    low = {n.lower(): n for n in names}
    for o in options:
        if o.lower() in low:
            return low[o.lower()]
    return None


def _biotime_header(table: Table) -> tuple[int, list[str]] | None:
    def wanted(names: list[str]) -> bool:
        return _pick(names, _BIOTIME_USER) is not None and _pick(names, _BIOTIME_TIME) is not None

    return find_header(table.preview, wanted)


def _biotime(table: Table, opts: CsvOptions) -> Plan:
    found = _biotime_header(table)
    if found is None:
        raise NothingToImport(
            f"{table.path.name}: no BioTime header (needs one of {_BIOTIME_USER} and "
            f"{_BIOTIME_TIME}) — {table.looks()}; use preset generic with a `columns` mapping"
        )
    index, names = found
    user, time_col = _pick(names, _BIOTIME_USER), _pick(names, _BIOTIME_TIME)
    assert user and time_col
    date_col = opts.date_column or _pick(names, ["Date", "Punch Date"])
    spec: dict[str, object] = {"user_id": user, "time": time_col}
    if state := _pick(names, _BIOTIME_STATE):
        spec["punch"] = state
    if verify := _pick(names, _BIOTIME_VERIFY):
        spec["verify"] = verify
    if serial := _pick(names, _BIOTIME_SERIAL):
        spec["device_serial"] = serial
    mapping = Mapping.model_validate(spec)
    cols = [date_col, time_col] if date_col else [time_col]
    return Plan("biotime", names, index + 1, cols, _finish(mapping, opts), set(names))


def _generic(table: Table, opts: CsvOptions) -> Plan:
    mapping = opts.columns
    if mapping is None:
        raise FileRefused("preset generic needs a `columns` mapping")
    if mapping.time is None or mapping.time.path is None:
        raise FileRefused("the `columns` mapping needs a time column (`time: <column>`)")
    needed = [
        spec.path
        for spec in (mapping.user_id, mapping.card, mapping.time, mapping.punch)
        if spec is not None and spec.path is not None
    ]
    if opts.date_column:
        needed.append(opts.date_column)
    found = find_header(table.preview, lambda names: all(n in names for n in needed))
    if found is None:
        raise NothingToImport(
            f"{Path(table.path).name}: no header row with the columns {needed} in the first "
            f"{len(table.preview)} rows"
        )
    index, names = found
    cols = [opts.date_column, mapping.time.path] if opts.date_column else [mapping.time.path]
    return Plan("generic", names, index + 1, cols, _finish(mapping, opts), set(names))
