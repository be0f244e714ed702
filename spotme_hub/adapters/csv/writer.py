"""Where an import's chunks are committed: a worker thread, or for a large file a worker process.

The import prepares chunk N+1 while chunk N is written, one write in flight at a time, so commit
order is chunk order. sqlite3 gives the GIL back around each row's insert and must take it again
for the next row's values; while the main thread parses, it holds the GIL and a writer *thread*
mostly waits for it, so the two barely overlap. A writer *process* has an interpreter of its own:
parsing and writing run on two cores. A chunk crosses to it as orjson texts of 5,000-row slices
(pickling 50,000 rows of strings object by object costs more than a third of the insert it feeds),
read at once and decoded one slice at a time as the insert consumes them, all in the chunk's one
transaction, so the writer holds one slice's objects, not the chunk's; rejections and checkpoints,
few and small, are pickled.

The process reads its work from a pipe whose only sending end is the importing process: if that
process dies (kill -9), the writer finishes the transaction it is in (whole chunks commit, as
before), reads end-of-file and exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import orjson

from ...record import Rejection
from ...store import Store, in_process_memory
from ...store.shapes import Columns, lengths

#: Files from this size up (about 100,000 attlog rows, two chunks) are written by a worker process;
#: starting one costs a fraction of a second of the other core, which a smaller file would not
#: win back.
PROCESS_MIN_BYTES = 4 << 20

#: A device's records of one chunk: ({varying field: values sorted by id}, {field: value}); the
#: first may also be an iterable of such mappings (slices), as `Store.bulk_insert` takes.
Table = tuple[Columns | Iterable[Columns], dict[str, Any]]
SLICE_ROWS = 5_000
Checkpoints = Mapping[tuple[str, str], Any] | None


class Pending(Protocol):
    def result(self) -> tuple[int, int]: ...


def write_tables(
    store: Store, tables: Sequence[Table], rejections: list[Rejection], checkpoints: Checkpoints
) -> tuple[int, int]:
    """Commit one chunk (one transaction per device table; quarantine and checkpoint with the
    last), returning (new, duplicates)."""
    new = dup = 0
    for k, (columns, consts) in enumerate(tables):
        last = k == len(tables) - 1
        res = store.bulk_insert(
            columns, consts, rejections if last else (), checkpoints if last else None
        )
        new, dup = new + res.new, dup + res.duplicate
    return new, dup


class ChunkWriter:
    """`submit(tables, rejections, checkpoints)` → something whose `result()` is (new, dup) once
    committed. At most one submission in flight: call `result()` before the next `submit`."""

    def __init__(self, store: Store, use_process: bool):
        self.store = store
        self._thread: ThreadPoolExecutor | None = None
        self._proc: _WriterProcess | None = None
        if in_process_memory(store.url):
            pass  # each thread's connection would be a database of its own: write inline
        elif use_process and os.name == "posix":  # the pipes are handed over by descriptor
            self._proc = _WriterProcess(store.url, store.sqlite_synchronous)
        else:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-insert")

    @property
    def peak_rss_mb(self) -> float | None:
        """The writer process's peak memory, once closed (None for a thread, or not known)."""
        return self._proc.peak_rss_mb if self._proc is not None else None

    @property
    def kind(self) -> str:
        return "process" if self._proc else "thread" if self._thread else "inline"

    def submit(
        self, tables: Sequence[Table], rejections: list[Rejection], checkpoints: Checkpoints
    ) -> Pending:
        if self._proc is not None:
            return self._proc.submit(tables, rejections, checkpoints)
        if self._thread is not None:
            future: Future[tuple[int, int]] = self._thread.submit(
                write_tables, self.store, tables, rejections, checkpoints
            )
            return future
        done: Future[tuple[int, int]] = Future()
        done.set_result(write_tables(self.store, tables, rejections, checkpoints))
        return done

    def close(self) -> None:
        if self._proc is not None:
            self._proc.close()
        if self._thread is not None:
            self._thread.shutdown(wait=True)

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _WriterProcess:
    """`python -m spotme_hub.adapters.csv.writer` on two pipes of its own (not multiprocessing's
    spawn, which would run the caller's main script again in the child)."""

    def __init__(self, url: str, synchronous: str):
        work_in, work_out = os.pipe()
        done_in, done_out = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(work_in), str(done_out)],
            pass_fds=(work_in, done_out), stdin=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(work_in)  # the child's ends: once it exits, our reads see end-of-file
        os.close(done_out)
        self._work = Connection(work_out, readable=False)
        self._done = Connection(done_in, writable=False)
        self._work.send((url, synchronous))  # not on the command line: it may hold a password
        self.peak_rss_mb: float | None = None

    def submit(
        self, tables: Sequence[Table], rejections: list[Rejection], checkpoints: Checkpoints
    ) -> Pending:
        parts = [(consts, _slices(columns)) for columns, consts in tables]
        self._work.send((parts, rejections, dict(checkpoints or {})))
        return self

    def result(self) -> tuple[int, int]:
        try:
            status, value = self._done.recv()
        except EOFError:
            code = self._process.wait(5)
            raise RuntimeError(f"the bulk writer process stopped (exit code {code})") from None
        if status == "error":
            raise value if isinstance(value, BaseException) else RuntimeError(str(value))
        new, dup = value
        return int(new), int(dup)

    def close(self) -> None:
        self._work.close()  # end-of-file: the child says goodbye with its peak memory, and exits
        try:
            if self._done.poll(30):
                status, value = self._done.recv()
                if status == "bye":
                    self.peak_rss_mb = value
        except (EOFError, OSError):
            pass
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._done.close()


