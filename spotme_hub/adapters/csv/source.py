"""One export file as a stream of prepared chunks: row documents, parsed times, line numbers.

Shared by the bulk importer (`spotme-hub import`, vectorised path) and the `kind: csv` adapter
(row-wise path through `ctx.submit`): title rows, blank rows, repeated headers and summary rows
are skipped here; rows with extra fields, unknown devices or unreadable times are quarantined
here with their file and line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...config import Device, HubConfig
from ...record import Rejection
from .errors import NothingToImport, UndecidedDates
from .options import CsvOptions
from .presets import TIME_KEY, Plan, plan_for
from .reader import EXTRA_COLUMNS, FileRefused, Table, is_workbook, open_table
from .sheets import sheet_names
from .times import Ambiguous, TimeFormat, choose_format, parse, settle, time_values

SUMMARY_WORDS = ("jumlah", "total", "grand total", "sum", "count")


def map_unique(values: Any, fn: Any) -> np.ndarray:
    """fn over the distinct values only (exports repeat ids, dates, states a lot)."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    out = np.empty(len(uniques) + 1, dtype=object)
    out[:-1] = [fn(u) for u in uniques.tolist()]
    out[-1] = fn("")
    return out[codes]


_SUMMARY = re.compile(r"^\s*(" + "|".join(SUMMARY_WORDS) + r")\b", re.IGNORECASE)


def _is_summary(cell: str) -> bool:
    return bool(_SUMMARY.match(cell))


def _may_hold_summary(cells: np.ndarray) -> bool:
    """False when no cell can be a summary row's: no summary word anywhere in the cells joined
    and case-folded (what `_is_summary`'s case-blind regex matches folds to the word itself, so
    every cell it would find is found; the rest are sorted out by the exact per-cell test)."""
    try:
        folded = "\n".join(cells.tolist()).casefold()
    except TypeError:  # a cell that is not text (a spreadsheet's number): test each cell
        return True
    return any(word in folded for word in SUMMARY_WORDS)


def _filled(col: pd.Series) -> np.ndarray:
    return col.to_numpy(dtype=object) != ""


def fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@dataclass
class Prepared:
    """One chunk ready for either path, grouped by device."""

    docs: pd.DataFrame  # row documents: named columns (TIME_KEY, made from `times`, left out)
    times: np.ndarray  # datetime64[s], naive wall clock
    lines: list[int]
    devices: list[str]  # device id per row
    rejections: list[Rejection] = field(default_factory=list)
    skipped: int = 0
    skips: list[tuple[int, str]] = field(default_factory=list)  # (line, why): the first, not blank
    read: int = 0
    last: bool = False

    def documents(self) -> list[dict[str, Any]]:
        """Each row's whole document, TIME_KEY (ISO text) last, for the row-wise path."""
        times = np.datetime_as_string(self.times, unit="s").astype(object)
        return self.docs.assign(**{TIME_KEY: times}).to_dict("records")

    def by_device(self) -> Iterator[tuple[str, pd.DataFrame, np.ndarray, list[int]]]:
        """(device, its rows' documents without TIME_KEY, their times, their lines)."""
        if not len(self.docs):
            return
        if self.devices.count(self.devices[0]) == len(self.devices):  # one device: no copies
            yield self.devices[0], self.docs, self.times, self.lines
            return
        ids = pd.Series(self.devices)
        for dev, idx in ids.groupby(ids, sort=False).groups.items():
            rows = np.asarray(idx)
            yield (
                str(dev),
                self.docs.iloc[rows].reset_index(drop=True),
                self.times[rows],
                [self.lines[i] for i in rows.tolist()],
            )


