"""Shared pieces for the ZKTeco tests: a hub config around a simulator, a running hub, waiting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub_helpers import running  # noqa: F401 (re-exported)
from hub_helpers import wait_until as wait_for  # noqa: F401 (re-exported)

from spotme_hub.adapters.zkteco.simulator import ZKSimulator
from spotme_hub.config import HubConfig
from spotme_hub.pipeline.runtime import Hub
from spotme_hub.service import config_from_dict
from spotme_hub.store import RecordFilter

DEVICE = "zk-lobby"


def hub_config(tmp_path: Path, sim: ZKSimulator, **options: Any) -> HubConfig:
    device = {"id": DEVICE, "kind": "zkteco", "office": "hq", "host": "127.0.0.1",
              "port": sim.port, "transport": "udp" if sim.udp else "tcp", "timeout": 2,
              "poll_every": 0.5, **options}  # fmt: skip
    return config_from_dict(
        {
            "hub": {"data_dir": str(tmp_path), "sqlite_synchronous": "NORMAL",
                    "failures_to_down": 2, "restart_min_s": 0.05, "restart_max_s": 0.2},
            "offices": [{"id": "hq", "state": "PJY"}],
            "employees": [{"id": f"E{i}", "user_ids": [str(i)]} for i in range(1, 7)],
            "devices": [device],
        },
        tmp_path,
    )  # fmt: skip


def stored(hub: Hub) -> int:
    return hub.store.count_records(RecordFilter(device_id=DEVICE))
