"""Helpers for the forwarding tests: canonical records to commit and a reference core fixture."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from spotme_hub.forward.core_sim import CoreServer, CoreState
from spotme_hub.record import Record, identity_key, record_id

T0 = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)


def make_records(n: int, start: int = 0, device: str = "dev1") -> list[Record]:
    out = []
    for i in range(start, start + n):
        when = T0 + timedelta(seconds=i)
        local = (when + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S")
        out.append(
            Record(
                id=record_id(identity_key(device, str(i % 50), local, "in")),
                employee_id=f"E{i % 50}", source_user_id=str(i % 50), card=None, punch="in",
                verify="fingerprint", occurred_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                local_time=local + "+08:00", timezone="Asia/Kuala_Lumpur",
                received_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"), clock_skew_s=None,
                device_id=device, device_kind="simulated", device_serial="SIM-1", office_id="hq",
                office_state="PJY", latitude=2.9264, longitude=101.6964,
                location_source="office", distance_m=0.0, within_geofence=i % 3 != 0,
                flags=["clock_skew"] if i % 7 == 0 else [], source={"kind": "simulated", "i": i},
                raw={"index": i, "note": "línea ünïcode"},
            )
        )  # fmt: skip
    return out


@pytest.fixture(name="core")
def core_fixture() -> Iterator[CoreServer]:
    server = CoreServer(CoreState(seed=7)).start()
    yield server
    server.stop()


def admin(core: CoreServer, path: str, **settings: object) -> object:
    """GET (no settings) or POST settings to the core's admin API over HTTP."""
    url = f"{core.url}/admin/{path}"
    resp = httpx.post(url, json=settings) if settings else httpx.get(url)
    resp.raise_for_status()
    return resp.json()
