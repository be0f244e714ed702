"""`kind: csv` — exports from HR and time-attendance software, from a watch folder or a glob.

Watch folder: each new file (quiet for `settle_s`) goes through `importer.import_file`, the code
path of `spotme-hub import` (vectorised normalisation, the store's bulk path, 5,000 rows a commit
unless `chunk_rows` says), each row as its device's punch (a device column; a subfolder named
after a device holds that device's exports); the file's content hash is committed with its last
rows, and only then is the file moved to ``processed/`` (or to ``failed/`` with a ``.error.txt`` when the file is refused or
cannot be read). A file interrupted half-way is imported again from the start: record ids make
that idempotent. `path` (a glob) imports each matching file once (by content), never moving it.
"""

from __future__ import annotations

import glob
import shutil
import time
from collections.abc import Awaitable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ...config import Device
from ...contract import (
    BulkCounts,
    DeviceContext,
    DeviceError,
    HasDemo,
    HasPunchWords,
    Polling,
    Replayable,
    sibling,
)
from ...record import RawPunch, Rejection
from .options import CsvOptions

if TYPE_CHECKING:
    from ...store import Store
    from .importer import ImportSummary

# The file engine (pandas, the readers) and the store load with the first file, not with the
# class: `config check` reads only `CsvOptions`.


IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".error.txt")
T = TypeVar("T")
WATCH_CHUNK_ROWS = 5_000  # rows a commit from a watch folder (unless `chunk_rows` says)


class CsvAdapter(Polling, Replayable, HasPunchWords, HasDemo):
    kind: ClassVar[str] = "csv"
    options_model: ClassVar[type[CsvOptions]] = CsvOptions

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
        """The file through `import_file`, the same code path as `spotme-hub import` (its chunks
        commit through the store's bulk path, each with its quarantine; the file's fingerprint
        with its last chunk), then moved to processed/ — or to failed/ when it is refused."""
        from .importer import import_file
        from .source import fingerprint

        owner = self._owner(ctx, path)
        digest = await ctx.to_thread(fingerprint, path)
        summary: dict[str, Any] = {"file": path.name}
        if owner is not self.device:
            summary["device"] = owner.id
        if digest in self.refused:
            return summary
        opts = self.opts
        if "chunk_rows" not in opts.model_fields_set:  # a live punch waits for one such commit
            opts = opts.model_copy(update={"chunk_rows": WATCH_CHUNK_ROWS})
        done: list[ImportSummary] = []

        def work(store: Store) -> BulkCounts:
            s = import_file(ctx.config, store, path, owner, opts, writer="thread")
            done.append(s)
            return BulkCounts(s.rows_read, s.imported, s.duplicates, s.quarantined)

        try:
            target = ctx if owner is self.device else ctx.for_device(owner.id)
            counts = await _guarded(target.submit_bulk(work))
        except Unreadable as exc:  # the file, not the hub: it goes to failed/ with the reason
            ctx.log.error("refused %s: %s", path.name, exc)
            ctx.count("files_failed")
            self._done(path, "failed", str(exc))
            summary["refused"] = str(exc)
            return summary
        if done[0].already_imported:
            summary["already_imported"] = True
            ctx.log.debug("%s was already imported (same content)", path.name)
        else:
            summary.update(rows=counts.rows, new=counts.new, duplicate=counts.duplicate,
                           quarantined=counts.quarantined)  # fmt: skip
            ctx.count("files_imported")
            ctx.mark_up(last_file=path.name, last_import=summary)
        self._done(path, "processed")  # only now: everything above has committed
        return summary

    def _done(self, path: Path, where: str, error: str | None = None) -> None:
        if not self.opts.watch:
            if error:
                from .source import fingerprint

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


async def _guarded(work: Awaitable[T]) -> T:
    """Any failure of the import but an I/O error or the database's is the file's: parsers and
    workbook libraries raise errors of their own kinds (a truncated `.xlsx`, XML that is not
    well-formed), and one bad file must not hold up the folder. A store that fails propagates,
    and the file stays for the next scan."""
    from ...store import is_database_error
    from .reader import FileRefused

    try:
        return await work
    except OSError:
        raise
    except FileRefused as exc:
        raise Unreadable(str(exc)) from exc
    except Exception as exc:
        if is_database_error(exc):
            raise
        raise Unreadable(f"{type(exc).__name__}: {exc}") from exc
