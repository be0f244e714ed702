"""Card numbers: one canonical form for every way a reader or a person writes a card.

Canonical = the 10-digit decimal printed on EM4100 cards: the 32-bit id without the version byte,
zero-padded, kept as a string. Accepted inputs: decimal (`8844356`, `0008844356`), hex with a
marker (`0x86F444`, `86F444h`, `hex:86F444`) or with A–F digits (`0086F444`), the 10-hex-digit
EM4100 form with a version byte (`100086F444`), the whole 12-hex-digit RDM6300 payload with its
XOR checksum (`100086F44426`, only when the checksum matches), and Wiegand `FFF,CCCCC`
(facility,card → 24 bits; 16-bit facility,card → 32 bits).
"""

from __future__ import annotations

import re

_HEX = re.compile(r"^(?:0x|hex:)?([0-9A-Fa-f]+)h?$")
_WIEGAND = re.compile(r"^(\d{1,5})[,/:](\d{1,5})$")


def canonical_card(value: object) -> str | None:
    """The canonical 10-digit form of `value`, or None when it cannot be a card number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _fmt(value)
    text = str(value).strip().replace(" ", "").replace("-", "")
    if not text:
        return None
    if text.isdigit():
        n = int(text)
        return _fmt(n)
    m = _WIEGAND.match(text)
    if m:
        fc, card = int(m.group(1)), int(m.group(2))
        if fc > 0xFFFF or card > 0xFFFF:
            return None
        return _fmt((fc << 16) | card)
    m = _HEX.match(text)
    if m and (
        text.lower().startswith(("0x", "hex:"))
        or text.lower().endswith("h")
        or any(c in "abcdefABCDEF" for c in m.group(1))
    ):
        digits = m.group(1)
        n = int(digits, 16)
        if len(digits) == 10:  # EM4100 with the version/customer byte first
            n &= 0xFFFFFFFF
        elif len(digits) == 12 and _em_payload_ok(digits):  # RDM6300 payload + XOR checksum
            n = int(digits[2:10], 16)
        return _fmt(n)
    return None


def _em_payload_ok(digits: str) -> bool:
    data = bytes.fromhex(digits)
    xor = 0
    for b in data[:5]:
        xor ^= b
    return xor == data[5]


def card_forms(card: str) -> dict[str, str]:
    """Other ways the same canonical card is written: 8-digit hex of the 32-bit id and the
    Wiegand `FFF,CCCCC` pair (when the id fits in 24 bits, as on W26 readers)."""
    n = int(card)
    forms = {"hex": f"{n:08X}"}
    if n < 1 << 24:
        forms["w26"] = f"{n >> 16:03d},{n & 0xFFFF:05d}"
    return forms


def _fmt(n: int) -> str | None:
    """Zero-padded to 10 digits; ids wider than 32 bits (7-byte UIDs) keep all their digits."""
    if n <= 0:
        return None
    return f"{n:010d}"
