"""`kind: csv` watch folder through the real runtime: files move only after their commit."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openpyxl
import yaml
from fileimport_helpers import MALAY_COLUMNS, attlog_line, make_config, split_export, write
from hub_helpers import running, wait_until

from spotme_hub.adapters.csv.importer import checkpoint_key
from spotme_hub.adapters.csv.source import fingerprint
from spotme_hub.config import HubConfig
from spotme_hub.normalize import Normalizer
from spotme_hub.record import RawPunch, Record
from spotme_hub.service import open_hub
from spotme_hub.store import Store

ROOT = Path(__file__).resolve().parent.parent


def _watched(tmp_path: Path, **options: Any) -> tuple[Path, HubConfig]:
    """An inbox folder and a config whose csv device watches it (scanned every 0.2 s)."""
    watch = tmp_path / "inbox"
    watch.mkdir()
    opts = {"watch": str(watch), "poll_every": 0.2, "settle_s": 0, **options}
    return watch, make_config(tmp_path, opts)


def _age(path: Path) -> None:
    old = time.time() - 60
    os.utime(path, (old, old))


def test_watch_folder_imports_then_moves_after_commit(tmp_path: Path) -> None:
    watch, cfg = _watched(tmp_path, settle_s=1)
    seen_at_commit: list[bool] = []

    async def main() -> None:
        hub = open_hub(cfg)
        target = watch / "7_attlog.dat"
        hub.commit_listeners.append(  # a file's commit comes with its counts, not its records
            lambda recs, res: seen_at_commit.append(
                any((watch / name).exists() for name in ("7_attlog.dat", "8_attlog.dat"))
            )
        )
        await hub.start()
        try:
            text = attlog_line("1", "2025-01-02 08:00:00") + attlog_line("2", "2025-01-02 08:01:00")
            write(target, text)
            _age(target)
            await wait_until(lambda: (watch / "processed" / "7_attlog.dat").exists())
            assert not target.exists()
            assert hub.store.count_records() == 2
            # the same content again: recognised, moved, nothing added
            write(target, text)
            _age(target)
            await wait_until(lambda: not target.exists())
            assert hub.store.count_records() == 2
            assert len(list((watch / "processed").iterdir())) == 2
            # a fresh file still being written (recent mtime) is left alone until it settles
            fresh = write(watch / "8_attlog.dat", attlog_line("3", "2025-01-03 08:00:00"))
            await asyncio.sleep(0.5)
            assert fresh.exists()
            await wait_until(lambda: not fresh.exists())
            assert hub.store.count_records() == 3
        finally:
            await hub.stop()

    asyncio.run(main())
    # two commits with new records (the repeat adds none), each while its file was in the inbox
    assert seen_at_commit == [True, True]


def test_refused_file_goes_to_failed_with_reason_and_rows_are_quarantined(tmp_path: Path) -> None:
    watch, cfg = _watched(tmp_path, **MALAY_COLUMNS)

    async def main() -> None:
        async with running(cfg) as hub:
            amb = "No. Pekerja\tTarikh\tMasa\tStatus\n1\t03/02/2025\t08:01\tMasuk\n"
            write(watch / "amb.txt", amb)
            await wait_until(lambda: (watch / "failed" / "amb.txt").exists())
            reason = (watch / "failed" / "amb.txt.error.txt").read_text()
            assert "cannot tell day from month" in reason
            good = "No. Pekerja\tTarikh\tMasa\tStatus\n1\t13/02/2025\t08:01\tMasuk\n2\t13/02/2025\t08:01\tLain\n"
            write(watch / "ok.txt", good)
            await wait_until(lambda: (watch / "processed" / "ok.txt").exists())
            assert hub.store.count_records() == 1
            [item] = hub.store.quarantine_items()
            assert item["source"]["line"] == 3 and item["device_id"] == "usb"

    asyncio.run(main())


def stored(db: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[str]]:
    """The records table as stored (but seq and committed_at), the quarantine (but its times)
    and the record shapes with the one value that is the moment of import masked."""
    with sqlite3.connect(db) as conn:
        records = conn.execute(
            "SELECT id, employee_id, device_id, office_id, occurred_at, flags, doc, shape "
            "FROM records ORDER BY id"
        ).fetchall()
        quarantine = conn.execute(
            "SELECT device_id, source, reason, raw, status, place FROM quarantine ORDER BY qid"
        ).fetchall()
        shapes = [re.sub(r'"received_at":"[^"]*"', '"received_at":…', fmt)
                  for (fmt,) in conn.execute("SELECT fmt FROM record_shapes ORDER BY shape")]  # fmt: skip
    return records, quarantine, shapes


def test_the_watch_folder_and_the_import_command_store_the_same_rows(tmp_path: Path) -> None:
    """One file pipeline: the same file through `spotme-hub import` and through the watch folder
    gives the same stored rows, byte for byte (records, shapes, quarantine)."""
    text = "".join(attlog_line(str(u), f"2025-01-0{u} 0{u}:00:00", u % 2, 15) for u in range(1, 8))
    text += "3\t2025-13-45 08:00:00\t1\t0\t1\t0\r\n"  # no such date: quarantined
    bulk_dir = tmp_path / "bulk"
    bulk_dir.mkdir()
    data = {"hub": {"database": f"sqlite:///{bulk_dir / 'hub.db'}"},
            "offices": [{"id": "hq", "latitude": 2.9264, "longitude": 101.6964, "geofence_m": 150}],
            "devices": [{"id": "usb", "kind": "csv", "office": "hq"}],
            "employees": [{"id": "J0001", "user_ids": ["1"]}, {"id": "J0012", "user_ids": ["00012"]}],
            "api": {"enabled": False}}  # fmt: skip
    (bulk_dir / "hub.yaml").write_text(yaml.safe_dump(data))
    export = write(bulk_dir / "a_attlog.dat", text)
    done = subprocess.run([sys.executable, "-m", "spotme_hub.cli", "import", str(export),
                           "-c", str(bulk_dir / "hub.yaml"), "--device", "usb"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr

    watch_dir = tmp_path / "watched"
    watch_dir.mkdir()
    watch, cfg = _watched(watch_dir)

    async def main() -> None:
        async with running(cfg):
            write(watch / "a_attlog.dat", text)
            await wait_until(lambda: (watch / "processed" / "a_attlog.dat").exists())

    asyncio.run(main())
    by_command, by_watch = stored(bulk_dir / "hub.db"), stored(watch_dir / "hub.db")
    assert len(by_command[0]) == 7 and len(by_command[1]) == 1
    assert by_watch == by_command


def test_glob_path_imports_each_file_once_and_leaves_it(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    cfg = make_config(
        tmp_path, {"path": str(folder / "*_attlog.dat"), "poll_every": 0.2, "settle_s": 0}
    )
    write(folder / "1_attlog.dat", attlog_line("1", "2025-01-02 08:00:00"))
    write(folder / "notes.txt", "not an export")

    async def main() -> None:
        async with running(cfg) as hub:
            await wait_until(lambda: hub.store.count_records() == 1)
            write(
                folder / "2_attlog.dat",
                attlog_line("1", "2025-01-02 08:00:00") + attlog_line("2", "2025-01-02 09:00:00"),
            )
            await wait_until(lambda: hub.store.count_records() == 2)
            polls = hub.health["usb"].counters["polls"]
            await wait_until(lambda: hub.health["usb"].counters["polls"] >= polls + 3)
            assert hub.store.count_records() == 2
            assert hub.health["usb"].counters["files_imported"] == 2

    asyncio.run(main())
    assert sorted(p.name for p in folder.iterdir()) == ["1_attlog.dat", "2_attlog.dat", "notes.txt"]


def _year_of_punches(rows: int) -> str:
    """`rows` attlog lines: 3,000 users, a punch a second from 2025-01-01."""
    start = dt.datetime(2025, 1, 1)
    return "".join(
        attlog_line(str(i % 3000), (start + dt.timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S"))
        for i in range(rows)
    )


def test_a_large_file_commits_in_slices_with_the_checkpoint_last(tmp_path: Path) -> None:
    """A 12,000-row file is committed 5,000 rows at a time (another device's live punch waits
    for one such commit, not for the file), and its fingerprint only with the last slice."""
    watch, cfg = _watched(tmp_path)

    async def main() -> None:
        hub = open_hub(cfg)
        await hub.start()
        try:
            await wait_until(lambda: (watch / "processed" / "big_attlog.dat").exists())
            assert hub.store.count_records() == 12_000
        finally:
            await hub.stop()

    path = write(watch / "big_attlog.dat", _year_of_punches(12_000))
    key = checkpoint_key(fingerprint(path))
    asyncio.run(main())
    store = Store(cfg.database_url)
    with store.engine.connect() as conn:
        slices = conn.exec_driver_sql(
            "SELECT committed_at, count(*) FROM records GROUP BY committed_at ORDER BY 1"
        ).all()
        done = conn.exec_driver_sql(
            "SELECT updated_at FROM checkpoints WHERE scope = 'usb' AND key = ?", (key,)
        ).scalar_one()
    assert [n for _, n in slices] == [5_000, 5_000, 2_000]  # one transaction a slice
    assert done == slices[-1][0]  # the fingerprint committed with the last slice


def test_the_event_loop_keeps_running_while_a_file_is_mapped(tmp_path: Path) -> None:
    """Mapping and normalising a 50,000-row chunk takes about a second and a half of Python;
    it runs on worker threads, so the loop that serves every other device and the API goes on
    (the worst pause measured here is about 40 ms; it was 1.6 s with the chunk on the loop)."""
    watch, cfg = _watched(tmp_path)
    pauses: list[float] = []

    async def main() -> None:
        async with running(cfg) as hub:
            write(watch / "year_attlog.dat", _year_of_punches(60_000))
            last = time.monotonic()
            deadline = last + 120
            while not (watch / "processed" / "year_attlog.dat").exists():
                assert last < deadline, "the file was not imported in time"
                await asyncio.sleep(0.01)
                now = time.monotonic()
                pauses.append(now - last - 0.01)
                last = now
            assert hub.store.count_records() == 60_000

    asyncio.run(main())
    assert max(pauses) < 0.5, f"the loop stalled for {max(pauses):.2f} s"


def test_damaged_files_go_to_failed_and_the_rest_of_the_folder_is_imported(tmp_path: Path) -> None:
    """A workbook cut short (a half-finished download) and XML that is not well formed are the
    files' problems: each goes to failed/ with what was wrong, and the good file after them
    is imported; the device does not fail over them."""
    watch, cfg = _watched(tmp_path)
    book = openpyxl.Workbook()
    book.active.append(["Employee ID", "Time", "Punch State"])
    book.active.append(["5", "2025-02-03 08:01:00", "Check In"])
    book.save(tmp_path / "whole.xlsx")
    whole = (tmp_path / "whole.xlsx").read_bytes()
    (watch / "a_cut.xlsx").write_bytes(whole[: len(whole) // 2])
    (watch / "b_bad.xls").write_text(
        '<?xml version="1.0"?><Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet">'
        "<Worksheet><Table><Row><Cell>unclosed</Row></Table></Worksheet></Workbook>"
    )
    for i, name in enumerate(["a_cut.xlsx", "b_bad.xls"]):
        old = time.time() - 120 + i
        os.utime(watch / name, (old, old))

    async def main() -> None:
        async with running(cfg) as hub:
            await wait_until(lambda: (watch / "failed" / "b_bad.xls").exists())
            write(watch / "c_good_attlog.dat", attlog_line("1", "2025-01-02 08:00:00"))
            await wait_until(lambda: (watch / "processed" / "c_good_attlog.dat").exists())
            assert hub.store.count_records() == 1
            assert hub.health["usb"].counters["files_failed"] == 2
            assert hub.health["usb"].state == "UP"

    asyncio.run(main())
    cut = (watch / "failed" / "a_cut.xlsx.error.txt").read_text()
    assert "cannot read the workbook" in cut and "incomplete" in cut
    assert "not well-formed XML" in (watch / "failed" / "b_bad.xls.error.txt").read_text()


def test_a_file_that_cannot_be_read_now_does_not_hold_up_the_others(tmp_path: Path) -> None:
    """An I/O error on one file (a real one: the kernel refuses reads of /proc/self/mem at
    offset 0, as a vanished share would) marks the device degraded, and the scan goes on to the
    files after it; the file stays where it is, to be tried again."""
    watch, cfg = _watched(tmp_path)
    (watch / "0_attlog.dat").symlink_to("/proc/self/mem")

    async def main() -> None:
        async with running(cfg) as hub:
            await wait_until(lambda: hub.health["usb"].state == "DEGRADED")
            assert "cannot read 0_attlog.dat" in (hub.health["usb"].last_error or "")
            good = write(watch / "1_attlog.dat", attlog_line("1", "2025-01-02 08:00:00"))
            assert (watch / "0_attlog.dat").stat().st_mtime < good.stat().st_mtime  # scanned 2nd
            await wait_until(lambda: (watch / "processed" / "1_attlog.dat").exists())
            assert hub.store.count_records() == 1

    asyncio.run(main())
    assert (watch / "0_attlog.dat").is_symlink()


def test_a_workbook_split_over_sheets_is_imported_whole(tmp_path: Path) -> None:
    watch, cfg = _watched(tmp_path)
    split_export(tmp_path / "split.xlsx").rename(watch / "split.xlsx")

    async def main() -> None:
        async with running(cfg) as hub:
            await wait_until(lambda: (watch / "processed" / "split.xlsx").exists())
            sheets = sorted(r["source"]["sheet"] for r in hub.store.iter_records())
            assert sheets == ["Feb", "Jan", "Jan"]
            [item] = hub.store.quarantine_items()
            assert (item["source"]["sheet"], item["source"]["line"]) == ("Feb", 4)
            assert hub.health["usb"].detail["last_import"]["rows"] == 4

    asyncio.run(main())


def test_a_terminal_subfolder_imports_its_usb_export_as_that_terminals_punches(
    tmp_path: Path,
) -> None:
    """`inbox/<device id>/` holds that device's exports: the records are the terminal's (its
    zone, the ids its live pull gives), and the file moves to that subfolder's processed/."""
    watch = tmp_path / "inbox"
    (watch / "gate").mkdir(parents=True)
    (watch / "nobody").mkdir()  # not a device: left alone
    opts = {"watch": str(watch), "poll_every": 0.2, "settle_s": 0}
    gate = {"id": "gate", "kind": "zkteco", "office": "hq", "host": "127.0.0.1",
            "timezone": "Asia/Kuching", "enabled": False}  # fmt: skip
    cfg = make_config(tmp_path, opts, more_devices=[gate])
    write(watch / "gate" / "1_attlog.dat", attlog_line("1", "2025-01-02 08:00:00"))
    write(watch / "nobody" / "2_attlog.dat", attlog_line("2", "2025-01-02 08:00:00"))

    imported: list[dict[str, Any]] = []

    async def main() -> None:
        async with running(cfg) as hub:
            await wait_until(lambda: (watch / "gate" / "processed" / "1_attlog.dat").exists())
            imported.extend(hub.store.iter_records())
            assert hub.health["gate"].counters["new"] == 1
            assert hub.health["usb"].detail["last_import"]["device"] == "gate"

    asyncio.run(main())
    [rec] = imported
    assert (rec["device_id"], rec["timezone"]) == ("gate", "Asia/Kuching")
    assert rec["local_time"] == "2025-01-02T08:00:00+08:00"
    assert (watch / "nobody" / "2_attlog.dat").exists()
    # the same punch pulled live from the terminal has this id
    live = Normalizer(cfg).normalize(
        cfg.device("gate"), RawPunch(device_time=dt.datetime(2025, 1, 2, 8), user_id="1", punch=0)
    )
    assert isinstance(live, Record) and live.id == rec["id"]