def export_files(cfg: HubConfig, device: Device, opts: CsvOptions, path: Path) -> list[ExportFile]:
    """What to import from `path`: the file, or for a workbook of several sheets with no `sheet`
    set, every sheet that has the columns to import, in workbook order (a cover or summary sheet
    is passed over; an export split over sheets is read whole). Their sources name the sheet."""
    names = sheet_names(path) if opts.sheet is None and is_workbook(path) else []
    if len(names) <= 1:
        return [ExportFile(cfg, device, opts, path)]
    found, passed, undecided = [], [], []
    for name in names:
        try:  # a sheet with no header, or a header and no times, is passed over
            export = ExportFile(cfg, device, opts.model_copy(update={"sheet": name}), path)
            try:
                export.resolve_time_format()
            except UndecidedDates:  # another sheet may tell day from month
                undecided.append(export)
            found.append(export)
        except NothingToImport as exc:  # any other refusal refuses the whole file
            passed.append(f"sheet {name!r}: {str(exc).removeprefix(path.name + ': ')}")
    if not found:
        raise FileRefused(f"{path.name}: no sheet to import ({'; '.join(passed)})")
    orders = {e.time_format.order for e in found if e.time_format is not None}
    told = next(iter(orders)) if orders in ({"dmy"}, {"mdy"}) else None
    for export in undecided:  # the file tells when its other sheets agree on one order
        export.resolve_time_format(order=told)
    return found


