"""The store's engine: one connection pool, serialised writes, SQLite's WAL checkpoints.

SQLite (WAL) by default, PostgreSQL by URL. Writes are serialised, so the records' `seq` is the
commit order: a feed cursor on `seq` never skips a record that committed late, and the forwarder's
outbox is simply "records with seq above the forward cursor" — queued in the same transaction as
the record by construction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from .schema import in_process_memory
from .shapes import Shapes

log = logging.getLogger("spotme_hub.store")


def is_database_error(exc: BaseException) -> bool:
    """Whether `exc` is a failing database's, raised through SQLAlchemy or (the bulk and page
    paths) by the driver itself: the store's trouble, never the input's. psycopg is looked up
    only where it is loaded (no PostgreSQL store, no psycopg error), so an SQLite hub never
    imports it."""
    if isinstance(exc, SQLAlchemyError | sqlite3.Error):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)


class StoreBase:
    """Thread-safe: one writer at a time (a lock), readers in parallel."""

    def __init__(
        self, url: str, sqlite_synchronous: str = "FULL", echo: bool = False, cache_mb: int = 32
    ):
        self.url = url
        self.sqlite_synchronous = sqlite_synchronous
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            sync = sqlite_synchronous

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.execute(f"PRAGMA cache_size=-{int(cache_mb) * 1024}")
                if self._checkpointer is not None:
                    cur.execute("PRAGMA wal_autocheckpoint=0")
                cur.close()

        self._checkpointer: threading.Thread | None = None
        self._checkpoint_stop = threading.Event()
        self._write_lock = threading.Lock()
        self._page_sql_cache: dict[tuple[str, ...], str] = {}
        self._rows_sql_cache: dict[tuple[int, tuple[str, ...]], str] = {}
        self.shapes = Shapes(self.engine)

    def close(self) -> None:
        self.background_checkpoints(False)
        self.engine.dispose()

    def background_checkpoints(self, on: bool = True, every_s: float = 1.0) -> None:
        """SQLite: with `on`, commits no longer copy the WAL back into the database themselves
        (with an fsync, every ~4 MB written: a commit stall of up to hundreds of milliseconds);
        a thread does it every `every_s` instead, PASSIVE (it never blocks readers or writers).
        For the long-running hub, so commit latency stays flat under load; `off` restores
        SQLite's automatic checkpoints."""
        if not self.is_sqlite or on == (self._checkpointer is not None):
            return
        if on:
            self._checkpoint_stop.clear()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, args=(every_s,), daemon=True,
                name="spotme-wal-checkpoint",
            )  # fmt: skip
            self._checkpointer.start()
        elif self._checkpointer is not None:
            self._checkpoint_stop.set()
            self._checkpointer.join(10)
            self._checkpointer = None
        self.engine.dispose()  # pooled connections reconnect with the setting

    def _checkpoint_loop(self, every_s: float) -> None:
        """On a connection of its own with a 256 KB page cache: a checkpoint copies WAL frames to
        the database file and needs no cache (a pooled connection would grow one of `cache_mb`
        in a process that only writes, such as an import's writer)."""
        path = self.engine.url.database
        if not path or in_process_memory(self.url):
            return  # a database of this process only: no WAL to copy back
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        try:
            conn.execute("PRAGMA cache_size=-256")
            while not self._checkpoint_stop.wait(every_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception as exc:  # noqa: BLE001 - keep trying; commits are unaffected
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()

    def wal_autocheckpoint(self) -> int:
        """The setting a new connection gets (0 while background checkpoints run)."""
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())

    def footprint(self) -> tuple[int, str | None]:
        """(bytes the store takes on disk, the oldest record's commit time or None)."""
        with self.engine.connect() as conn:
            oldest = conn.execute(
                text("SELECT committed_at FROM records ORDER BY seq LIMIT 1")
            ).scalar()
            if self.is_sqlite:
                path = self.engine.url.database
                size = 0
                if path and not in_process_memory(self.url):
                    for suffix in ("", "-wal"):
                        with contextlib.suppress(OSError):
                            size += os.stat(path + suffix).st_size
            else:
                size = int(
                    conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
                )
        return size, oldest

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One serialised write transaction (commit order = seq order, also on PostgreSQL)."""
        with self._write_lock, self.engine.begin() as conn:
            if not self.is_sqlite:
                conn.execute(text("LOCK TABLE records IN EXCLUSIVE MODE"))
            yield conn

    def insert(self, table: Table) -> Any:
        """An INSERT of the store's dialect (with `on_conflict_do_update`/`_do_nothing`)."""
        return (sqlite_insert if self.is_sqlite else pg_insert)(table)
