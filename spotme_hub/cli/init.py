"""`spotme-hub init DIR`: a commented starter configuration (one office, one device of each kind
the admin names), an env file for its secrets, and the commands that come next."""

from __future__ import annotations

import secrets
from pathlib import Path

#: each kind's starter device: the keys an admin must look at, with what to put there
DEVICES: dict[str, str] = {
    "zkteco": """\
  - id: lobby-zk                   # a terminal the hub pulls (port 4370)
    kind: zkteco
    office: {office}
    host: 192.0.2.10               # the terminal's address on the office network
    poll_every: 60                 # seconds between pulls (mode: live for realtime events)
""",
    "zkteco_adms": """\
  - id: door-push                  # a terminal that pushes to the hub (ADMS / "cloud server")
    kind: zkteco_adms
    office: {office}
    serial: ABCD000000000          # its serial number (Menu > System Info); set the terminal's
                                   # server address to this hub's api.listen
""",
    "mqtt": """\
  - id: gate-readers               # door controllers publishing to an MQTT broker
    kind: mqtt
    office: {office}
    broker: mqtt://127.0.0.1:1883  # mqtts://host:8883 for TLS
    username: hub
    password: ${{MQTT_PASSWORD}}     # from the env file
    topics: ["tele/+/RESULT"]
    preset: tasmota                # esp_rfid, zigbee2mqtt_lock, or generic with a mapping
""",
    "serial": """\
  - id: desk-reader                # a card reader on a serial port
    kind: serial
    office: {office}
    port: /dev/ttyUSB0             # better: /dev/serial/by-id/... (survives re-plugging)
    framing: rdm6300               # line, wiegand, osdp
""",
    "csv": """\
  - id: exports                    # a watch folder for USB-stick exports and HR files
    kind: csv
    office: {office}
    watch: imports                 # relative to this file; imported files move to processed/
""",
    "http": """\
  - id: hr-system                  # HR systems and mobile clients POST /api/v1/punches
    kind: http
    office: {office}
""",
    "simulated": """\
  - id: rehearsal                  # made-up punches, for trying the hub out
    kind: simulated
    office: {office}
""",
}

HEADER = """\
# spotme-hub configuration (written by `spotme-hub init`). Every key is in
# `spotme-hub config schema`; configs/example.yaml in the source shows a whole agency estate.
# Secrets come from the environment, ${{NAME}}: keep them in the env file beside this one.
hub:
  id: {hub_id}
  data_dir: data                   # the SQLite store and working files (relative to this file)
  # log_format: json               # one JSON object per event, for a log collector

offices:
  - id: {office}
    name: {office_name}
    state: {state}                   # decides weekends and holidays (KDH/KTN/TRG: Fri-Sat)
    # latitude: 2.9264             # with longitude and geofence_m: the geofence verdict
    # longitude: 101.6964

employees: []                      # or employees_file: employees.csv (id,name,user_ids,cards)

{devices}
core:
  # url: https://spotme.example.gov.my   # the SPOT-Me core; no forwarding while unset
  token: ${{SPOTME_CORE_TOKEN:-}}

api:
  listen: 127.0.0.1:8080           # 0.0.0.0:8080 for terminals and clients on the network
  tokens:
    - {{name: admin, token: "${{SPOTME_ADMIN_TOKEN}}", scopes: [admin]}}
"""


def write_starter(
    directory: Path, kinds: list[str], office: str, state: str, hub_id: str
) -> list[Path]:
    """Write `hub.yaml` and `env` in `directory`; FileExistsError when either is there."""
    directory.mkdir(parents=True, exist_ok=True)
    config, env = directory / "hub.yaml", directory / "env"
    for path in (config, env):
        if path.exists():
            raise FileExistsError(path)
    if kinds:
        devices = "devices:\n" + "".join(DEVICES[k].format(office=office) for k in kinds)
    else:
        devices = "devices: []                        # spotme-hub init DIR --kind zkteco …\n"
    text = HEADER.format(hub_id=hub_id, office=office, office_name=office.upper(), state=state,
                         devices=devices)  # fmt: skip
    config.write_text(text, encoding="utf-8")
    lines = [
        "# secrets for hub.yaml: NAME=value, one per line (the service unit reads this file)",
        f"SPOTME_ADMIN_TOKEN={secrets.token_urlsafe(24)}",
        "SPOTME_CORE_TOKEN=",
    ]
    if "mqtt" in kinds:
        lines.append("MQTT_PASSWORD=")
    env.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env.chmod(0o600)
    if "csv" in kinds:
        (directory / "imports").mkdir(exist_ok=True)
    return [config, env]
