"""Shared pieces of the serial reader tests: a hub with one `kind: serial` device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub_helpers import running as running_hub  # noqa: F401 (re-exported)
from hub_helpers import wait_until as wait_for  # noqa: F401 (re-exported)

from spotme_hub.config import HubConfig
from spotme_hub.pipeline.runtime import Hub
from spotme_hub.service import config_from_dict

DEVICE = "door-1"


def serial_config(tmp_path: Path, **options: Any) -> HubConfig:
    return config_from_dict(
        {
            "hub": {
                "data_dir": str(tmp_path / "data"),
                "restart_min_s": 0.05,
                "restart_max_s": 0.3,
                "failures_to_down": 2,
                "sqlite_synchronous": "NORMAL",
            },
            "offices": [{"id": "hq", "state": "PJY"}],
            "employees": [
                {"id": "J0001", "cards": ["134,62532"]},  # = 0008844356
                {"id": "J0002", "cards": ["0x00BC614E"]},  # = 0012345678
            ],
            "devices": [{"id": DEVICE, "kind": "serial", "office": "hq", **options}],
        },
        tmp_path,
    )


def health(hub: Hub) -> Any:
    return hub.health[DEVICE]


def records(hub: Hub) -> list[dict[str, Any]]:
    return hub.store.records(0, 10_000)


def quarantined(hub: Hub) -> list[dict[str, Any]]:
    return hub.store.quarantine_items(status=None, limit=10_000, device_id=DEVICE)
