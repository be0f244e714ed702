"""The CLI over a real store: records, devices, quarantine list and replay after a config fix."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml
from conftest import base_config

from spotme_hub.normalize import Normalizer
from spotme_hub.record import RawPunch, Rejection
from spotme_hub.service import load_config, open_hub
from spotme_hub.store import Store

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spotme_hub.cli", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip


def write_config(tmp_path: Path, **hub: object) -> Path:
    data = base_config(tmp_path)
    data["hub"].update(hub)
    data["devices"] = [{"id": "sim", "kind": "simulated", "office": "hq", "every": 0.01,
                        "sequence": True, "total": 30, "users": ["1", "2", "9"]}]  # fmt: skip
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_records_devices_and_replay(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    cfg = load_config(path)

    async def ingest() -> None:
        hub = open_hub(cfg)
        await hub.start()
        while hub.store.count_records() < 30:
            await asyncio.sleep(0.02)
        # an agency word the hub does not know yet: quarantined, not lost
        out = Normalizer(cfg).normalize(cfg.device("sim"), RawPunch(
            device_time=datetime(2026, 3, 3, 8, 1), user_id="1", punch="Hadir", raw="1\tHadir"))  # fmt: skip
        assert isinstance(out, Rejection)
        await hub.writer.submit([], [out])
        await hub.stop()

    asyncio.run(ingest())

    res = cli("records", "-c", str(path), "--format", "json", "--limit", "0")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 30 and {r["device_id"] for r in rows} == {"sim"}
    unmapped = cli(
        "records",
        "-c",
        str(path),
        "--format",
        "json",
        "--limit",
        "0",
        "--flag",
        "unmapped_employee",
    )
    assert len(unmapped.stdout.splitlines()) == sum(r["source_user_id"] == "9" for r in rows) == 10
    tail = cli("records", "-c", str(path), "--format", "csv", "--limit", "5", "--employee", "E1")
    assert tail.returncode == 0 and len(tail.stdout.strip().splitlines()) == 1 + 5

    dev = cli("devices", "-c", str(path), "--format", "json")
    (health,) = json.loads(dev.stdout)
    assert health["device_id"] == "sim" and health["counters"]["new"] == 30

    q = cli("quarantine", "list", "-c", str(path), "--format", "json")
    (item,) = [json.loads(line) for line in q.stdout.splitlines()]
    assert "unknown punch type 'Hadir'" in item["reason"] and item["device_id"] == "sim"

    still = cli("quarantine", "replay", "-c", str(path), str(item["qid"]))
    assert still.returncode == 1 and "still rejected" in still.stdout

    fixed = write_config(tmp_path, punch_map={"Hadir": "in"})
    ok = cli("quarantine", "replay", "-c", str(fixed), "--all")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 of 1 replayed" in ok.stdout
    store = Store(cfg.database_url)
    assert store.count_records() == 31 and store.quarantine_count() == 0
    (replayed,) = [r for r in store.iter_records() if r["raw"] == "1\tHadir"]
    assert replayed["punch"] == "in" and replayed["employee_id"] == "E1"
    assert store.quarantine_items("replayed")[0]["resolution"] == "1 record(s)"


def test_unknown_command_and_bad_config_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("offices: [{id: a, latitude: 1}]\n")
    res = cli("devices", "-c", str(path))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "latitude and longitude go together" in res.stderr
    assert cli("--help").returncode == 0
    for sub in ("run", "demo", "records", "devices", "quarantine", "config", "simulate"):
        assert cli(sub, "--help").returncode == 0, sub


def test_demo_runs_and_shows_punches(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = subprocess.run(
        [sys.executable, "-m", "spotme_hub.cli", "demo", "--duration", "8", "--port", str(port),
         "--keep", str(tmp_path / "demo")],
        capture_output=True, text=True, cwd=ROOT, timeout=180,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"http://127.0.0.1:{port}/" in res.stdout
    store = Store(f"sqlite:///{tmp_path / 'demo' / 'hub.db'}")
    assert store.count_records() > 0
    assert "punches committed" in res.stdout
    # the last line: today per office from the stored days (the demo's officers arrive today)
    (line,) = [ln for ln in res.stdout.splitlines() if ln.startswith("today ")]
    assert re.match(r"today \d{4}-\d{2}-\d{2}: kb-district 4 officers, \d+ present", line), line
    assert "; kch-branch 4 officers, " in line and "; pjy-hq 12 officers, " in line
    present = int(line.split("pjy-hq 12 officers, ")[1].split(" ")[0])
    assert present >= 1  # the morning's arrivals come first, one a second
    # --keep: a configuration the other commands read without the demo's environment
    kept = tmp_path / "demo" / "hub.yaml"
    assert f"spotme-hub records -c {kept}" in " ".join(res.stdout.split())
    assert "${DEMO_" not in kept.read_text()
    listed = cli("records", "-c", str(kept), "--format", "json", "--limit", "0")
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == store.count_records()
    assert cli("devices", "-c", str(kept)).returncode == 0
    assert cli("days", "-c", str(kept)).returncode == 0


def test_records_since_and_until_read_times_as_the_api_does(tmp_path: Path) -> None:
    """Offsets, Z and dates are read as times (the store keeps UTC); anything else is refused
    with exit 2 instead of an empty answer."""
    path = write_config(tmp_path)
    cfg = load_config(path)
    normalizer, device = Normalizer(cfg), cfg.device("sim")
    # device-local (Malaysian) times: 6 Dec 23:30, 7 Dec 04:59:59, 05:00, 05:00:01, 13:00
    local = [datetime(2026, 12, 6, 23, 30), datetime(2026, 12, 7, 4, 59, 59),
             datetime(2026, 12, 7, 5, 0), datetime(2026, 12, 7, 5, 0, 1),
             datetime(2026, 12, 7, 13, 0)]  # fmt: skip
    made = [normalizer.normalize(device, RawPunch(device_time=t, user_id="1", punch="in"),
                                 now=datetime(2026, 12, 7, 12, tzinfo=UTC)) for t in local]  # fmt: skip
    store = Store(cfg.database_url)
    store.create_all()
    store.commit([r for r in made if not isinstance(r, Rejection)])
    store.close()

    def times(*bounds: str) -> list[str]:
        res = cli("records", "-c", str(path), "--format", "json", "--limit", "0", *bounds)
        assert res.returncode == 0, res.stderr
        return [json.loads(line)["local_time"][11:19] for line in res.stdout.splitlines()]

    assert times("--since", "2026-12-07T05:00:00+08:00") == ["05:00:00", "05:00:01", "13:00:00"]
    assert times("--since", "2026-12-06T21:00:00Z") == ["05:00:00", "05:00:01", "13:00:00"]
    assert times("--until", "2026-12-07T05:00:01+08:00") == ["23:30:00", "04:59:59", "05:00:00"]
    assert times("--since", "2026-12-07") == ["04:59:59", "05:00:00", "05:00:01", "13:00:00"]
    assert times("--since", "2026-12-07", "--until", "2026-12-07T05:00:00.5+08:00") == [
        "04:59:59", "05:00:00"]  # fmt: skip
    for bad in ("yesterday", "2026-12-07T05:00:00", "2026-13-01", "2026-12-07T05:00:00+08:00x"):
        res = cli("records", "-c", str(path), "--since", bad)
        assert res.returncode == 2, (bad, res.stdout, res.stderr)
        assert "--since" in res.stderr and "Traceback" not in res.stderr


def test_a_busy_port_is_one_clear_line_before_anything_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(tmp_path)
        data = yaml.safe_load(path.read_text())
        data["api"] = {"listen": f"127.0.0.1:{port}"}
        path.write_text(yaml.safe_dump(data))
        for args in (("run", "-c", str(path)), ("demo", "--port", str(port), "--duration", "5")):
            res = cli(*args)
            assert res.returncode == 1, (args, res.stdout, res.stderr)
            assert res.stderr.strip().splitlines() == [
                f"Error: cannot listen on 127.0.0.1:{port}: the port is in use (another hub or "
                "program); free it or choose another port (api.listen, or --port for the demo)"
            ], res.stderr
            assert "dashboard and API at" not in res.stdout and "store sqlite" not in res.stderr


def test_tables_fit_80_columns_without_cutting_a_value_and_json_is_one_spelling(
    tmp_path: Path,
) -> None:
    import click

    from spotme_hub.cli.main import _add_part_commands
    from spotme_hub.cli.main import cli as root

    path = write_config(tmp_path)
    cfg = load_config(path)
    normalizer, device = Normalizer(cfg), cfg.device("sim")
    store = Store(cfg.database_url)
    store.create_all()
    rec = normalizer.normalize(device, RawPunch(device_time=datetime(2026, 12, 7, 8, 1, 2),
                                                user_id="9", punch="in"),
                               now=datetime(2026, 12, 7, 1, tzinfo=UTC))  # fmt: skip
    bad = Rejection("unknown punch type 'Hadir' (add it to hub.punch_map: {Hadir: in})",
                    {"pin": "1", "status": "Hadir"}, {"file": "a-long-export-name.csv", "line": 1234},
                    "sim")  # fmt: skip
    store.commit([rec], [bad])  # type: ignore[list-item]
    store.close()
    env = {**__import__("os").environ, "COLUMNS": "80"}
    for args, whole in ((["records"], ["unmapped_employee", "2026-12-07 08:01:02"]),
                        (["quarantine", "list"], ["a-long-export-name.csv line 1234", "punch_map"])):  # fmt: skip
        res = subprocess.run([sys.executable, "-m", "spotme_hub.cli", *args, "-c", str(path)],
                             capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)  # fmt: skip
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert lines and max(len(ln) for ln in lines) <= 80, res.stdout
        assert "…" not in res.stdout, res.stdout  # folded, not cut
        columns: dict[int, str] = {}  # each column's text, its wrapped lines joined
        for ln in lines:
            if ln.startswith("│"):
                for i, cell in enumerate(ln.split("│")[1:-1]):
                    columns[i] = columns.get(i, "") + cell.strip()
        for value in whole:
            found = [t for t in columns.values() if value.replace(" ", "") in t.replace(" ", "")]
            assert found, (value, res.stdout)
    # every command that prints data takes --format with json among its choices
    _add_part_commands()
    printing = [("records",), ("devices",), ("quarantine", "list"), ("forward", "status"),
                ("forward", "dead"), ("adms", "commands"), ("adms", "pending"), ("days",)]  # fmt: skip
    for names in printing:
        cmd: click.Command = root
        for name in names:
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[name]
        (fmt,) = [p for p in cmd.params if p.name == "fmt"]
        assert isinstance(fmt.type, click.Choice) and "json" in fmt.type.choices, names
        assert fmt.opts == ["--format"], names


def test_run_writes_json_lines_to_a_rotated_log_file(tmp_path: Path) -> None:
    """`--log-format json` (or hub.log_format): one JSON object per event with the device, its
    kind and record counts; hub.log_file is rotated by the standard library's handler."""
    import signal
    import time

    path = write_config(tmp_path, log_file="logs/hub.log", log_file_max_mb=0.002,
                        log_file_backups=2, log_level="info")  # fmt: skip
    data = yaml.safe_load(path.read_text())
    data["api"] = {"enabled": False}
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([sys.executable, "-m", "spotme_hub.cli", "--log-format", "json",
                             "run", "-c", str(path)], cwd=ROOT, stderr=subprocess.PIPE, text=True)  # fmt: skip
    log = tmp_path / "logs" / "hub.log"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (tmp_path / "logs" / "hub.log.1").exists():
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    files = sorted((tmp_path / "logs").iterdir())
    assert [f.name for f in files] == ["hub.log", "hub.log.1", "hub.log.2"][: len(files)]
    assert len(files) >= 2 and all(f.stat().st_size <= 2100 for f in files[1:])
    events = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert {"ts", "level", "logger", "msg"} <= set(events[0])
    commits = [e for e in events if e.get("event") == "commit"]
    assert commits and commits[0]["device"] == "sim" and commits[0]["records"] >= 1
    assert commits[0]["kind"] == "simulated" and commits[0]["level"] == "info"
    assert log.read_text() and "Traceback" not in err


