"""The serial framings' decoders, card-number forms and the debouncer, with the worked examples
of formats.md §1 and the nasty inputs of §4."""

from __future__ import annotations

import pytest

from spotme_hub.adapters.serial.framing import (
    BadFrame,
    CardRead,
    LineDecoder,
    Rdm6300Decoder,
    WiegandDecoder,
    wiegand_decode,
    wiegand_encode,
)
from spotme_hub.adapters.serial.osdp import osdp_card
from spotme_hub.adapters.serial.port import Debouncer
from spotme_hub.adapters.serial.simulator import osdp_card_event, rdm6300_frame
from spotme_hub.cards import canonical_card, card_forms

FRAME = bytes.fromhex("02 31 30 30 30 38 36 46 34 34 34 32 36 03")  # ASCII 100086F44426


def cards(items: list) -> list[str]:
    return [i.card for i in items if isinstance(i, CardRead)]


def bad(items: list) -> list[str]:
    return [i.reason for i in items if isinstance(i, BadFrame)]


# --- card numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    ["0008844356", "8844356", 8844356, "134,62532", "134/62532", "0x86F444", "86F444h",
     "0086F444", "100086F444", "100086F44426", "hex:86f444"],
)  # fmt: skip
def test_every_form_of_the_worked_example_card_is_0008844356(written: object) -> None:
    assert canonical_card(written) == "0008844356"


def test_card_contract_unchanged_for_non_cards() -> None:
    assert canonical_card(None) is None
    assert canonical_card("") is None
    assert canonical_card("0") is None
    assert canonical_card(True) is None
    assert canonical_card("not a card") is None
    assert canonical_card("300,70000") is None  # card part over 16 bits


def test_twelve_hex_digits_are_only_an_em_payload_when_the_xor_matches() -> None:
    assert canonical_card("100086F44426") == "0008844356"
    assert canonical_card("100086F44427") != "0008844356"


def test_card_forms() -> None:
    assert card_forms("0008844356") == {"hex": "0086F444", "w26": "134,62532"}
    assert card_forms("4294967295") == {"hex": "FFFFFFFF"}


# --- RDM6300 ---------------------------------------------------------------------------------


def test_rdm6300_worked_example() -> None:
    out = Rdm6300Decoder().feed(FRAME)
    assert out == [CardRead("0008844356", FRAME, 0, {"version": "10", "uid_hex": "0086F444"})]
    assert rdm6300_frame("0008844356") == FRAME


def test_rdm6300_frame_split_across_reads() -> None:
    d = Rdm6300Decoder()
    assert d.feed(FRAME[:5]) == []
    assert d.feed(FRAME[5:9]) == []
    assert cards(d.feed(FRAME[9:])) == ["0008844356"]


def test_rdm6300_joined_frames_and_leading_noise() -> None:
    d = Rdm6300Decoder()
    out = d.feed(b"\x00\xff" + FRAME + FRAME + rdm6300_frame("12345678"))
    assert cards(out) == ["0008844356", "0008844356", "0012345678"]
    assert [i.offset for i in out] == [2, 16, 30]
    assert bad(out) == []
    assert d.noise == 2


def test_rdm6300_stray_stx_mid_frame_resyncs() -> None:
    d = Rdm6300Decoder()
    out = d.feed(FRAME[:6] + FRAME)
    assert cards(out) == ["0008844356"]
    assert bad(out) == ["truncated frame: STX before the frame ended"]
    assert out[0].frame == FRAME[:6]
    d2 = Rdm6300Decoder()  # a lone STX before a frame is noise
    assert cards(d2.feed(b"\x02" + FRAME)) == ["0008844356"] and d2.noise == 1


def test_rdm6300_bad_checksum_and_all_zero_id_are_rejected() -> None:
    d = Rdm6300Decoder()
    out = d.feed(rdm6300_frame("0008844356", bad_checksum=True) + rdm6300_frame(0) + FRAME)
    assert cards(out) == ["0008844356"]
    assert bad(out)[0].startswith("bad checksum")
    assert bad(out)[1] == "all-zero card id"