def _serve(work: Connection, done: Connection) -> None:
    """The writer process: commit each chunk it is sent, answer (status, value)."""
    try:
        url, synchronous = work.recv()
    except EOFError:
        return
    # a 16 MB page cache, half the hub's: 1M-row imports measured no slower with it (a chunk's
    # index pages are written at its commit either way), and the process stays small
    store = Store(url, synchronous, cache_mb=16)
    # the WAL is copied back by a thread while the next chunk is inserted, not by each commit
    # (a 1M-row import measured 5 % faster; the thread's own connection keeps no page cache)
    store.background_checkpoints(True, every_s=0.5)
    try:
        while True:
            try:
                parts, rejections, checkpoints = work.recv()
            except EOFError:
                done.send(("bye", _peak_rss_mb()))
                return
            try:
                tables: list[Table] = [
                    (map(orjson.loads, blobs), consts) for consts, blobs in parts
                ]
                counts = write_tables(store, tables, rejections, checkpoints or None)
                del parts, tables  # before the next chunk arrives
                done.send(("ok", counts))
            except Exception as exc:  # noqa: BLE001 - reported to the importing process
                try:
                    done.send(("error", exc))
                except Exception:  # noqa: BLE001 - an exception that does not pickle
                    done.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        store.close()


def _slices(columns: Columns | Iterable[Columns]) -> list[bytes]:
    """A table's columns (and members) as orjson texts of `SLICE_ROWS`-row slices."""
    out = []
    for part in [columns] if isinstance(columns, Mapping) else columns:
        n = max(lengths(part), default=0)
        for a in range(0, n, SLICE_ROWS):
            b = a + SLICE_ROWS
            out.append(
                orjson.dumps(
                    {
                        name: {m: v[a:b] for m, v in col.items()}
                        if isinstance(col, Mapping)
                        else col[a:b]
                        for name, col in part.items()
                    }
                )
            )
    return out


def _peak_rss_mb() -> float | None:
    """This process's own peak resident memory (VmHWM). Not `getrusage`: after a vfork+exec it
    also counts the parent's memory at the moment of the fork."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


if __name__ == "__main__":
    _serve(
        Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
    )
