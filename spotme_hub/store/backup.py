"""A consistent copy of a running SQLite store, and putting one back.

The copy is SQLite's online backup: one step inside a read transaction, so it is the store as
of one commit — records, quarantine, checkpoints and the forwarder's cursor together — while the
hub goes on committing (WAL readers do not block writers). PostgreSQL has `pg_dump` for that.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

#: tables a hub's store has whatever its version (what `restore` checks a copy for)
REQUIRED = ("records", "checkpoints", "quarantine")


@dataclass(frozen=True, slots=True)
class Copy:
    """What a copy holds."""

    path: Path
    last_seq: int  # the newest record's seq
    cursor: int | None  # the checkpoint asked for (the forwarder's: what was delivered)
    bytes: int


class NotAStore(Exception):
    """A file that is not a hub store, or not a whole one."""


Checkpoint = tuple[str, str]  # (scope, key) of a checkpoint a copy reports


def backup(db: Path, dest: Path, cursor: Checkpoint | None = None) -> Copy:
    """Copy the store at `db` to `dest` (a file, or a directory: a dated file in it), written
    beside it first and moved into place when whole and checked."""
    if dest.is_dir():
        dest = dest / f"spotme-hub-{time.strftime('%Y%m%dT%H%M%S')}.db"
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)
    src = sqlite3.connect(db, timeout=30)
    try:
        out = sqlite3.connect(part)
        try:
            src.backup(out)  # pages=-1: one step, one snapshot
        finally:
            out.close()
    finally:
        src.close()
    copy = inspect(part, cursor)
    with part.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(part, dest)
    return Copy(dest, copy.last_seq, copy.cursor, dest.stat().st_size)


def inspect(path: Path, cursor: Checkpoint | None = None) -> Copy:
    """What a copy holds; NotAStore when it is not a whole hub store."""
    if not path.is_file():
        raise NotAStore(f"{path}: no such file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise NotAStore(f"{path}: not an SQLite database ({exc})") from None
    try:
        try:
            check = conn.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as exc:
            raise NotAStore(f"{path}: not an SQLite database ({exc})") from None
        if check != "ok":
            raise NotAStore(f"{path}: damaged (integrity check: {check})")
        missing = [t for t in REQUIRED if t not in tables]
        if missing:
            raise NotAStore(f"{path}: not a spotme-hub store (no {', '.join(missing)} table)")
        last = conn.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
        value = None
        if cursor is not None:
            row = conn.execute(
                "SELECT value FROM checkpoints WHERE scope = ? AND key = ?", cursor
            ).fetchone()
            value = int(orjson.loads(row[0])) if row else 0
    finally:
        conn.close()
    return Copy(path, int(last), value, path.stat().st_size)


def restore(src: Path, db: Path, cursor: Checkpoint | None = None) -> tuple[Copy, Path | None]:
    """Put the copy `src` in place of the store at `db` (the caller makes sure no hub holds
    it); the store it replaces is kept beside it as `<name>.before-restore-<time>` (returned)."""
    inspect(src)
    kept = None
    if db.exists():
        kept = db.with_name(f"{db.name}.before-restore-{time.strftime('%Y%m%dT%H%M%S')}")
        conn = sqlite3.connect(db, timeout=30)  # the WAL into the file: one file to keep
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        os.replace(db, kept)
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(db)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    return inspect(db, cursor), kept