def test_rdm6300_lowercase_hex_and_any_version_byte() -> None:
    for version in (0x01, 0x10, 0x14, 0xFF):
        frame = rdm6300_frame("0008844356", version=version, lowercase=True)
        assert frame != FRAME or version == 0x10
        assert cards(Rdm6300Decoder().feed(frame)) == ["0008844356"]


def test_rdm6300_missing_etx_short_frame_and_idle_timeout() -> None:
    d = Rdm6300Decoder()
    out = d.feed(FRAME[:13] + b"X" + FRAME)
    assert bad(out) == ["missing ETX (got 0x58)"] and cards(out) == ["0008844356"]
    out = d.feed(b"\x0212345\x03")
    assert bad(out) == ["short frame: 5 hex digits"]
    out = d.feed(b"\x02G" + FRAME)
    assert bad(out) == ["non-hex byte 0x47 in frame"] and cards(out) == ["0008844356"]
    assert d.feed(FRAME[:8]) == []
    assert bad(d.flush()) == ["truncated frame: no ETX before the line went idle"]
    assert d.flush() == []


# --- line readers ----------------------------------------------------------------------------


def test_line_decimal_crlf_cr_lf_and_keypad_noise() -> None:
    d = LineDecoder("decimal")
    out = d.feed(b"0008844356\r\n0012345678\r0008844356\n12#0012345678\r\n")
    assert cards(out) == ["0008844356", "0012345678", "0008844356", "0012345678"]
    assert d.feed(b"1\r\n#\r\n*\r\n") == []  # keypad keys
    assert d.noise > 0
    assert d.feed(b"5") == [] and d.flush() == []  # a key without a line end


def test_line_hex_forms() -> None:
    d = LineDecoder("hex")
    out = d.feed(b"\n0F0184F07A\r86F444\r\n86f444\r\n0086F444\r\n")  # Parallax, WIE232-A, ...
    assert cards(out) == ["0025489530", "0008844356", "0008844356", "0008844356"]


def test_line_regex_and_delimiter() -> None:
    d = LineDecoder("decimal", delimiter=b";", regex=r"ID=(?P<card>\d+)")
    out = d.feed(b"ID=8844356;garbage;ID=0000000000;")
    assert cards(out) == ["0008844356"]
    assert bad(out) == ["not a decimal card number: 'garbage'", "all-zero card id"]


def test_line_garbage_long_lines_and_unterminated_lines() -> None:
    d = LineDecoder("decimal")
    assert bad(d.feed(b"hello world\r\n")) == ["not a decimal card number: 'hello world'"]
    assert bad(d.feed(b"9" * 200)) == ["line longer than 96 bytes"] * 2
    d.flush()
    d.feed(b"00088443")
    assert bad(d.flush()) == ["line without terminator before the line went idle"]


# --- Wiegand ---------------------------------------------------------------------------------


def test_wiegand_worked_examples() -> None:
    assert wiegand_encode(0x86F444, 26) == 0x30DE888
    assert wiegand_encode(0x0086F444, 34) == 0x2010DE888
    assert wiegand_decode(0x30DE888, 26) == (
        0x86F444,
        {"bits": 26, "facility": 134, "number": 62532},
    )
    assert wiegand_decode(0x2010DE888, 34)[0] == 0x0086F444  # type: ignore[index]
    assert format(0x30DE888, "026b") == "1" + "10000110" + "1111010001000100" + "0"


@pytest.mark.parametrize(
    ("text", "line"),
    [("hex", b"30DE888"), ("hex", b"2010DE888"), ("hex", b"86F444"), ("hex", b"86F444h"),
     ("hex", b"0086F444"), ("bits", b"11000011011110100010001000"),
     ("bits", b"1" + b"00000000100001101111010001000100" + b"0"), ("decimal", b"8844356"),
     ("decimal", b"134,62532")],
)  # fmt: skip
def test_wiegand_text_forms(text: str, line: bytes) -> None:
    out = WiegandDecoder(text).feed(line + b"\r\n")  # type: ignore[arg-type]
    assert cards(out) == ["0008844356"], out
    assert out[0].detail["facility"] == 134 and out[0].detail["number"] == 62532


