"""Punch-type and verify-method codes: device numbers and words to canonical values."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from ..record import Punch, Verify

#: ZKTeco punch state (binary protocol, PUSH ATTLOG Status, attlog.dat): 0..5, 255 = none.
ZK_PUNCH = {0: Punch.IN, 1: Punch.OUT, 2: Punch.BREAK_OUT, 3: Punch.BREAK_IN,
            4: Punch.OVERTIME_IN, 5: Punch.OVERTIME_OUT}  # fmt: skip


def zk_verify(code: int) -> Verify:
    """ZKTeco verify codes (PUSH appendix; binary protocol status on new firmware)."""
    if code == 1:
        return Verify.FINGERPRINT
    if code in (2, 3):
        return Verify.PASSWORD
    if code == 4:
        return Verify.CARD
    if code == 15 or 16 <= code <= 20:
        return Verify.FACE
    if 21 <= code <= 24:
        return Verify.VEIN
    if 25 <= code <= 29:
        return Verify.PALM
    if 5 <= code <= 14 or code == 200:
        return Verify.OTHER
    return Verify.UNKNOWN


@functools.lru_cache(maxsize=4096)
def _key(word: str) -> str:
    """A word's lookup key (lower case, letters and digits only); memoised: devices repeat a few
    words."""
    return "".join(ch for ch in word.lower() if ch.isalnum())


PUNCH_WORDS: dict[str, Punch] = {
    _key(w): p
    for p, words in {
        Punch.IN: ["in", "i", "checkin", "check in", "c/in", "clock in", "clockin", "masuk",
                   "daftar masuk", "log masuk", "entry", "enter", "start", "duty on", "on duty"],
        Punch.OUT: ["out", "o", "checkout", "check out", "c/out", "clock out", "clockout",
                    "keluar", "daftar keluar", "log keluar", "exit", "leave", "duty off",
                    "off duty"],
        Punch.BREAK_OUT: ["break out", "break_out", "breakout", "rehat keluar", "keluar rehat",
                          "lunch out"],
        Punch.BREAK_IN: ["break in", "break_in", "breakin", "rehat masuk", "masuk rehat",
                         "lunch in"],
        Punch.OVERTIME_IN: ["overtime in", "overtime_in", "ot in", "ot-in", "otin",
                            "lebih masa masuk"],
        Punch.OVERTIME_OUT: ["overtime out", "overtime_out", "ot out", "ot-out", "otout",
                             "lebih masa keluar"],
        Punch.UNKNOWN: ["unknown", "", "none", "auto"],
    }.items()
    for w in words
}  # fmt: skip

VERIFY_WORDS: dict[str, Verify] = {
    _key(w): v
    for v, words in {
        Verify.FINGERPRINT: ["fingerprint", "finger", "fp", "thumb", "cap jari", "biometric"],
        Verify.FACE: ["face", "wajah", "muka", "facial", "face id"],
        Verify.CARD: ["card", "kad", "rfid", "badge", "nfc", "mifare", "em", "rfid card",
                      "ic card", "id card", "proximity"],
        Verify.PASSWORD: ["password", "pwd", "pin", "kata laluan", "keypad", "code", "passcode",
                          "temporary password", "dynamic password", "one time password",
                          "temporary", "dynamic"],
        Verify.PALM: ["palm", "tapak tangan"],
        Verify.VEIN: ["vein", "finger vein"],
        # door locks' other ways in (zigbee2mqtt's lock sources, Tuya and Aqara lock events)
        Verify.OTHER: ["other", "lain", "manual", "mobile", "gps", "web", "rf", "remote", "app",
                       "key", "mechanical key", "touch", "pairing", "homekit", "bluetooth",
                       "ble", "auto", "button", "inside", "outside"],
        Verify.UNKNOWN: ["unknown", "", "none"],
    }.items()
    for w in words
}  # fmt: skip


def to_punch(value: Any, value_map: Mapping[str, str] | None = None) -> Punch | None:
    """Canonical punch for `value`; None when it is not recognisable (caller quarantines)."""
    if value is None:
        return Punch.UNKNOWN
    if isinstance(value, Punch):
        return value
    if value_map:
        mapped = value_map.get(str(value))
        if mapped is None and isinstance(value, str):
            mapped = value_map.get(value.strip())
        if mapped is not None:
            value = mapped
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and float(value).is_integer():
        code = int(value)
        if code == 255:
            return Punch.UNKNOWN
        return ZK_PUNCH.get(code)
    text = str(value).strip()
    if text.isdigit():
        return to_punch(int(text))
    return PUNCH_WORDS.get(_key(text))


def to_verify(value: Any, value_map: Mapping[str, str] | None = None) -> Verify:
    """Canonical verify method; anything unrecognised is `unknown` (never an error)."""
    if value is None:
        return Verify.UNKNOWN
    if isinstance(value, Verify):
        return value
    if value_map:
        mapped = value_map.get(str(value))
        if mapped is not None:
            value = mapped
    if isinstance(value, int | float) and not isinstance(value, bool):
        return zk_verify(int(value))
    text = str(value).strip()
    if text.isdigit():
        return zk_verify(int(text))
    return _verify_word(_key(text)) or (Verify.OTHER if text else Verify.UNKNOWN)


#: What door locks put around the credential word: `rfid_card_unlock`, `unlock_fingerprint`.
_UNLOCK = ("unlocked", "unlock", "opened", "open")


def _verify_word(key: str) -> Verify | None:
    """A verify word (a lookup key), or the same word with a lock's "unlock" before or after."""
    found = VERIFY_WORDS.get(key)
    if found is not None or not key:
        return found
    for affix in _UNLOCK:
        if key.endswith(affix) and key != affix:
            return VERIFY_WORDS.get(key[: -len(affix)])
        if key.startswith(affix) and key != affix:
            return VERIFY_WORDS.get(key[len(affix) :])
    return None
