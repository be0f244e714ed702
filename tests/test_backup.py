"""`spotme-hub backup` of a running hub's SQLite store while punches commit and the forwarder
drains into the reference core, then `spotme-hub restore`: every record once, the cursor
consistent, the copy whole; after the restore the forwarder resends at most what came after the
copy's cursor and the core keeps each record once. Real processes, real sockets."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml
from conftest import base_config

from spotme_hub.forward.core_sim import CoreServer, CoreState
from spotme_hub.store.backup import inspect

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spotme_hub.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)  # fmt: skip


def until(ok, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def stored(db: Path, after: int = 0) -> list[str]:
    """The record ids in an SQLite store file (those with seq above `after`), in seq order."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT id FROM records WHERE seq > ? ORDER BY seq", (after,)
        ).fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def test_backup_while_running_then_restore(tmp_path: Path) -> None:
    core = CoreServer(CoreState()).start()
    core.state.settings({"latency_ms": 300})  # a slow core: the forwarder lags the commits
    data = base_config(tmp_path)
    data["core"] = {"url": core.url, "batch_size": 20}
    data["devices"] = [{"id": "sim", "kind": "simulated", "office": "hq", "every": 0.01,
                        "sequence": True, "users": ["1", "2"]}]  # fmt: skip
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data))
    db = tmp_path / "data" / "hub.db"
    hub = subprocess.Popen([sys.executable, "-m", "spotme_hub.cli", "run", "-c", str(path)],
                           cwd=ROOT, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        until(lambda: core.state.stored() > 60, "the core receiving")
        (tmp_path / "copies").mkdir()
        made = cli("backup", "-c", str(path), str(tmp_path / "copies"))  # a directory: dated
        assert made.returncode == 0, made.stderr
        (copy_path,) = (tmp_path / "copies").glob("spotme-hub-*.db")
        assert f"{copy_path}:" in made.stdout and "forward cursor" in made.stdout
        refused = cli("restore", "-c", str(path), str(copy_path))
        assert refused.returncode == 1 and "is running" in refused.stderr
        time.sleep(1.0)  # more commits and deliveries after the copy
    finally:
        hub.send_signal(signal.SIGTERM)
        _, err = hub.communicate(timeout=60)
    assert hub.returncode == 0, err[-2000:]

    copy = inspect(copy_path, ("forwarder", "cursor"))  # whole: the integrity check passed
    kept = stored(copy_path)
    assert kept and len(kept) == len(set(kept))  # every record once
    assert copy.cursor is not None and 0 < copy.cursor < copy.last_seq  # some not delivered yet
    undelivered = len(stored(copy_path, copy.cursor))
    assert len(stored(db)) > len(kept)  # the hub went on after the copy
    at_core = core.state.stats()
    assert at_core["stored"] == at_core["distinct_ids"]

    # restore it; the forwarder alone (the device left off) resends what followed the cursor
    done = cli("restore", "-c", str(path), str(copy_path))
    assert done.returncode == 0, done.stderr
    assert "the store it replaced is" in done.stdout
    assert list(db.parent.glob("hub.db.before-restore-*"))
    data["devices"][0]["enabled"] = False
    path.write_text(yaml.safe_dump(data))
    before = at_core["deliveries"]
    core.state.settings({"latency_ms": 0})
    hub = subprocess.Popen([sys.executable, "-m", "spotme_hub.cli", "run", "-c", str(path)],
                           cwd=ROOT, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        status = lambda: json.loads(cli("forward", "status", "-c", str(path),  # noqa: E731
                                        "--format", "json").stdout)  # fmt: skip
        until(lambda: status()["backlog"] == 0, "the restored backlog drained")
    finally:
        hub.send_signal(signal.SIGTERM)
        _, err = hub.communicate(timeout=60)
        core.stop()
    assert hub.returncode == 0, err[-2000:]
    after = core.state.stats()
    resent = after["deliveries"] - before
    assert 0 < resent <= undelivered  # at most what came after the copy's cursor
    assert after["stored"] == after["distinct_ids"]  # the core kept each record once
    assert set(kept) <= set(core.state.ids())  # and has every record of the copy
    assert stored(db) == kept


def test_restore_refuses_what_is_not_a_whole_store(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    res = cli("restore", "-c", str(path), str(junk))
    assert res.returncode == 1 and "not an SQLite database" in res.stderr
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    res = cli("restore", "-c", str(path), str(other))
    assert res.returncode == 1 and "not a spotme-hub store" in res.stderr
    assert not (tmp_path / "data" / "hub.db").exists()  # nothing was put in place


def test_on_postgresql_the_commands_say_what_to_run(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["hub"]["database"] = "postgresql+psycopg://hub:s3cret@db.example:5432/spotme"
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data))
    res = cli("backup", "-c", str(path), str(tmp_path / "x.dump"))
    assert res.returncode == 2 and "pg_dump --format=custom" in res.stderr
    assert (
        "postgresql://hub:***@db.example:5432/spotme" in res.stderr and "s3cret" not in res.stderr
    )
    res = cli("restore", "-c", str(path), str(path))
    assert res.returncode == 2 and "pg_restore" in res.stderr