class ExportFile:
    """Open, plan and stream one file (or one sheet of a workbook) for a device
    (`device_column` may spread it over more)."""

    def __init__(self, cfg: HubConfig, device: Device, opts: CsvOptions, path: Path):
        self.cfg = cfg
        self.device = device
        self.opts = opts
        self.path = Path(path)
        sheet = 0 if opts.sheet is None else opts.sheet
        self.table: Table = open_table(self.path, opts.encoding, opts.delimiter, sheet,
                                       int(opts.stream_sheet_mb * (1 << 20)))  # fmt: skip
        #: the source of a row without its line: the file, and the sheet when one was chosen
        self.where: dict[str, Any] = {"file": self.path.name}
        self.label = self.path.name  # for messages
        if self.table.kind == "excel" and isinstance(opts.sheet, str):
            self.where["sheet"] = opts.sheet
            self.label = f"{self.path.name} (sheet {opts.sheet!r})"
        self.plan: Plan = plan_for(self.table, opts)
        self.time_format: TimeFormat | None = None
        known = {d.id for d in cfg.devices}
        self._device_of = {**{d: d for d in known}, **opts.devices}
        for col in self.plan.time_columns + ([opts.device_column] if opts.device_column else []):
            if col not in self.plan.names:
                raise NothingToImport(
                    f"{self.path.name}: no column {col!r} (have {self.plan.names})"
                )

    # -- time format -------------------------------------------------------------------------
    def _time_series(self, chunk_frame: pd.DataFrame) -> pd.Series:
        return time_values(chunk_frame, self.plan.time_columns, self.table.excel_epoch)

    def resolve_time_format(self, order: str | None = None) -> TimeFormat:
        """The file's one time format. `order` ("dmy" or "mdy"): what the other sheets of the
        workbook say, for a sheet whose dates all read both ways."""
        if self.time_format is not None:
            return self.time_format
        label = self.label
        first = next(self._chunks(self.plan.time_columns, rows=5000), None)
        sample = self._time_series(first.frame) if first is not None else pd.Series([], dtype=str)
        choice = choose_format(sample, self.opts.dayfirst, self.opts.date_format, label)
        if isinstance(choice, Ambiguous):
            amb = choice
            try:
                choice = settle(
                    amb,
                    (self._time_series(c.frame) for c in self._chunks(self.plan.time_columns)),
                    label,
                )
            except UndecidedDates:
                if order not in ("dmy", "mdy"):
                    raise
                choice = amb.dayfirst if order == "dmy" else amb.monthfirst
        self.time_format = choice
        return choice

    def _chunks(self, usecols: list[str] | None = None, rows: int | None = None) -> Iterator[Any]:
        return self.table.chunks(
            self.plan.names, self.plan.data_start, rows or self.opts.chunk_rows, usecols
        )

    # -- the stream ----------------------------------------------------------------------------
    def prepared(self) -> Iterator[Prepared]:
        fmt = self.resolve_time_format()
        first_line = self.plan.data_start + 1
        for chunk in self._chunks():
            yield self._prepare(chunk.frame, chunk.lines, chunk.last, fmt, first_line)

    def _prepare(
        self, frame: pd.DataFrame, lines: list[int], last: bool, fmt: TimeFormat, first_line: int
    ) -> Prepared:
        plan = self.plan
        names = plan.names
        extras = [f"_extra{i}" for i in range(1, EXTRA_COLUMNS + 1) if f"_extra{i}" in frame]
        cells = frame[names]
        filled = {c: _filled(cells[c]) for c in names}
        nonempty = np.sum([filled[c] for c in names], axis=0)
        extra_n = np.sum([_filled(frame[c]) for c in extras], axis=0) if extras else 0
        first_cell = cells[names[0]].to_numpy(dtype=object)
        if not filled[names[0]].all():  # the first non-empty cell of each row
            for c in names[1:]:
                first_cell = np.where(filled[names[0]] | (first_cell != ""), first_cell, cells[c])
        blank = (nonempty + extra_n) == 0
        why = np.full(len(frame), None, dtype=object)  # why a row is skipped (None: it is not)
        why[blank] = "blank"
        if _may_hold_summary(first_cell):
            summary = map_unique(first_cell, _is_summary).astype(bool)
            why[summary & ~blank] = "a summary line (Total, Jumlah…)"
        if plan.header_names:
            same = np.sum([(cells[c].str.strip() == c).to_numpy() for c in names], axis=0)
            why[(same > 0) & (same == nonempty) & (why == None)] = "the header again (a new page)"  # noqa: E711
        if plan.edge_lines:
            single = (nonempty == 1) & (np.asarray(extra_n) == 0) & filled[names[0]]
            edge = np.asarray(lines) == first_line
            if last:
                real = np.flatnonzero((nonempty + extra_n) != 0)
                if len(real):
                    edge[real[-1]] = True
            why[single & edge & (why == None)] = "a terminal's serial-number or checksum line"  # noqa: E711
        skip = why != None  # noqa: E711
        skip_arr = np.asarray(skip, dtype=bool)
        out = Prepared(pd.DataFrame(), np.array([], dtype="datetime64[s]"), [], [])
        out.read = len(frame)
        out.skipped = int(skip_arr.sum())
        out.skips = [(lines[i], str(why[i])) for i in np.flatnonzero(skip_arr & ~blank)[:10]]
        out.last = last
        keep = ~skip_arr
        problem = np.full(len(frame), None, dtype=object)
        if extras:
            too_many = np.asarray(extra_n) > 0
            problem[too_many & keep] = (
                f"too many fields (expected {len(names)}: {', '.join(names)})"
            )
        devices = np.full(len(frame), self.device.id, dtype=object)
        if self.opts.device_column:
            raw_dev = map_unique(cells[self.opts.device_column].to_numpy(dtype=object), str.strip)
            mapped = np.array([self._device_of.get(v) for v in raw_dev], dtype=object)
            unknown = np.array([m is None for m in mapped]) & keep & (problem == None)  # noqa: E711
            for i in np.flatnonzero(unknown).tolist():
                problem[i] = (
                    f"unknown device {raw_dev[i]!r} in column {self.opts.device_column!r} "
                    "(not a configured device id nor a `devices` key)"
                )
            devices = np.where(unknown, self.device.id, mapped)
        text = self._time_series(frame[names])
        times = parse(text, fmt)
        no_time = np.isnat(times) & keep & np.array([p is None for p in problem])
        text_arr = text.to_numpy(dtype=object)
        for i in np.flatnonzero(no_time).tolist():
            problem[i] = (
                f"no time in column(s) {' + '.join(plan.time_columns)}"
                if not text_arr[i]
                else f"cannot read time {text_arr[i]!r} as {fmt.format!r}"
            )
        bad = np.array([p is not None for p in problem]) & keep
        for i in np.flatnonzero(bad).tolist():
            doc = {c: str(cells[c].iat[i]) for c in names}
            for c in extras:
                if str(frame[c].iat[i]).strip():
                    doc[c] = frame[c].iat[i]
            out.rejections.append(
                Rejection(
                    reason=str(problem[i]),
                    raw=doc,
                    source={**self.where, "line": lines[i]},
                    device_id=str(devices[i]),
                )
            )
        good = np.flatnonzero(keep & ~bad)
        out.times = times[good]
        out.docs = pd.DataFrame(  # object columns: pandas would convert text to its str dtype
            {c: cells[c].to_numpy(dtype=object)[good] for c in names}, dtype=object
        )
        out.lines = [lines[i] for i in good.tolist()]
        out.devices = [str(d) for d in devices[good].tolist()]
        return out
