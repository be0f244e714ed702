"""kill -9 of `spotme-hub run` during ingestion loses no committed punch; restarts add no duplicate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import base_config
from hub_helpers import wait_until_sync

from spotme_hub.store import Store

ROOT = Path(__file__).resolve().parent.parent
TOTAL = 20_000


def start_hub(cfg_path: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "spotme_hub.cli", "run", "-c", str(cfg_path), "--no-api"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip


def test_kill_9_loses_nothing_and_restart_adds_no_duplicates(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["hub"]["sqlite_synchronous"] = "FULL"
    data["devices"] = [
        # numbered punches; every restart re-emits the last 500 already committed ones
        {"id": "seq1", "kind": "simulated", "office": "hq", "sequence": True, "burst": 40,
         "every": 0.005, "total": TOTAL, "overlap": 500, "users": ["1", "2", "3", "4", "5"]},
    ]  # fmt: skip
    cfg_path = tmp_path / "hub.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    store = Store(f"sqlite:///{tmp_path / 'data' / 'hub.db'}")
    log = tmp_path / "hub.log"
    seen: set[str] = set()
    kills = 0
    for threshold in (2_000, 7_000, 12_000):
        proc = start_hub(cfg_path, log)
        try:
            wait_until_sync(lambda t=threshold: _count(store) >= t, timeout=120)
            # what is committed now must survive the kill
            seen |= {r["id"] for r in store.iter_records()}
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        assert seen <= {r["id"] for r in store.iter_records()}, "a committed punch was lost"
    proc = start_hub(cfg_path, log)
    try:
        wait_until_sync(lambda: _count(store) >= TOTAL, timeout=180)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
    final = [r["id"] for r in store.iter_records()]
    assert kills == 3
    assert len(final) == TOTAL == len(set(final)), "re-emitted punches must not create duplicates"
    assert seen <= set(final)
    health = {h["device_id"]: h for h in store.health()}
    assert health["seq1"]["counters"]["duplicate"] >= 500  # the overlap after the last restart
    assert store.quarantine_count() == 0


def _count(store: Store) -> int:
    try:
        return store.count_records()
    except Exception:  # the database file may not exist yet
        return 0
