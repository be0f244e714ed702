"""What each command loads: a command pays only for what it uses (`--help` lists every command
without loading a part, `config check` reads every kind's options without its libraries or the
store, the store commands never load the API or a device library). Each command runs in a fresh
interpreter; the modules it imported are read from `sys.modules` as it exits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The libraries of the API, of the device kinds and of the file engine (the issue's list).
HEAVY = ("pandas", "numpy", "fastapi", "starlette", "uvicorn", "paho", "zk", "serial", "osdp",
         "openpyxl", "python_calamine")  # fmt: skip
#: What `--help` and `--version` must not load either: nothing of the hub's configuration or store.
HUB = ("pydantic", "sqlalchemy", "ruamel", "spotme_hub.config", "spotme_hub.store",
       "spotme_hub.contract", "rich")  # fmt: skip

PROBE = """
import atexit, json, sys
out, argv = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["spotme-hub", *argv]
from spotme_hub.cli import main
main()
"""


def loaded(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules `spotme-hub ARGS` imported (it must exit 0)."""
    out = tmp_path / "modules.json"
    res = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args], capture_output=True, text=True,
        cwd=ROOT, timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return set(json.loads(out.read_text()))


def imported(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of `names` (a package, or a module with its submodules) are among `modules`."""
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


@pytest.fixture
def example(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """`configs/example.yaml` (a device of every built-in kind) with its data in `tmp_path`, and
    the secrets it reads from the environment."""
    shutil.copy(ROOT / "configs" / "employees.csv", tmp_path)
    text = (ROOT / "configs" / "example.yaml").read_text()
    assert "/var/lib/spotme-hub" in text
    path = tmp_path / "hub.yaml"
    path.write_text(text.replace("/var/lib/spotme-hub", str(tmp_path / "data")))
    secrets = {"PJY_MQTT_PASSWORD": "x", "PJY_OSDP_SCBK": "00" * 16, "SPOTME_ADMIN_TOKEN": "x",
               "SPOTME_CORE_TOKEN": "x", "SPOTME_FEED_TOKEN": "x", "SPOTME_HR_TOKEN": "x"}  # fmt: skip
    return path, secrets


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("simulate", "--help")])
def test_help_and_version_load_no_part_of_the_hub(tmp_path: Path, args: tuple[str, ...]) -> None:
    modules = loaded(tmp_path, *args)
    assert imported(modules, HEAVY + HUB) == []
    assert not [m for m in modules if m.startswith("spotme_hub.adapters.") and
                not m.endswith(".commands") and m.count(".") > 2]  # fmt: skip


def test_help_still_lists_every_part_command(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "spotme_hub.cli", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)  # fmt: skip
    listed = {line.split()[0] for line in res.stdout.split("Commands:")[1].splitlines() if line}
    assert {"import", "pull", "adms", "forward", "days", "report", "run", "records"} <= listed


def test_config_check_reads_every_kind_without_its_libraries(
    tmp_path: Path, example: tuple[Path, dict[str, str]]
) -> None:
    path, secrets = example
    modules = loaded(tmp_path, "config", "check", "-c", str(path), env=secrets)
    kinds = {m.split(".")[2] for m in modules if m.startswith("spotme_hub.adapters.")}
    assert kinds >= {"csv", "http", "mqtt", "serial", "simulated", "zkteco", "zkteco_adms"}
    assert imported(modules, HEAVY + ("sqlalchemy", "httpx", "holidays")) == []


@pytest.mark.parametrize(
    "args",
    [("records", "--limit", "1"), ("devices",), ("forward", "status"), ("quarantine", "list")],
)
def test_store_commands_load_no_api_and_no_device_library(
    tmp_path: Path, example: tuple[Path, dict[str, str]], args: tuple[str, ...]
) -> None:
    path, secrets = example
    modules = loaded(tmp_path, *args, "-c", str(path), env=secrets)
    assert "spotme_hub.store" in modules  # it did read the store
    assert imported(modules, HEAVY) == []


def test_the_probe_sees_a_library_a_command_does_load(tmp_path: Path) -> None:
    """The other tests' control: an import loads the file engine, and the probe says so."""
    data = {"hub": {"data_dir": str(tmp_path / "data")}, "offices": [{"id": "hq"}],
            "devices": [{"id": "f", "kind": "csv", "office": "hq", "preset": "zkteco_attlog"}]}  # fmt: skip
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(json.dumps(data))
    export = tmp_path / "attlog.dat"
    export.write_text("1\t2026-12-07 08:01:02\t1\t0\t1\t0\n")
    modules = loaded(tmp_path, "import", str(export), "-c", str(cfg))
    assert imported(modules, ("pandas",)) == ["pandas"]
