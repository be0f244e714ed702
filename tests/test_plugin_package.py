"""A device kind from an installed package (`tests/plugins/acme_door`, installed with pip for
this test): its punches, its table, its routes and its command all reach the hub through the
contract and the `spotme_hub.adapters` entry point, with no change to the hub."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import base_config
from hub_helpers import wait_until_sync

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = Path(__file__).resolve().parent / "plugins" / "acme_door"
ADMIN, READER = "a-secret-0003", "r-secret-0001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plug-in installed by pip into a folder of its own (no build isolation: its build
    backend is the setuptools of this environment, nothing is downloaded)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(PLUGIN)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    assert list(target.glob("acme_door-1.0.dist-info/entry_points.txt"))
    return target


def hub_cli(site: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "spotme_hub.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120, **kw)  # type: ignore[call-overload]  # fmt: skip


def test_an_installed_kind_brings_its_punches_table_routes_and_command(
    site: Path, tmp_path: Path
) -> None:
    port = free_port()
    data = base_config(tmp_path)
    data["devices"] = [{"id": "front", "kind": "acme_door", "office": "hq", "door": "front"}]
    data["api"] = {
        "enabled": True,
        "listen": f"127.0.0.1:{port}",
        "tokens": [
            {"name": "reader", "token": READER, "scopes": ["feed:read"]},
            {"name": "admin", "token": ADMIN, "scopes": ["admin"]},
        ],
    }
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(yaml.safe_dump(data))

    check = hub_cli(site, "config", "check", "-c", str(cfg))
    assert check.returncode == 0, check.stderr
    assert "1 acme_door" in check.stdout

    env = {**os.environ, "PYTHONPATH": str(site)}
    log = (tmp_path / "hub.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "spotme_hub.cli", "run", "-c", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def records() -> list[dict[str, object]]:
            try:
                r = httpx.get(f"{base}/api/v1/records",
                              headers={"Authorization": f"Bearer {READER}"}, timeout=5)  # fmt: skip
            except httpx.TransportError:
                return []
            return list(r.json()["records"]) if r.status_code == 200 else []

        got = wait_until_sync(lambda: len(records()) >= 3 and records(), timeout=90,
                              what="the plug-in's punches in the feed")  # fmt: skip
        assert {r["device_id"] for r in got} == {"front"}
        assert sorted(r["source_user_id"] for r in got) == ["100", "101", "102"]

        admin = {"Authorization": f"Bearer {ADMIN}"}
        refused = httpx.post(f"{base}/api/v1/acme/front/notes", json={"note": "x"}, timeout=5,
                             headers={"Authorization": f"Bearer {READER}"})  # fmt: skip
        assert refused.status_code == 403  # the kind's routes get the hub's scopes
        made = httpx.post(f"{base}/api/v1/acme/front/notes", json={"note": "door jammed"},
                          headers=admin, timeout=5)  # fmt: skip
        assert made.status_code == 201, made.text
        schema = httpx.get(f"{base}/openapi.json", timeout=5).json()
        assert "/api/v1/acme/{device_id}/notes" in schema["paths"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()

    with sqlite3.connect(tmp_path / "data" / "hub.db") as db:  # the kind's table, in the store
        assert db.execute("SELECT device_id, note FROM acme_door_notes").fetchall() == [
            ("front", "door jammed")
        ]
    notes = hub_cli(site, "acme", "notes", "-c", str(cfg))
    assert notes.returncode == 0, notes.stderr
    assert notes.stdout.strip() == "front: door jammed"
    helped = hub_cli(site, "--help")
    assert "acme" in helped.stdout
