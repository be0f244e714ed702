"""kill -9 of `spotme-hub run` while it forwards, several times in a row: the reference core ends
up holding every committed record exactly once (deliveries may repeat; stored copies may not)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from conftest import base_config
from forward_helpers import admin, core_fixture  # noqa: F401  (fixture)
from hub_helpers import wait_until_sync

from spotme_hub.forward.core_sim import CoreServer
from spotme_hub.forward.forwarder import forward_status
from spotme_hub.service import load_config
from spotme_hub.store import Store

ROOT = Path(__file__).resolve().parent.parent
TOTAL = 8_000


def start_hub(cfg_path: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "spotme_hub.cli", "run", "-c", str(cfg_path), "--no-api"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip


def test_kill_9_mid_forward_core_holds_every_record_once(tmp_path: Path, core: CoreServer) -> None:
    data = base_config(tmp_path)
    data["hub"]["sqlite_synchronous"] = "FULL"
    data["devices"] = [
        {"id": "seq1", "kind": "simulated", "office": "hq", "sequence": True, "burst": 40,
         "every": 0.01, "total": TOTAL, "overlap": 100, "users": ["1", "2", "3", "4", "5"]},
    ]  # fmt: skip
    data["core"] = {"url": core.url, "token": "t0k", "batch_size": 100, "poll_s": 0.05,
                    "retry_min_s": 0.05, "retry_max_s": 0.5}  # fmt: skip
    core.state.token = "t0k"
    admin(core, "settings", latency_ms=15)  # keep a batch in flight most of the time
    cfg_path = tmp_path / "hub.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    cfg = load_config(cfg_path)
    store = Store(cfg.database_url)
    log = tmp_path / "hub.log"
    kills = 0
    for threshold in (800, 2_000, 3_200, 4_400, 5_600):
        proc = start_hub(cfg_path, log)
        try:
            wait_until_sync(lambda t=threshold: core.state.stored() >= t, timeout=60)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
    proc = start_hub(cfg_path, log)
    try:
        wait_until_sync(lambda: _backlog(store, cfg) == 0 and _count(store) >= TOTAL, timeout=120)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]

    hub_ids = [r["id"] for r in store.iter_records()]
    stats: Any = admin(core, "stats")
    assert kills == 5
    assert len(hub_ids) == TOTAL == len(set(hub_ids))
    assert stats["stored"] == stats["distinct_ids"] == TOTAL  # no stored copy twice
    assert set(core.state.ids()) == set(hub_ids)  # every committed record reached the core
    assert stats["deliveries"] >= TOTAL
    # the CLI agrees: nothing left to send, nothing dead-lettered
    out = subprocess.run(
        [sys.executable, "-m", "spotme_hub.cli", "forward", "status", "--json", "-c", str(cfg_path)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    status = json.loads(out.stdout)
    assert status["backlog"] == 0 and status["dead_letters"] == 0
    assert status["cursor"] == store.max_seq()


def _backlog(store: Store, cfg: Any) -> int:
    try:
        return int(forward_status(store, cfg)["backlog"])
    except Exception:  # tables may not exist yet
        return -1


def _count(store: Store) -> int:
    try:
        return store.count_records()
    except Exception:
        return 0
