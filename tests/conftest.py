"""Shared fixtures: configs built from dicts, stores on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spotme_hub.config import HubConfig
from spotme_hub.service import config_from_dict, tables
from spotme_hub.store import Store

PG_URL = os.environ.get("SPOTME_TEST_PG_URL")


def base_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "hub": {"id": "test-hub", "data_dir": str(tmp_path / "data"), "sqlite_synchronous": "NORMAL"},
        "offices": [
            {"id": "hq", "name": "HQ Putrajaya", "state": "PJY", "latitude": 2.9264,
             "longitude": 101.6964, "geofence_m": 150},
            {"id": "kch", "state": "SWK", "timezone": "Asia/Kuching"},
        ],
        "employees": [
            {"id": "E1", "user_ids": ["1"], "cards": ["0008844356"]},
            {"id": "E2", "user_ids": ["2", "dev2:7"]},
        ],
        "devices": [],
        "api": {"enabled": False},
    }  # fmt: skip
    data.update(sections)
    return data


@pytest.fixture
def make_config(tmp_path: Path) -> Any:
    def make(**sections: Any) -> HubConfig:
        return config_from_dict(base_config(tmp_path, **sections), base_dir=tmp_path)

    return make


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if not PG_URL:
        pytest.skip(
            "PostgreSQL tests need SPOTME_TEST_PG_URL (scripts/test sets it when 127.0.0.1:5432 answers)"
        )
    from sqlalchemy import create_engine, text

    name = f"spotme_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    s.create_all(tables())
    yield s
    s.close()
