"""kill -9 of a real `spotme-hub import` mid-file, then import again: one copy of each punch.
Once with the chunks committed by a writer thread (a small file), once by a writer process (a file
above `PROCESS_MIN_BYTES`), which must not outlive the killed import."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fileimport_helpers import attlog_line

from spotme_hub.adapters.csv.writer import PROCESS_MIN_BYTES
from spotme_hub.store import Store


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
    except sqlite3.OperationalError:  # table not created yet
        return 0


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_kill9_mid_import_then_reimport_gives_exactly_one_copy(tmp_path: Path, writer: str) -> None:
    line = len(attlog_line("976", "2025-01-01 06:00:00"))
    rows = 60_000 if writer == "thread" else PROCESS_MIN_BYTES // line + 10_000
    assert (rows * line >= PROCESS_MIN_BYTES) == (writer == "process")
    data = tmp_path / "big_attlog.dat"
    with data.open("w", newline="") as fh:
        for i in range(rows):
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
    helpers = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if writer == "process":
        assert helpers, "a writer process was expected"
        deadline = time.monotonic() + 60  # it ends its transaction, reads end-of-file and exits
        while any(_alive(p) for p in helpers):
            assert time.monotonic() < deadline, "the writer process outlived the killed import"
            time.sleep(0.05)
    partial = _count(db)
    assert 0 < partial < rows, "the import must be interrupted half-way"

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "already imported" not in done.stdout
    assert f"committed by a worker {writer}" in " ".join(done.stdout.split())
    store = Store(f"sqlite:///{db}")
    punches = [(r["source_user_id"], r["local_time"], r["punch"]) for r in store.iter_records()]
    store.close()
    assert len(punches) == len(set(punches)) == rows
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert "already imported" in again.stdout
