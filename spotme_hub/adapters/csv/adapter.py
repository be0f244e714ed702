"""`kind: csv` — exports from HR and time-attendance software, from a watch folder or a glob.

Watch folder: each new file (quiet for `settle_s`) is read chunk by chunk through the shared
engine (`Mapping.apply` → `ctx.submit`, which normalises and commits, 5,000 rows at a time), each
row as its device's punch (a device column; a subfolder named after a device holds that
device's exports), the file's content hash is committed with its last rows, and only then is the
file moved to ``processed/`` (or to ``failed/`` with a ``.error.txt`` when the file is refused or
cannot be read). A file interrupted half-way is imported again from the start: record ids make
that idempotent. `path` (a glob) imports each matching file once (by content), never moving it.
"""

from __future__ import annotations

import glob
import shutil
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ...clock import now_z
from ...config import Device
from ...contract import (
    DeviceContext,
    DeviceError,
    HasCommands,
    HasDemo,
    HasPunchWords,
    Polling,
    Replayable,
    sibling,
)
from ...normalize.mapping import Ignored, MappingError
from ...record import RawPunch, Rejection
from .importer import checkpoint_key
from .options import CsvOptions
from .reader import FileRefused
from .source import ExportFile, Prepared, export_files, fingerprint

if TYPE_CHECKING:
    pass


IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".error.txt")
T = TypeVar("T")
SUBMIT_ROWS = 5_000  # rows per commit (a file chunk is read and mapped whole, then committed so)


class CsvAdapter(Polling, Replayable, HasPunchWords, HasCommands, HasDemo):
    kind: ClassVar[str] = "csv"
    options_model: ClassVar[type[CsvOptions]] = CsvOptions

    commands = sibling("commands", "register")
    demo_part = sibling("demo", "part")

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
        from .replay import reread_row

        return reread_row(device, raw, source)

    # -- which files -------------------------------------------------------------------------
    def candidates(self, devices: Collection[str] = ()) -> list[Path]:
        """Files to import, oldest first: the glob's, or the watch folder's own and those in
        its subfolders named after one of `devices` (`inbox/lobby-zk/1_attlog.dat`: the USB
        export of terminal lobby-zk, imported as its punches)."""
        now = time.time()
        if self.opts.watch:
            folder = Path(self.opts.watch)
            if not folder.is_dir():
                return []
            places = [folder] + [d for d in folder.iterdir() if d.is_dir() and d.name in devices]
            files = [p for d in places for p in d.iterdir() if p.is_file()]
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
        others = {d.id for d in ctx.config.devices if d.id != self.device.id}
        for path in self.candidates(others - {"processed", "failed"}):
            try:
                await self.import_one(ctx, path)
            except OSError as exc:  # locked, vanished, a share gone: the next scan tries again
                ctx.log.warning("cannot read %s now (%s); trying the next file", path.name, exc)
                ctx.mark_degraded(f"cannot read {path.name}: {exc}")

    def _owner(self, ctx: DeviceContext, path: Path) -> Device:
        """The device whose punches the file holds: a device subfolder's, else this one."""
        if self.opts.watch and path.parent != Path(self.opts.watch):
            return ctx.config.device(path.parent.name)
        return self.device

    # -- one file ------------------------------------------------------------------------------
    async def import_one(self, ctx: DeviceContext, path: Path) -> dict[str, Any]:
        owner = self._owner(ctx, path)
        digest = await ctx.to_thread(fingerprint, path)
        key = checkpoint_key(digest) + ("" if owner is self.device else f"@{owner.id}")
        summary: dict[str, Any] = {
            "file": path.name, "rows": 0, "new": 0, "duplicate": 0, "quarantined": 0,
        }  # fmt: skip
        if owner is not self.device:
            summary["device"] = owner.id
        if digest in self.refused:
            return summary
        if ctx.checkpoint(key) is not None:
            summary["already_imported"] = True
            ctx.log.debug("%s was already imported (same content)", path.name)
            self._done(path, "processed")
            return summary
        try:
            exports = await _read(ctx, export_files, ctx.config, owner, self.opts, path)
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
        """Commit one export (a file, or a sheet of it), each row as its device's punch; with
        `key`, the file's checkpoint goes with its last rows (this device's own commit)."""
        received_at = datetime.now(UTC)
        chunks = iter(export.prepared())
        while True:
            prepared = await _read(ctx, next, chunks, None)
            if prepared is None:
                break
            by_device = await _read(ctx, self._rows, ctx, export, prepared, received_at)
            summary["rows"] += prepared.read
            # commits of at most SUBMIT_ROWS: a live punch of another device waits for one
            # of these, not for a whole chunk of the file
            batches = [
                (dev, punches[i : i + SUBMIT_ROWS], rejections[i : i + SUBMIT_ROWS])
                for dev, (punches, rejections) in by_device.items()
                for i in range(0, max(len(punches), len(rejections), 1), SUBMIT_ROWS)
            ]
            for n, (dev, punches, rejections) in enumerate(batches):
                target = ctx if dev == self.device.id else ctx.for_device(dev)
                final = key is not None and prepared.last and n == len(batches) - 1
                checkpoint = {key: self._checkpoint(path, summary)} if final and key else None
                res = await target.submit(
                    punches, rejections, checkpoint if target is ctx else None, self.opts.punch
                )
                if checkpoint and target is not ctx:  # the last rows were another device's
                    await ctx.submit([], [], checkpoint)
                summary["new"] += len(res.new)
                summary["duplicate"] += len(res.duplicate)
                summary["quarantined"] += len(res.quarantined)

    @staticmethod
    def _checkpoint(path: Path, summary: dict[str, Any]) -> dict[str, Any]:
        return {"file": path.name, "at": now_z(), "rows": summary["rows"]}

    def _rows(
        self, ctx: DeviceContext, export: ExportFile, prepared: Prepared, received_at: datetime
    ) -> dict[str, tuple[list[RawPunch], list[Rejection]]]:
        """One chunk's rows through the shared mapping, by device (on a worker thread: a chunk
        of 50,000 rows is about a second of work). Each row is read in its device's zone."""
        mapping = export.plan.mapping
        out: dict[str, tuple[list[RawPunch], list[Rejection]]] = {}
        for rej in prepared.rejections:
            out.setdefault(rej.device_id or export.device.id, ([], []))[1].append(rej)
        zones: dict[str, str] = {}
        docs = prepared.documents()
        for doc, line, dev in zip(docs, prepared.lines, prepared.devices, strict=True):
            punches, rejections = out.setdefault(dev, ([], []))
            if dev not in zones:
                device = ctx.config.device(dev)
                zones[dev] = device.zone
            source = {**export.where, "line": line}
            try:
                punches.append(
                    mapping.apply(
                        doc, received_at=received_at, default_timezone=zones[dev], source=source
                    )
                )
            except Ignored:
                continue
            except MappingError as exc:
                rejections.append(Rejection(reason=str(exc), raw=doc, source=source, device_id=dev))
        return out or {export.device.id: ([], [])}

    def _done(self, path: Path, where: str, error: str | None = None) -> None:
        if not self.opts.watch:
            if error:
                self.refused.add(fingerprint(path))
            return
        target = path.parent / where  # the watch folder's, or its device subfolder's
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