def test_reload_starts_and_stops_devices_without_touching_the_others(tmp_path: Path) -> None:
    """`spotme-hub reload` (SIGHUP): a device added to the YAML starts, a removed one stops,
    the one left alone keeps running (its counters go on); a file with errors is refused by the
    command, and by the hub when signalled directly, and the running configuration stays."""
    import os
    import signal
    import time
    import urllib.request

    from spotme_hub.forward.core_sim import free_port

    port = free_port()
    path = write_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["devices"][0].pop("total")  # runs until stopped
    data["devices"][0]["every"] = 0.05
    data["api"] = {"listen": f"127.0.0.1:{port}"}
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([sys.executable, "-m", "spotme_hub.cli", "-v", "run", "-c", str(path)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)  # fmt: skip

    def devices() -> dict[str, dict]:  # type: ignore[type-arg]
        url = f"http://127.0.0.1:{port}/api/v1/devices"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return {d["device_id"]: d for d in json.loads(resp.read())}

    def until(ok, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the hub exited"
            try:
                if ok():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(what)

    try:
        until(lambda: devices()["sim"]["counters"].get("new", 0) > 3, "sim committing")
        before = devices()["sim"]["counters"]["new"]
        # add a second device
        second = {**data["devices"][0], "id": "sim2", "users": ["2"]}
        data["devices"].append(second)
        path.write_text(yaml.safe_dump(data))
        res = cli("reload", "-c", str(path))
        assert res.returncode == 0, res.stderr
        until(lambda: devices()["sim2"]["counters"].get("new", 0) > 0, "sim2 started")
        assert devices()["sim"]["counters"]["new"] > before  # left running, counters kept
        # a broken file: the command refuses it, the hub is not asked
        path.write_text(path.read_text().replace("kind: simulated", "kind: teleporter", 1))
        refused = cli("reload", "-c", str(path))
        assert refused.returncode == 2 and "unknown kind 'teleporter'" in refused.stderr
        # ... and the hub, signalled directly, refuses it too and keeps what runs
        os.kill(proc.pid, signal.SIGHUP)
        time.sleep(1.0)
        assert set(devices()) == {"sim", "sim2"} and proc.poll() is None
        # remove the first device
        data["devices"] = [second]
        path.write_text(yaml.safe_dump(data))
        assert cli("reload", "-c", str(path)).returncode == 0
        until(lambda: set(devices()) == {"sim2"}, "sim removed")
        stopped_at = devices()["sim2"]["counters"]["new"]
        until(lambda: devices()["sim2"]["counters"]["new"] > stopped_at, "sim2 still running")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert "reload refused" in err and "unknown kind 'teleporter'" in err
    assert "devices added ['sim2']" in err and "removed ['sim']" in err
    assert not (tmp_path / "data" / "hub.pid").exists()  # removed when the hub stopped


def test_init_writes_a_starter_that_checks_and_says_what_next(tmp_path: Path) -> None:
    import os

    kinds = ["zkteco", "zkteco_adms", "mqtt", "serial", "csv", "http", "simulated"]
    made = cli("init", str(tmp_path / "hub"), *[a for k in kinds for a in ("--kind", k)],
               "--office", "kb-district", "--state", "KTN")  # fmt: skip
    assert made.returncode == 0, made.stderr
    config, env = tmp_path / "hub" / "hub.yaml", tmp_path / "hub" / "env"
    assert f"spotme-hub config check -c {config}" in made.stdout
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    secrets = dict(line.split("=", 1) for line in env.read_text().splitlines()
                   if line and not line.startswith("#"))  # fmt: skip
    assert len(secrets["SPOTME_ADMIN_TOKEN"]) >= 24 and "MQTT_PASSWORD" in secrets
    checked = subprocess.run(
        [sys.executable, "-m", "spotme_hub.cli", "config", "check", "-c", str(config)],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env={**os.environ, **secrets},
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "1 office(s), 7 device(s)" in checked.stdout
    again = cli("init", str(tmp_path / "hub"))
    assert again.returncode == 2 and "exists" in again.stderr  # never overwritten