def test_rows_of_a_device_column_are_each_their_devices_punches(tmp_path: Path) -> None:
    """A watch-folder file with a device column: each row is its device's punch (it was
    quarantined as "not this device's" before); an unknown device is still quarantined."""
    watch = tmp_path / "inbox"
    watch.mkdir()
    opts = {"watch": str(watch), "poll_every": 0.2, "settle_s": 0,
            "device_column": "device_no", "devices": {"1": "lobby", "2": "gate"}}  # fmt: skip
    more = [{"id": "lobby", "kind": "csv", "office": "hq"},
            {"id": "gate", "kind": "csv", "office": "hq", "timezone": "Asia/Kuching"}]  # fmt: skip
    cfg = make_config(tmp_path, opts, more_devices=more)
    text = (
        "1\t2025-01-02 08:00:00\t1\t0\t1\t0\r\n"
        "1\t2025-01-02 08:00:00\t2\t0\t1\t0\r\n"
        "1\t2025-01-02 08:00:00\t9\t0\t1\t0\r\n"
    )

    async def main() -> None:
        async with running(cfg) as hub:
            write(watch / "m_attlog.dat", text)
            await wait_until(lambda: (watch / "processed" / "m_attlog.dat").exists())
            recs = {r["device_id"]: r for r in hub.store.iter_records()}
            assert sorted(recs) == ["gate", "lobby"]
            assert recs["gate"]["local_time"] == "2025-01-02T08:00:00+08:00"
            assert recs["gate"]["timezone"] == "Asia/Kuching"
            [item] = hub.store.quarantine_items()
            assert "unknown device '9'" in item["reason"]
            assert hub.health["usb"].counters["new"] == 2  # the file's device counts the file

    asyncio.run(main())
