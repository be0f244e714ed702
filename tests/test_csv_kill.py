"""kill -9 of a real `spotme-hub import` mid-file, then import again: one copy of each punch."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from fileimport_helpers import attlog_line

ROWS = 60_000


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
    except sqlite3.OperationalError:  # table not created yet
        return 0


def test_kill9_mid_import_then_reimport_gives_exactly_one_copy(tmp_path: Path) -> None:
    data = tmp_path / "big_attlog.dat"
    with data.open("w", newline="") as fh:
        for i in range(ROWS):
            day, sec = divmod(i, 40_000)
            fh.write(
                attlog_line(
                    str(i % 977),
                    f"2025-01-{day + 1:02d} {sec // 3600 + 6:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}",
                    i % 2,
                )
            )
    db = tmp_path / "hub.db"
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(
        f"hub:\n  database: sqlite:///{db}\noffices:\n  - id: hq\n"
        "devices:\n  - id: usb\n    kind: csv\n    office: hq\n    chunk_rows: 500\n"
    )
    exe = str(Path(sys.executable).parent / "spotme-hub")
    cmd = [exe, "import", str(data), "-c", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _count(db) == 0:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _count(db)
    assert 0 < partial < ROWS, "the import must be interrupted half-way"

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "already imported" not in done.stdout
    with sqlite3.connect(db) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT json_extract(doc, '$.source_user_id') || '|'"
            " || json_extract(doc, '$.local_time') || '|' || json_extract(doc, '$.punch'))"
            " FROM records"
        ).fetchone()
    assert total == distinct == ROWS
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert "already imported" in again.stdout
