"""`kind: csv` — exports from HR and time-attendance software, from a watch folder or a glob.

Watch folder: each new file (quiet for `settle_s`) is read chunk by chunk through the shared
engine (`Mapping.apply` → `ctx.submit`, which normalises and commits), the file's content hash is
committed with its last chunk, and only then is the file moved to ``processed/`` (or to
``failed/`` with a ``.error.txt`` when the whole file is refused, e.g. ambiguous dates). A file
interrupted half-way is imported again from the start: record ids make that idempotent.
`path` (a glob) imports each matching file once (by content) and never moves it.
"""

from __future__ import annotations

import glob
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ..config import Device
from ..fileimport.importer import checkpoint_key
from ..fileimport.options import CsvOptions
from ..fileimport.reader import FileRefused
from ..fileimport.source import ExportFile, Prepared, export_files, fingerprint
from ..normalize.mapping import Ignored, MappingError
from ..record import RawPunch, Rejection
from .base import DeviceContext, DeviceError

IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".error.txt")
T = TypeVar("T")
SUBMIT_ROWS = 5_000  # rows per commit (a file chunk is read and mapped whole, then committed so)


class CsvAdapter:
    kind: ClassVar[str] = "csv"
    options_model: ClassVar[type[CsvOptions]] = CsvOptions

    def __init__(self, device: Device, options: CsvOptions):
        self.device = device
        self.opts = options
        self.refused: set[str] = set()  # glob mode: fingerprints of files that cannot be read

    @classmethod
    def punch_map(cls, device: Device) -> dict[str, str] | None:
        """The device's `punch` words, which its commits (and so a replay) normalise with."""
        return device.options.punch if isinstance(device.options, CsvOptions) else None

    @classmethod
    def replay(cls, device: Device, raw: Any, source: dict[str, Any]) -> list[RawPunch] | Rejection:
        """Re-read one quarantined row (its column → text document) with the device's current
        options, e.g. after setting `dayfirst`, `date_format` or a `punch` map."""
        from ..fileimport.replay import reread_row

        return reread_row(device, raw, source)

    # -- which files -------------------------------------------------------------------------
    def candidates(self) -> list[Path]:
        now = time.time()
        if self.opts.watch:
            folder = Path(self.opts.watch)
            files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
        elif self.opts.path:
            files = [Path(p) for p in sorted(glob.glob(self.opts.path)) if Path(p).is_file()]
        else:
            return []
        out = []
        for p in files:
            if p.name.startswith((".", "~$")) or p.name.endswith(IGNORED_SUFFIXES):
                continue
            try:
                if now - p.stat().st_mtime < self.opts.settle_s:
                    continue  # still being written
            except FileNotFoundError:
                continue
            out.append(p)
        return sorted(out, key=lambda p: (p.stat().st_mtime, p.name))

    async def poll(self, ctx: DeviceContext) -> None:
        if self.opts.watch and not Path(self.opts.watch).is_dir():
            raise DeviceError("io", f"watch folder {self.opts.watch} does not exist")
        for path in self.candidates():
            try:
                await self.import_one(ctx, path)
            except OSError as exc:  # locked, vanished, a share gone: the next scan tries again
                ctx.log.warning("cannot read %s now (%s); trying the next file", path.name, exc)
                ctx.mark_degraded(f"cannot read {path.name}: {exc}")

    # -- one file ------------------------------------------------------------------------------
    async def import_one(self, ctx: DeviceContext, path: Path) -> dict[str, Any]:
        digest = await ctx.to_thread(fingerprint, path)
        key = checkpoint_key(digest)
        summary: dict[str, Any] = {
            "file": path.name, "rows": 0, "new": 0, "duplicate": 0, "quarantined": 0,
        }  # fmt: skip
        if digest in self.refused:
            return summary
        if ctx.checkpoint(key) is not None:
            summary["already_imported"] = True
            ctx.log.debug("%s was already imported (same content)", path.name)
            self._done(path, "processed")
            return summary
        try:
            exports = await _read(ctx, export_files, ctx.config, self.device, self.opts, path)
            for export in exports:
                await _read(ctx, export.resolve_time_format)
            for n, export in enumerate(exports):  # a workbook's sheets, or just the file
                last = n == len(exports) - 1
                await self._chunks(ctx, export, path, key if last else None, summary)
        except Unreadable as exc:  # the file, not the hub: it goes to failed/ with the reason
            ctx.log.error("refused %s: %s", path.name, exc)
            ctx.count("files_failed")
            self._done(path, "failed", str(exc))
            summary["refused"] = str(exc)
            return summary
        ctx.count("files_imported")
        ctx.mark_up(last_file=path.name, last_import=summary)
        self._done(path, "processed")  # only now: everything above has committed
        return summary

    async def _chunks(
        self, ctx: DeviceContext, export: ExportFile, path: Path, key: str | None,
        summary: dict[str, Any],
    ) -> None:  # fmt: skip
        """Commit one export (a file, or a sheet of it); with `key`, the file's checkpoint goes
        with its last rows."""
        received_at = datetime.now(UTC)
        tz = ctx.config.office(self.device.office).timezone
        tz = self.device.timezone or tz
        chunks = iter(export.prepared())
        while True:
            prepared = await _read(ctx, next, chunks, None)
            if prepared is None:
                break
            punches, rejections = await _read(
                ctx, self._rows, ctx, export, prepared, received_at, tz
            )
            summary["rows"] += prepared.read
            # commits of at most SUBMIT_ROWS: a live punch of another device waits for one
            # of these, not for a whole chunk of the file
            for start in range(0, max(len(punches), len(rejections), 1), SUBMIT_ROWS):
                end = start + SUBMIT_ROWS
                checkpoint = None
                if key and prepared.last and end >= max(len(punches), len(rejections)):
                    checkpoint = {key: self._checkpoint(path, summary)}
                res = await ctx.submit(
                    punches[start:end], rejections[start:end], checkpoint, self.opts.punch
                )
                summary["new"] += len(res.new)
                summary["duplicate"] += len(res.duplicate)
                summary["quarantined"] += len(res.quarantined)

    @staticmethod
    def _checkpoint(path: Path, summary: dict[str, Any]) -> dict[str, Any]:
        return {"file": path.name, "at": _now(), "rows": summary["rows"]}

    def _rows(
        self, ctx: DeviceContext, export: ExportFile, prepared: Prepared, received_at: datetime,
        tz: str,
    ) -> tuple[list[RawPunch], list[Rejection]]:  # fmt: skip
        """One chunk's rows through the shared mapping (on a worker thread: a chunk of 50,000
        rows is about a second of work)."""
        mapping = export.plan.mapping
        punches: list[RawPunch] = []
        rejections: list[Rejection] = list(prepared.rejections)
        docs = prepared.docs.to_dict("records")
        for doc, line, dev in zip(docs, prepared.lines, prepared.devices, strict=True):
            source = {**export.where, "line": line}
            if dev != self.device.id:
                reason = (
                    f"row of device {dev!r}: a watch folder imports for its "
                    "own device only; use `spotme-hub import` for multi-device files"
                )
                rejections.append(ctx.reject(reason, doc, source))
                continue
            try:
                punches.append(
                    mapping.apply(doc, received_at=received_at, default_timezone=tz, source=source)
                )
            except Ignored:
                continue
            except MappingError as exc:
                rejections.append(ctx.reject(str(exc), doc, source))
        return punches, rejections

    def _done(self, path: Path, where: str, error: str | None = None) -> None:
        if not self.opts.watch:
            if error:
                self.refused.add(fingerprint(path))
            return
        target = Path(self.opts.watch) / where
        target.mkdir(exist_ok=True)
        dest = target / path.name
        if dest.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            dest = target / f"{path.stem}.{stamp}{path.suffix}"
        shutil.move(str(path), dest)
        if error:
            dest.with_name(dest.name + ".error.txt").write_text(error + "\n", encoding="utf-8")


class Unreadable(Exception):
    """A file that cannot be read as an export (refused, malformed, not what its name says)."""


async def _read(ctx: DeviceContext, fn: Callable[..., T], /, *args: Any) -> T:
    """`fn(*args)` on a worker thread, where any failure but an I/O error is the file's:
    parsers and workbook libraries raise errors of their own kinds (a truncated `.xlsx`, XML
    that is not well-formed), and one bad file must not hold up the folder. Commits are not
    made in here: a store that fails propagates, and the file stays for the next scan."""
    try:
        return await ctx.to_thread(fn, *args)
    except OSError:
        raise
    except FileRefused as exc:
        raise Unreadable(str(exc)) from exc
    except Exception as exc:
        raise Unreadable(f"{type(exc).__name__}: {exc}") from exc


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
