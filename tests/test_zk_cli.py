"""`spotme-hub pull` and `spotme-hub simulate zk` from the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from zk import ZK

from spotme_hub.adapters.zkteco.simulator import Faults, ZKSimulator
from spotme_hub.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, port: int, comm_key: int = 0) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(
        f"""hub:
  data_dir: {tmp_path}
offices:
  - {{id: hq, state: PJY}}
employees:
  - {{id: E1, user_ids: ["1"]}}
devices:
  - id: zk-lobby
    kind: zkteco
    office: hq
    host: 127.0.0.1
    port: {port}
    comm_key: {comm_key}
    timeout: 3
"""
    )
    return path


def test_pull_command_summary(tmp_path: Path) -> None:
    with ZKSimulator(records=1500, record_size=40) as sim:
        path = write_config(tmp_path, sim.port)
        first = CliRunner().invoke(cli, ["pull", "zk-lobby", "-c", str(path)])
        assert first.exit_code == 0, first.output
        assert "read 1500, new 1500, duplicate 0, quarantined 0" in first.output
        sim.add_punch("1")
        again = CliRunner().invoke(cli, ["pull", "zk-lobby", "-c", str(path)])
        assert "read 1501, new 1, duplicate 1500, quarantined 0" in again.output
        assert sim.enabled
        records = CliRunner().invoke(cli, ["records", "-c", str(path), "--format", "json"])
        assert records.exit_code == 0


def test_pull_command_wrong_key(tmp_path: Path) -> None:
    with ZKSimulator(records=10, comm_key=55) as sim:
        result = CliRunner().invoke(
            cli, ["pull", "zk-lobby", "-c", str(write_config(tmp_path, sim.port, 56))]
        )
        assert result.exit_code != 0
        assert "unauthorized" in result.output


def test_pull_command_rejects_other_kinds(tmp_path: Path) -> None:
    path = write_config(tmp_path, 4370)
    result = CliRunner().invoke(cli, ["pull", "nope", "-c", str(path)])
    assert result.exit_code != 0 and "no device 'nope'" in result.output


def test_simulate_zk_command() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotme_hub.cli", "simulate", "zk", "--port", "0", "--udp",
         "--records", "50", "--record-size", "16", "--comm-key", "7"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(re.search(r":(\d+):", line).group(1))  # type: ignore[union-attr]
        zk = ZK("127.0.0.1", port=port, password=7, force_udp=True, ommit_ping=True, timeout=10)
        conn = zk.connect()
        assert len(conn.get_attendance()) == 50
        conn.disconnect()
    finally:
        proc.terminate()
        proc.wait(10)


def test_example_config_is_valid() -> None:
    result = CliRunner().invoke(
        cli, ["config", "check", "-c", str(ROOT / "configs" / "example.yaml")]
    )
    assert result.exit_code == 0, result.output


def test_pull_goes_on_when_the_terminal_refuses_informational_options(tmp_path: Path) -> None:
    """Older firmwares answer ACK_ERROR to ~Platform, ~SerialNumber, ~DeviceName and the
    version query: those are recorded as unknown, and the log is pulled."""
    refused = Faults(refuse=("~Platform", "~SerialNumber", "~DeviceName", "version"))
    with ZKSimulator(records=300, record_size=40, faults=refused) as sim:
        path = write_config(tmp_path, sim.port)
        pulled = CliRunner().invoke(cli, ["pull", "zk-lobby", "-c", str(path)])
        assert pulled.exit_code == 0, pulled.output
        assert "read 300, new 300, duplicate 0, quarantined 0" in pulled.output
        devices = CliRunner().invoke(cli, ["devices", "-c", str(path), "--format", "json"])
        (zk,) = json.loads(devices.output)
        detail = zk["detail"]
        assert zk["state"] == "UP", zk
        assert {detail[k] for k in ("serial", "firmware", "platform", "model")} == {"unknown"}
