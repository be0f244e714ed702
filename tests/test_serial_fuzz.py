"""Property tests: random bytes into every framing decoder never crash it and never produce a
card that is not backed by a valid frame at the stated place in the input."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotme_hub.adapters.serial.framing import (
    BadFrame,
    CardRead,
    Decoded,
    Decoder,
    make_decoder,
    wiegand_decode,
)
from spotme_hub.adapters.serial.osdp import osdp_card
from spotme_hub.adapters.serial.simulator import line_frame, rdm6300_frame, wiegand_line

DECODERS = {
    "rdm6300": lambda: make_decoder("rdm6300"),
    "line-decimal": lambda: make_decoder("line", encoding="decimal"),
    "line-hex": lambda: make_decoder("line", encoding="hex"),
    "wiegand-hex": lambda: make_decoder("wiegand", text="hex"),
    "wiegand-decimal": lambda: make_decoder("wiegand", text="decimal"),
    "wiegand-bits": lambda: make_decoder("wiegand", text="bits"),
    "wiegand-bits-26": lambda: make_decoder("wiegand", text="bits", bits=26),
}

cards = st.integers(min_value=1, max_value=0xFFFFFF).map(lambda n: f"{n:010d}")
valid_pieces = st.one_of(
    cards.map(rdm6300_frame),
    cards.map(lambda c: rdm6300_frame(c, lowercase=True)),
    cards.map(line_frame),
    cards.map(lambda c: line_frame(c, "hex")),
    cards.map(wiegand_line),
    cards.map(lambda c: wiegand_line(c, 26, "bits")),
    cards.map(lambda c: wiegand_line(c, 34, "decimal")),
)
alphabet = st.sampled_from(list(b"\x02\x03\r\n0123456789ABCDEFabcdef,#*01 \x00\xff"))
noise = st.one_of(st.binary(max_size=40), st.lists(alphabet, max_size=40).map(bytes))
streams = st.lists(st.one_of(noise, valid_pieces), max_size=12).map(b"".join)


def run(decoder: Decoder, data: bytes, cuts: list[int]) -> list[Decoded]:
    out: list[Decoded] = []
    last = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        out += decoder.feed(data[last:cut])
        last = cut
    out += decoder.feed(data[last:])
    out += decoder.flush()
    return out


def independently_valid(name: str, frame: bytes, card: str) -> bool:
    """Re-check a decoded frame without the decoder's state machine."""
    if name == "rdm6300":
        if len(frame) != 14 or frame[0] != 2 or frame[13] != 3:
            return False
        data = bytes.fromhex(frame[1:13].decode())
        xor = 0
        for b in data[:5]:
            xor ^= b
        return xor == data[5] and int.from_bytes(data[1:5], "big") == int(card) != 0
    text = frame.decode("latin-1")
    if name.startswith("line"):
        digits = "".join(c for c in text if c in "0123456789abcdefABCDEF")
        base = 16 if name == "line-hex" else 10
        return any(
            int(digits[i:j], base) & (0xFFFFFFFF if j - i == 10 and base == 16 else -1) == int(card)
            for i in range(len(digits)) for j in range(i + 1, len(digits) + 1)
            if all(c in "0123456789abcdefABCDEF"[: base + (6 if base == 16 else 0)] for c in digits[i:j])
        )  # fmt: skip
    if name.startswith("wiegand-bits"):
        bits = "".join(c for c in text if c in "01")
        got = wiegand_decode(int(bits, 2), len(bits))
        return not isinstance(got, str) and got[0] == int(card)
    return int(card) > 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
def test_random_streams_never_crash_nor_invent_cards(data: bytes, cuts: list[int]) -> None:
    for name, factory in DECODERS.items():
        whole = run(factory(), data, [])
        split = run(factory(), data, cuts)
        # frames split or joined differently decode the same (only idle flushes differ)
        assert [i for i in split if isinstance(i, CardRead)] == [
            i for i in whole if isinstance(i, CardRead)
        ], name
        for item in whole:
            assert isinstance(item, CardRead | BadFrame)
            assert data[item.offset : item.offset + len(item.frame)] == item.frame, name
            if isinstance(item, CardRead):
                assert len(item.card) >= 10 and item.card.isdigit() and int(item.card) > 0
                assert independently_valid(name, item.frame, item.card), (name, item)


@settings(max_examples=300, deadline=None)
@given(
    fmt=st.sampled_from([0, 1, 2, 3]),
    length=st.one_of(st.integers(min_value=-2, max_value=80), st.none()),
    data=st.one_of(st.binary(max_size=10), st.none()),
)
def test_random_osdp_events_never_crash_nor_invent_cards(
    fmt: int, length: int | None, data: bytes | None
) -> None:
    item = osdp_card({"event": 1, "format": fmt, "length": length, "data": data})
    if isinstance(item, CardRead):
        assert data and int(item.card) > 0
        if fmt in (0, 1) and length != 32:
            assert isinstance(length, int)
            value = int.from_bytes(data, "big") >> (len(data) * 8 - length)
            got = wiegand_decode(value, length)
            assert not isinstance(got, str) and got[0] == int(item.card)
