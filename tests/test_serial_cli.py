"""`spotme-hub simulate serial` as a separate process: the hub side opens the printed port."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import serial

from spotme_hub.adapters.serial.framing import CardRead, make_decoder


@pytest.mark.parametrize(
    ("framing", "extra"),
    [("rdm6300", ["--noise", "--hold", "3"]), ("line", ["--encoding", "hex"]),
     ("wiegand", ["--text", "bits", "--bits", "34"])],
)  # fmt: skip
def test_simulated_reader_emits_decodable_cards(framing: str, extra: list[str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotme_hub.cli", "simulate", "serial", "--framing", framing,
         "--cards", "0008844356;134,62532", "--every", "0.1", "--count", "200", *extra],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("reader port: /dev/pts/"), first
        path = first.split(": ", 1)[1].strip()
        kwargs = (
            {"encoding": "hex"}
            if framing == "line"
            else {"text": "bits"}
            if framing == "wiegand"
            else {}
        )
        decoder = make_decoder(framing, **kwargs)  # type: ignore[arg-type]
        found: list[str] = []
        with serial.serial_for_url(path, timeout=0.2) as port:
            deadline = time.monotonic() + 30
            while len(found) < 2 and time.monotonic() < deadline:
                found += [i.card for i in decoder.feed(port.read(256)) if isinstance(i, CardRead)]
        assert found[:2] == ["0008844356", "0008844356"]
    finally:
        proc.terminate()
        proc.wait(10)
