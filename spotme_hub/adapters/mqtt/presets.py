"""Named mappings for door devices whose payloads we know (see docs/mqtt.md).

A preset is an ordered list of `Mapping`s: the first whose rules (`match`/`require`/`ignore`)
accept a payload reads it; when every one skips it the payload is not a punch (`Ignored`). A
`MappingError` from a mapping whose rules accepted the payload is final (quarantine).

* ``tasmota`` — `tele/<t>/SENSOR` from the RDM6300, PN532 and Wiegand drivers. RDM6300/PN532 UIDs
  are hex strings (read as hex even when they have no A–F digit); the Wiegand UID is a JSON number
  (decimal). `Time` is the device's local time without an offset: it is read in the device's
  `timezone` (set it! Tasmota defaults to CET, 7 h from Malaysia) or else the office zone. Other
  sensors on the same topic are skipped.
* ``esp_rfid`` — `<t>/send` with `type: access` (with or without `cmd: log`); heartbeats, boot
  and `WARN` messages are skipped, so are cards the door rejected (`isKnown: "false"`). The uid is
  printed by esp-rfid as hex bytes WITHOUT zero padding (0x0A → `a`), so it is read as one hex
  number: stable per card, but not always the number printed on the card — enrol such cards as
  `hex:<uid as esp-rfid shows it>`. `time` is epoch seconds once NTP synced, else seconds since
  boot: then the receive time is used and the record is flagged `device_time_untrusted`.
* ``zigbee2mqtt_lock`` — `zigbee2mqtt/<name>` lock events: `action: unlock` with an
  `action_user` (the lock's user slot; map it with `user_ids: ["<device>:<slot>"]`); the empty
  `action` z2m publishes after each event and manual/keyless unlocks are skipped. The lock's
  `action_source_name` (keypad, rfid, `rfid_card_unlock`, `fingerprint_unlock`…) is read by the
  hub's verify vocabulary (`normalize.codes`), which `hub.verify_map` extends. z2m sends no
  time unless `last_seen` is on (ISO 8601 or epoch ms): otherwise the receive time is used.
* ``generic`` — the admin's own `mapping:` (one mapping or a list tried in order).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ...clock import DEFAULT_TZ
from ...normalize.mapping import Ignored, Mapping, MappingError
from ...record import RawPunch

_TASMOTA_COMMON: dict[str, Any] = {
    "time": "Time",
    "device_serial": "topic[1]",
    "verify": {"const": "card"},
}

PRESETS: dict[str, list[Mapping]] = {
    "tasmota": [
        Mapping.model_validate(
            {"require": ["RDM6300.UID"], "card": {"path": "RDM6300.UID", "format": "hex"}}
            | _TASMOTA_COMMON
        ),
        Mapping.model_validate(
            {"require": ["PN532.UID"], "card": {"path": "PN532.UID", "format": "hex"}}
            | _TASMOTA_COMMON
        ),
        Mapping.model_validate(
            {"require": ["Wiegand.UID"], "card": {"path": "Wiegand.UID", "format": "decimal"}}
            | _TASMOTA_COMMON
        ),
    ],
    "esp_rfid": [
        Mapping.model_validate(
            {
                "match": {"type": "access"},
                "ignore": {"isKnown": "false"},
                "require": ["uid"],
                "card": {"path": "uid", "format": "hex"},
                "time": "time",
                "device_serial": "hostname",
                "verify": {"const": "card"},
            }
        )
    ],
    "zigbee2mqtt_lock": [
        Mapping.model_validate(
            {
                "match": {"action": "unlock"},
                "require": ["action_user"],
                "user_id": "action_user",
                "time": "last_seen",
                "device_serial": "topic[1]",
                # the lock's credential word (keypad, rfid, rfid_card_unlock, fingerprint_unlock,
                # manual…) is read by the hub's verify vocabulary; `hub.verify_map` extends it
                "verify": "action_source_name",
            }
        )
    ],
}

PRESET_NAMES = ("tasmota", "esp_rfid", "zigbee2mqtt_lock", "generic")


def mappings_for(preset: str | None, mapping: Mapping | Sequence[Mapping] | None) -> list[Mapping]:
    """The mappings a device uses: its preset's, or its own `mapping` (preset generic/unset)."""
    if preset not in (None, "generic"):
        return PRESETS[preset]
    if mapping is None:
        raise ValueError("preset generic needs a mapping")
    return [mapping] if isinstance(mapping, Mapping) else list(mapping)


def apply_first(
    mappings: Sequence[Mapping],
    payload: Any,
    topic: str | None = None,
    received_at: datetime | None = None,
    default_timezone: str = DEFAULT_TZ,
    source: dict[str, Any] | None = None,
) -> RawPunch:
    """Apply the first mapping that accepts `payload` (JSON is parsed once for all of them).

    Raises `Ignored` when every mapping skips the payload, `MappingError` when one that accepted
    it cannot read it or the payload cannot be parsed."""
    parsed: dict[str, Any] = {}
    reasons: list[str] = []
    for m in mappings:
        if m.format == "json":
            if "json" not in parsed:
                parsed["json"] = m.parse_payload(payload)
            doc = parsed["json"]
        else:
            doc = payload
        try:
            return m.apply(doc, topic, received_at, default_timezone, source)
        except Ignored as exc:
            reasons.append(str(exc))
        except MappingError:
            raise
    raise Ignored("; ".join(reasons) or "no mapping")
