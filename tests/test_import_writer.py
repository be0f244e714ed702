"""Where an import's chunks are committed: the writer process stores exactly what the writer thread
stores, reports the store's errors, and gives the quarantine and the file checkpoint the same
transaction as the last chunk."""

from __future__ import annotations

from pathlib import Path

import pytest
from fileimport_helpers import BIOTIME_CSV, attlog_line, make_config, open_store, run_import, write

from spotme_hub.adapters.csv.writer import PROCESS_MIN_BYTES, ChunkWriter, in_process_memory
from spotme_hub.record import Rejection
from spotme_hub.service import tables
from spotme_hub.store import Store


def _attlog(rows: int) -> str:
    lines = [
        attlog_line(str(i % 313), f"2025-04-{1 + i // 20_000:02d} {7 + i % 12:02d}:"
                    f"{i // 60 % 60:02d}:{i % 60:02d}", i % 2, (1, 15, 4)[i % 3])
        for i in range(rows)
    ]  # fmt: skip
    lines.insert(7, attlog_line("5", "not a time"))
    lines.insert(3000, attlog_line("6", "2025-13-45 99:00:00"))
    lines.append(lines[100])  # the same punch twice in one file
    return "".join(lines)


def _stored(store):
    """Records without the import's own receive time, and the quarantine, comparable across runs."""
    recs = [{k: v for k, v in r.items() if k not in ("seq", "received_at")}
            for r in store.iter_records()]  # fmt: skip
    quarantine = [(q["reason"], q["source"]) for q in store.quarantine_items(limit=100)]
    return recs, sorted(quarantine, key=str)


def test_process_writer_stores_exactly_what_the_thread_writer_stores(tmp_path: Path) -> None:
    text = _attlog(12_000)
    results = {}
    for writer in ("thread", "process"):
        cfg = make_config(tmp_path / writer, {"chunk_rows": 1000})
        store = open_store(cfg)
        try:
            path = write(tmp_path / writer / "7_attlog.dat", text)
            s = run_import(cfg, store, path, writer=writer)
            assert s.writer == writer
            assert (s.imported, s.duplicates, s.quarantined) == (12_000, 1, 2)
            if writer == "process":  # its own peak memory, reported as it exits
                assert s.writer_peak_rss_mb is not None and 20 < s.writer_peak_rss_mb < 1000
            else:
                assert s.writer_peak_rss_mb is None
            assert run_import(cfg, store, path, writer=writer).already_imported is not None
            results[writer] = _stored(store)
            forced = run_import(cfg, store, path, force=True, writer=writer)
            assert (forced.imported, forced.duplicates) == (0, 12_001)
        finally:
            store.close()
    assert len(results["process"][0]) == 12_000
    assert results["process"] == results["thread"]


def test_process_writer_with_text_that_needs_json_escaping(tmp_path: Path) -> None:
    """Quotes, a backslash and non-ASCII in the cells cross the pipe and are stored as given."""
    text = BIOTIME_CSV.replace("Siti", 'Siti "Ct" binti Abdullah \\ — HQ')
    results = {}
    for writer in ("thread", "process"):
        cfg = make_config(tmp_path / writer)
        store = open_store(cfg)
        try:
            s = run_import(cfg, store, write(tmp_path / writer / "t.csv", text), writer=writer)
            assert s.writer == writer and s.imported > 0
            results[writer] = _stored(store)
        finally:
            store.close()
    assert results["process"] == results["thread"]
    names = {r["raw"]["First Name"] for r in results["process"][0]}
    assert 'Siti "Ct" binti Abdullah \\ — HQ' in names


def test_auto_picks_a_process_for_large_files_only(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, {"chunk_rows": 50_000})
    store = open_store(cfg)
    try:
        small = run_import(cfg, store, write(tmp_path / "s_attlog.dat", _attlog(100)))
        assert small.writer == "thread"
        rows = PROCESS_MIN_BYTES // len(attlog_line("12", "2025-04-01 08:00:00")) + 1000
        big = run_import(cfg, store, write(tmp_path / "b_attlog.dat", _attlog(rows)))
        assert big.writer == "process"
        assert big.imported + big.duplicates == rows + 1
    finally:
        store.close()


def test_an_error_in_the_writer_process_reaches_the_importer_and_the_next_chunk_still_commits(
    tmp_path: Path,
) -> None:
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    try:
        with ChunkWriter(store, use_process=True) as chunks:
            assert chunks.kind == "process"
            with pytest.raises(ValueError, match="not record columns"):
                chunks.submit([({"id": ["a"], "badge": ["x"]}, {})], [], None).result()
            rej = Rejection(reason="bad", raw={"line": "x"}, source={"file": "f", "line": 3},
                            device_id="usb")  # fmt: skip
            done = chunks.submit(
                [({"id": ["r1", "r2"], "occurred_at": ["2025-01-01T00:00:00Z"] * 2},
                  {"device_id": "usb", "office_id": "hq"})],
                [rej], {("usb", "file:abc"): {"rows": 2}},
            ).result()  # fmt: skip
            assert done == (2, 0)
        assert sorted(r["id"] for r in store.iter_records()) == ["r1", "r2"]
        assert store.get_checkpoint("usb", "file:abc") == {"rows": 2}
        assert [q["reason"] for q in store.quarantine_items()] == ["bad"]
    finally:
        store.close()


def test_an_in_memory_database_is_written_inline() -> None:
    assert in_process_memory("sqlite://") and in_process_memory("sqlite:///:memory:")
    assert in_process_memory("sqlite+pysqlite://")
    assert in_process_memory("sqlite:///file:hub?mode=memory&cache=shared&uri=true")
    assert not in_process_memory("sqlite:////tmp/hub.db")
    assert not in_process_memory("postgresql+psycopg://u@h/db")
    store = Store("sqlite://")
    store.create_all(tables())
    try:
        with ChunkWriter(store, use_process=True) as chunks:
            assert chunks.kind == "inline"  # another thread or process would not see it
            table = ({"id": ["m1"], "occurred_at": ["2025-01-01T00:00:00Z"]},
                     {"device_id": "usb", "office_id": "hq"})  # fmt: skip
            assert chunks.submit([table], [], None).result() == (1, 0)
        assert [r["id"] for r in store.iter_records()] == ["m1"]
    finally:
        store.close()
