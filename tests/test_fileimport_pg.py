"""The bulk path on PostgreSQL (runs when SPOTME_TEST_PG_URL is set), in a throw-away database."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from fileimport_helpers import attlog_line, run_import, write

from spotme_hub.service import config_from_dict, tables
from spotme_hub.store import Store

PG_URL = os.environ.get("SPOTME_TEST_PG_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="SPOTME_TEST_PG_URL is not set")


@pytest.fixture
def pg_db_url():
    import psycopg
    from sqlalchemy.engine import make_url

    assert PG_URL
    url = make_url(PG_URL)
    name = f"spotme_csv_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_bulk_import_idempotent_on_postgresql(tmp_path: Path, pg_db_url: str, writer: str) -> None:
    cfg = config_from_dict(
        {
            "hub": {"database": pg_db_url},
            "offices": [{"id": "hq", "latitude": 2.9, "longitude": 101.7, "geofence_m": 100}],
            "devices": [{"id": "usb", "kind": "csv", "office": "hq", "chunk_rows": 100}],
        },
        tmp_path,
    )
    store = Store(cfg.database_url)
    store.create_all(tables())
    try:
        text = "".join(
            attlog_line(str(u), f"2025-03-01 {8 + u // 60:02d}:{u % 60:02d}:00", u % 2)
            for u in range(250)
        )
        text += attlog_line("x", "not a time")
        path = write(tmp_path / "a_attlog.dat", text)
        s = run_import(cfg, store, path, writer=writer)
        assert s.writer == writer
        assert (s.imported, s.duplicates, s.quarantined) == (250, 0, 1)
        assert run_import(cfg, store, path).already_imported is not None
        forced = run_import(cfg, store, path, force=True, writer=writer)
        assert (forced.imported, forced.duplicates) == (0, 250)
        more = text.replace("2025-03-01", "2025-03-02")
        s2 = run_import(cfg, store, write(tmp_path / "b_attlog.dat", text + more), writer=writer)
        assert (s2.imported, s2.duplicates) == (250, 250)
        recs = list(store.iter_records())
        assert len(recs) == 500
        assert [r["seq"] for r in recs] == sorted(r["seq"] for r in recs)
        assert recs[0]["within_geofence"] is True and recs[0]["flags"] == ["unmapped_employee"]
    finally:
        store.close()