def test_wiegand_parity_errors_glitches_zero_and_keypad() -> None:
    d = WiegandDecoder("bits")
    frame = format(0x30DE888, "026b")
    flipped_first = ("0" if frame[0] == "1" else "1") + frame[1:]
    flipped_last = frame[:-1] + ("0" if frame[-1] == "1" else "1")
    out = d.feed(f"{flipped_first}\r\n{flipped_last}\r\n{frame[:25]}\r\n{frame}1\r\n".encode())
    assert bad(out) == [
        "Wiegand parity error (leading even parity)",
        "Wiegand parity error (trailing odd parity)",
        "25-bit Wiegand frame (glitch or unsupported format)",
        "27-bit Wiegand frame (glitch or unsupported format)",
    ]
    assert d.feed(b"0101\r\n10100101\r\n#\r\n*\r\n") == []  # keypad bursts ignored
    assert bad(WiegandDecoder("decimal").feed(b"0\r\n")) == [
        "zero card number (converters send 0 on a parity error)"
    ]
    assert bad(WiegandDecoder("hex").feed(b"30DE889\r\n")) == [
        "Wiegand parity error (trailing odd parity)"
    ]


def test_wiegand_pinned_size() -> None:
    d = WiegandDecoder("hex", bits=26)
    assert cards(d.feed(b"86F444\r\n30DE888\r\n")) == ["0008844356"] * 2
    assert bad(d.feed(b"2010DE888\r\n")) == ["9 hex digits is not a 26/34-bit frame"]
    d34 = WiegandDecoder("bits", bits=34)
    assert bad(d34.feed(format(0x30DE888, "026b").encode() + b"\n")) == [
        "26-bit frame on a 34-bit reader"
    ]


# --- OSDP card events ------------------------------------------------------------------------


def test_osdp_card_events() -> None:
    for bits in (26, 34):
        ev = osdp_card_event("0008844356", bits)
        assert ev["data"] == (
            wiegand_encode(0x86F444, bits) << (len(ev["data"]) * 8 - bits)
        ).to_bytes(len(ev["data"]), "big")
        assert cards([osdp_card(ev)]) == ["0008844356"]
    assert bad([osdp_card(osdp_card_event("0008844356", 26, parity_error=True))]) == [
        "Wiegand parity error (trailing odd parity)"
    ]
    assert cards([osdp_card({"format": 2, "length": 10, "data": b"0008844356"})]) == ["0008844356"]
    assert cards([osdp_card({"format": 0, "length": 32, "data": bytes.fromhex("0086F444")})]) == [
        "0008844356"
    ]
    assert bad([osdp_card({"format": 1, "length": 40, "data": b"\x01"})])
    assert bad([osdp_card({"format": 1, "length": 26})]) == ["card read without data"]


# --- debounce --------------------------------------------------------------------------------


def test_debounce_one_read_per_card_per_window() -> None:
    d = Debouncer(2.0)
    held = [d.accept("0008844356", t / 1000) for t in range(0, 5000, 50)]  # 5 s of 50 ms repeats
    assert held.count(True) == 3  # windows starting at 0, 2.0 and 4.0 s
    assert d.accept("0012345678", 4.99)  # another card is not held back
    zero = Debouncer(0)
    assert zero.accept("x", 1.0) and zero.accept("x", 1.0)


def test_line_noise_bytes_separate_digits_instead_of_joining_them() -> None:
    d = LineDecoder("decimal")
    assert bad(d.feed(b"00088\xff44356\r\n")) == ["not a decimal card number: '00088 44356'"]
    assert cards(d.feed(b"\x05\x0b0008844356\r\n")) == ["0008844356"]  # binary keypad keys


def test_line_numbers_wider_than_32_bits_are_refused() -> None:
    assert bad(LineDecoder("decimal").feed(b"9999999999\r\n")) == [
        "card number wider than 32 bits: 9999999999"
    ]
    assert cards(LineDecoder("decimal").feed(b"4294967295\r\n")) == ["4294967295"]


def test_example_config_readers_validate() -> None:
    from pathlib import Path

    from spotme_hub.service import load_config

    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "example.yaml")
    serial = {d.id: d.options for d in cfg.devices if d.kind == "serial"}
    assert {o.framing for o in serial.values()} == {"rdm6300", "wiegand", "line", "osdp"}
    assert serial["pjy-server-room"].addresses == [1, 2]
