"""The built wheel, installed into a clean virtual environment without any extra (no checkout on
the path): its runtime dependencies are complete and what it needs ships in it — the demo runs
from it, `config check` reads the example, and a workbook big enough to be streamed is read
through openpyxl, which a dev extra once provided (`ModuleNotFoundError` on a normal install)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import openpyxl

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_alone_imports_a_streamed_workbook(tmp_path: Path) -> None:
    dist, src = tmp_path / "dist", tmp_path / "src"  # built from a clean copy of the tree
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "data", "test-artifacts", "__pycache__", "*.db*"))  # fmt: skip
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(src)], check=True, cwd=tmp_path, timeout=300)  # fmt: skip
    (wheel,) = dist.glob("spotme_hub-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, str(wheel)], check=True, cwd=tmp_path, timeout=600)
    python = str(venv / "bin" / "python")
    listed = subprocess.run([python, "-m", "pip", "list", "--format", "json"], cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert "spotme-hub" in installed and not {"pytest", "mypy", "ruff"} & installed

    book = tmp_path / "export.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["No. Pekerja", "Masa", "Status"])
    for i in range(2000):
        wb.active.append(
            [str(i % 7 + 1), f"2026-12-07 08:{i // 60 % 60:02d}:{i % 60:02d}", "Masuk"]
        )
    wb.save(book)
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(json.dumps({
        "hub": {"data_dir": str(tmp_path / "data")}, "offices": [{"id": "hq"}],
        "devices": [{"id": "hr", "kind": "csv", "office": "hq", "preset": "generic",
                     "stream_sheet_mb": 0.01,  # this sheet's XML is larger: streamed
                     "columns": {"user_id": "No. Pekerja", "time": "Masa",
                                 "punch": {"path": "Status", "map": {"Masuk": "in"}}}}],
    }))  # fmt: skip
    hub = str(venv / "bin" / "spotme-hub")
    res = subprocess.run([hub, "import", str(book), "-c", str(cfg)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "imported 2,000" in " ".join(res.stdout.split()), res.stdout
    where = subprocess.run([python, "-c", "import spotme_hub, openpyxl; print(spotme_hub.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert str(venv) in where  # the installed package, not the checkout

    secrets = {"PJY_MQTT_PASSWORD": "x", "PJY_OSDP_SCBK": "00" * 16, "SPOTME_ADMIN_TOKEN": "x",
               "SPOTME_CORE_TOKEN": "x", "SPOTME_FEED_TOKEN": "x", "SPOTME_HR_TOKEN": "x"}  # fmt: skip
    example = tmp_path / "example"
    example.mkdir()
    for name in ("example.yaml", "employees.csv"):
        shutil.copy(ROOT / "configs" / name, example)
    checked = subprocess.run([hub, "config", "check", "-c", str(example / "example.yaml")],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120,
                             env={**os.environ, **secrets})  # fmt: skip
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = subprocess.run([hub, "demo", "--duration", "10", "--port", str(port)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "punches committed" in demo.stdout and f"http://127.0.0.1:{port}/" in demo.stdout
