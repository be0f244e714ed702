"""The bulk import of one export file: vectorised normalisation, one transaction per chunk.

Idempotent by construction: record ids are `record_id(identity_key(device, credential, local
second, punch))`, inserts are `ON CONFLICT (id) DO NOTHING`, and the file's content hash is stored
as a checkpoint in the transaction of its last chunk, so a finished file is recognised at once and
an interrupted one (kill -9) is simply imported again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...clock import now_z
from ...config import Device, HubConfig
from ...normalize import Normalizer
from ...normalize.frame import FrameResult, normalize_frame
from ...record import Rejection
from ...store import Store
from .options import CsvOptions
from .presets import TIME_KEY
from .source import ExportFile, Prepared, export_files, fingerprint
from .writer import PROCESS_MIN_BYTES, ChunkWriter, Pending

FIRST_PROBLEMS = 5


def checkpoint_key(digest: str) -> str:
    return f"file:{digest}"


@dataclass
class ImportSummary:
    file: str
    device_id: str
    fingerprint: str = ""
    preset: str = ""
    reader: str = ""
    time_format: str = ""
    writer: str = ""  # "thread", "process" (or "inline" for an in-memory database)
    writer_peak_rss_mb: float | None = None  # the writer process's own peak memory
    rows_read: int = 0
    skipped: int = 0
    imported: int = 0
    duplicates: int = 0
    quarantined: int = 0
    problems: list[tuple[int | None, str]] = field(default_factory=list)
    #: the first rows skipped that were not blank, with why (line, reason)
    skips: list[tuple[int, str]] = field(default_factory=list)
    sheets: list[str] = field(default_factory=list)  # the sheets read, when chosen by name
    already_imported: dict[str, Any] | None = None
    dry_run: bool = False
    seconds: float = 0.0

    def note(self, rejections: list[Rejection]) -> None:
        self.quarantined += len(rejections)
        for rej in rejections:
            if len(self.problems) >= FIRST_PROBLEMS:
                break
            sheet = rej.source.get("sheet")
            reason = f"sheet {sheet!r}: {rej.reason}" if sheet is not None else rej.reason
            self.problems.append((rej.source.get("line"), reason))

    def line(self) -> str:
        if self.already_imported:
            when = self.already_imported.get("at", "?")
            return f"{self.file}: already imported ({when}); nothing to do"
        verb = "would import" if self.dry_run else "imported"
        where = f" (sheets {', '.join(self.sheets)})" if len(self.sheets) > 1 else ""
        return (
            f"{self.file}{where}: {self.rows_read} rows read, {verb} {self.imported}, "
            f"{self.duplicates} duplicates, {self.quarantined} quarantined, {self.skipped} skipped"
        )


def resolve_device(cfg: HubConfig, device_id: str | None) -> Device:
    if device_id:
        for d in cfg.devices:
            if d.id == device_id:
                return d
        raise ValueError(f"no device {device_id!r} in the configuration")
    csv_devices = [d for d in cfg.devices if d.kind == "csv"]
    if len(csv_devices) == 1:
        return csv_devices[0]
    raise ValueError(
        "say which device the file belongs to with --device "
        f"({len(csv_devices)} csv devices in the configuration)"
    )


def options_for(device: Device, **overrides: Any) -> CsvOptions:
    base = device.options if isinstance(device.options, CsvOptions) else None
    values = base.model_dump(exclude_unset=True) if base is not None else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return CsvOptions.model_validate(values)


def import_file(
    cfg: HubConfig,
    store: Store,
    path: Path,
    device: Device,
    opts: CsvOptions,
    *,
    dry_run: bool = False,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
    normalizer: Normalizer | None = None,
    writer: str = "auto",
) -> ImportSummary:
    """Import `path` for `device`; `progress(rows_done, bytes_total)` after each chunk.
    `writer`: "thread", "process", or "auto" (a process for files of `PROCESS_MIN_BYTES` up)."""
    started = time.perf_counter()
    path = Path(path)
    summary = ImportSummary(file=path.name, device_id=device.id, dry_run=dry_run)
    summary.fingerprint = fingerprint(path)
    key = checkpoint_key(summary.fingerprint)
    if not force:
        earlier = store.get_checkpoint(device.id, key)
        if earlier is not None:
            summary.already_imported = earlier
            summary.seconds = time.perf_counter() - started
            return summary
    exports = export_files(cfg, device, opts, path)
    summary.preset = exports[0].plan.preset
    summary.reader = exports[0].table.describe()
    summary.sheets = [str(e.where["sheet"]) for e in exports if "sheet" in e.where]
    summary.time_format = ", ".join(dict.fromkeys(e.resolve_time_format().label() for e in exports))
    normalizer = normalizer or Normalizer(cfg)
    devices = {d.id: d for d in cfg.devices}
    received_at = datetime.now(UTC)
    # The store writes chunk N (in a worker thread, or a worker process for a large file: see
    # `writer`) while this thread prepares chunk N+1; at most one write is in flight, so commit
    # order is chunk order and memory holds two chunks at most.
    pending: Pending | None = None
    if writer not in ("auto", "thread", "process"):
        raise ValueError(f"writer must be auto, thread or process, not {writer!r}")
    use_process = not dry_run and (
        writer == "process" or (writer == "auto" and path.stat().st_size >= PROCESS_MIN_BYTES)
    )

    def finished() -> dict[tuple[str, str], Any]:  # the checkpoint, with the file's last chunk
        at = now_z()
        return {(device.id, key): {"file": path.name, "at": at, "rows": summary.rows_read}}

    with ChunkWriter(store, use_process=use_process) as chunks:
        summary.writer = chunks.kind
        for n, export in enumerate(exports):  # the sheets of a workbook, or just the file
            final = n == len(exports) - 1
            for prepared in export.prepared():  # (a wrapper generator would hold a third chunk)
                results, rejections = _normalise(
                    normalizer, devices, export, prepared, received_at, None if dry_run else store
                )
                summary.rows_read += prepared.read
                summary.skipped += prepared.skipped
                summary.skips += prepared.skips[: FIRST_PROBLEMS - len(summary.skips)]
                summary.duplicates += sum(r.known for r in results)
                summary.note(rejections)
                if dry_run:
                    summary.imported += sum(len(r) for r in results)
                else:
                    checkpoints = finished() if prepared.last and final else None
                    tables = [r.batch() for r in results if len(r)] or [({}, {})]
                    if pending is not None:
                        _count(summary, pending.result())
                    pending = chunks.submit(tables, rejections, checkpoints)
                    del tables  # the writer has its own copy or reference: let this chunk go
                # before the next chunk is read: two chunks in memory, not three
                del results, prepared
                if progress is not None:
                    progress(summary.rows_read, 0)
        if pending is not None:
            _count(summary, pending.result())
    summary.writer_peak_rss_mb = chunks.peak_rss_mb
    summary.seconds = time.perf_counter() - started
    return summary


def _count(summary: ImportSummary, counts: tuple[int, int]) -> None:
    summary.imported += counts[0]
    summary.duplicates += counts[1]


def _normalise(
    normalizer: Normalizer,
    devices: dict[str, Device],
    export: ExportFile,
    prepared: Prepared,
    received_at: datetime,
    store: Store | None,
) -> tuple[list[FrameResult], list[Rejection]]:
    results: list[FrameResult] = []
    rejections = list(prepared.rejections)
    for dev_id, docs, times, lines in prepared.by_device():
        result = normalize_frame(
            normalizer, devices[dev_id], export.plan.mapping, docs, times, export.where,
            lines, received_at, export.opts.punch,
            known_ids=None if store is None else _known(store), time_key=TIME_KEY,
        )  # fmt: skip
        results.append(result)
        rejections.extend(result.rejections)
    return results, rejections


def _known(store: Store) -> Callable[[list[str]], set[str]]:
    """Probe a sample first: a fresh chunk costs one small query, a re-imported one is filtered
    before its records are built (inserts stay ON CONFLICT DO NOTHING either way)."""

    def known(ids: list[str]) -> set[str]:
        step = max(1, len(ids) // 64)
        if not store.existing_ids(ids[::step]):
            return set()
        return store.existing_ids(ids)

    return known
