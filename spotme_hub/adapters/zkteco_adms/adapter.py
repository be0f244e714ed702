"""`kind: zkteco_adms` — ZKTeco terminals that push to the hub over HTTP (ADMS / PUSH protocol).

The terminal is the HTTP client (routes in `spotme_hub/api/adms.py`); this module owns the wire
format (handshake options, ATTLOG/OPERLOG lines, command strings and results), the per-device
state the HTTP side needs; `tables.py` keeps the command queue, command results, the device
user directory, device events and unknown serial numbers durably.

`run(ctx)` only watches for silence: a terminal that stops calling fails the session, so its
health goes DOWN after `hub.failures_to_down` silent periods and back UP on its next request.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from pydantic import Field

from ...clock import zone
from ...config import Device
from ...contract import (
    DeviceContext,
    DeviceError,
    HasDemo,
    HasRoutes,
    HasTables,
    Options,
    Replayable,
    Streaming,
    sibling,
)
from ...record import RawPunch, Rejection

if TYPE_CHECKING:
    from sqlalchemy import Table


KIND = "zkteco_adms"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: the longest window a command may ask a terminal for (a year)
MAX_WINDOW_H = 24 * 366


class AdmsOptions(Options):
    serial: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
        description="The terminal's serial number (SN= in its requests).",
    )  # fmt: skip
    delay: int = Field(10, ge=2, le=60, description="Delay: seconds between command polls.")
    error_delay: int = Field(30, ge=2, le=300, description="ErrorDelay: retry after a failure (s).")
    trans_interval: int = Field(1, ge=0, description="TransInterval: minutes between uploads.")
    trans_times: str = Field(
        "00:00;14:05", pattern=r"^(\d\d:\d\d(;\d\d:\d\d){0,9})?$",
        description="TransTimes: up to 10 scheduled upload times HH:MM;HH:MM.",
    )  # fmt: skip
    trans_flag: str = Field(
        "TransData AttLog\tOpLog\tEnrollUser\tChgUser", description="TransFlag: what to upload."
    )
    realtime: bool = Field(True, description="Realtime=1: push every punch at once.")
    extra_options: dict[str, str] = Field(
        default_factory=dict, description="More handshake lines (key: value), sent as given."
    )
    verify_sum_every: float | None = Field(
        None, gt=0, description="Seconds between scheduled VERIFY SUM reconciliations."
    )
    verify_window_h: float = Field(
        24, gt=0, le=MAX_WINDOW_H, description="Hours a scheduled reconciliation covers (≤ a year)."
    )
    verify_lag_s: float = Field(300, ge=0, description="Leave out the newest seconds (in flight).")
    backfill_on_mismatch: bool = Field(True, description="Queue a DATA QUERY when counts differ.")
    command_timeout_s: float = Field(
        300, gt=0, description="Resend a command unanswered this long."
    )
    silent_after_s: float | None = Field(
        900, gt=0, description="No request for this long counts as a failure (health DOWN)."
    )


#: What an OPLOG operation code means (PUSH protocol; codes not listed are shown as numbers).
OPLOG_CODES = {0: "power on", 1: "power off", 3: "alarm", 4: "menu", 5: "change setting",
               9: "delete user", 21: "set time", 23: "delete punches",
               30: "enrol user"}  # fmt: skip


# --- wire format: lines --------------------------------------------------------------------


class LineError(ValueError):
    """A line that cannot be read; the message is the quarantine reason."""


def _int(value: str, what: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise LineError(f"{what} {value!r} is not a number") from None


def _time(value: str, what: str = "time") -> datetime:
    try:
        return datetime.strptime(value.strip(), TIME_FORMAT)
    except ValueError:
        raise LineError(f"{what} {value!r} is not YYYY-MM-DD HH:MM:SS") from None


def _none(value: str) -> bool:
    return value.strip() in ("", "-1")


def parse_gps(extend_data: str) -> tuple[float | None, float | None]:
    """ExtendData: Base64 JSON ``{"GPSInfo": {"latitude": "..", "longitude": ".."}}``."""
    data = extend_data.strip()
    try:
        doc = orjson.loads(base64.b64decode(data + "=" * (-len(data) % 4), validate=True))
    except (binascii.Error, ValueError):
        raise LineError("ExtendData is not Base64 JSON") from None
    gps = doc.get("GPSInfo") if isinstance(doc, dict) else None
    if not isinstance(gps, dict):
        return None, None
    try:
        lat, lon = float(gps["latitude"]), float(gps["longitude"])
    except (KeyError, TypeError, ValueError):
        raise LineError(f"GPSInfo without numeric latitude/longitude: {gps!r}") from None
    if (lat, lon) in ((-1, -1), (0, 0)):  # no fix
        return None, None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise LineError(f"GPSInfo out of range: {lat}, {lon}")
    return lat, lon


def parse_attlog_line(line: str, sn: str) -> RawPunch:
    """PIN, time, status, verify, workcode, reserved ×2 [, mask, temperature, converted
    temperature, TimeOffset, ExtendData]. Raises LineError with the reason."""
    f = line.rstrip("\r").split("\t")
    if len(f) < 2:
        raise LineError(f"expected tab-separated fields (PIN, time, ...), got {len(f)}")
    pin = f[0].strip()
    if not pin:
        raise LineError("empty PIN")
    when = _time(f[1])
    status = _int(f[2], "status") if len(f) > 2 and f[2].strip() else None
    verify = _int(f[3], "verify") if len(f) > 3 and f[3].strip() else None
    source: dict[str, Any] = {"kind": KIND, "sn": sn, "table": "ATTLOG"}
    if len(f) > 4 and f[4].strip() not in ("", "0"):
        source["workcode"] = f[4].strip()
    if len(f) > 7 and not _none(f[7]):
        source["mask"] = _int(f[7], "mask flag")
    for idx, name in ((8, "temperature"), (9, "temperature_converted")):
        if len(f) > idx and not _none(f[idx]):
            try:
                source[name] = float(f[idx])
            except ValueError:
                raise LineError(f"{name} {f[idx]!r} is not a number") from None
    if len(f) > 10 and not _none(f[10]):
        offset = _int(f[10], "TimeOffset")
        if abs(offset) > 14 * 3600:
            raise LineError(f"TimeOffset {offset} s is not a UTC offset")
        when = when.replace(tzinfo=timezone(timedelta(seconds=offset)))
    lat = lon = None
    if len(f) > 11 and not _none(f[11]):
        lat, lon = parse_gps(f[11])
    return RawPunch(
        device_time=when, user_id=pin, punch=status, verify=verify, latitude=lat, longitude=lon,
        device_serial=sn, source=source, raw=line,
    )  # fmt: skip


def parse_kv(text: str, sep: str = "\t") -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(sep):
        key, eq, value = part.partition("=")
        if eq and key.strip():
            out[key.strip()] = value.strip()
    return out


def parse_operlog_line(line: str) -> tuple[str, dict[str, Any]]:
    """→ ("USER", fields) | ("OPLOG", fields) | (other kind, {}) — other kinds are ignored."""
    line = line.rstrip("\r")
    kind, _, rest = line.partition(" ")
    kind = kind.strip().upper()
    if kind == "USER":
        fields = parse_kv(rest)
        if not fields.get("PIN"):
            raise LineError("USER line without PIN=")
        return kind, fields
    if kind == "OPLOG":
        f = rest.split("\t")
        if len(f) < 3:
            raise LineError(f"OPLOG needs op code, operator and time, got {len(f)} field(s)")
        code = _int(f[0], "OPLOG op code")
        when = _time(f[2], "OPLOG time")
        return kind, {
            "op_code": code, "operator": f[1].strip(), "op_time": when.strftime(TIME_FORMAT),
            "values": [v.strip() for v in f[3:]],
        }  # fmt: skip
    return kind, {}


def split_lines(body: bytes) -> list[tuple[int, str | bytes]]:
    """Numbered non-empty lines; a line that is not UTF-8 stays bytes (→ quarantine)."""
    out: list[tuple[int, str | bytes]] = []
    for n, chunk in enumerate(body.split(b"\n"), start=1):
        if not chunk.strip():
            continue
        try:
            out.append((n, chunk.decode("utf-8").rstrip("\r")))
        except UnicodeDecodeError:
            out.append((n, chunk))
    return out


def parse_attlog(
    ctx: DeviceContext, sn: str, body: bytes
) -> tuple[list[RawPunch], list[Rejection]]:
    """A whole ATTLOG post: punches for the good lines, quarantine for the others."""
    punches: list[RawPunch] = []
    rejections: list[Rejection] = []
    for n, line in split_lines(body):
        where = {"sn": sn, "line": n, "table": "ATTLOG"}
        if isinstance(line, bytes):
            rejections.append(ctx.reject("line is not UTF-8", line, where))
            continue
        try:
            punch = parse_attlog_line(line, sn)
        except LineError as exc:
            rejections.append(ctx.reject(str(exc), line, where))
            continue
        punch.source["line"] = n
        punches.append(punch)
    return punches, rejections


@dataclass
class Operlog:
    """An OPERLOG post, sorted: directory updates, events, bad lines, lines ignored by kind."""

    users: list[dict[str, str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    ignored: int = 0

    @property
    def lines(self) -> int:
        return len(self.users) + len(self.events) + len(self.rejections) + self.ignored


def parse_operlog(ctx: DeviceContext, sn: str, body: bytes) -> Operlog:
    out = Operlog()
    for n, line in split_lines(body):
        where = {"sn": sn, "line": n, "table": "OPERLOG"}
        if isinstance(line, bytes):
            out.rejections.append(ctx.reject("line is not UTF-8", line, where))
            continue
        try:
            kind, fields = parse_operlog_line(line)
        except LineError as exc:
            out.rejections.append(ctx.reject(str(exc), line, where))
            continue
        if kind == "USER":
            out.users.append(fields)
        elif kind == "OPLOG":
            out.events.append({**fields, "raw": line})
        else:  # FP, FACE, USERPIC, BIOPHOTO...: accepted, not needed here
            out.ignored += 1
    return out


# --- wire format: handshake, commands, results --------------------------------------------


def timezone_option(tz_name: str, when: datetime | None = None) -> str:
    """TimeZone=: whole hours (`8`), minutes for half/quarter-hour zones (`330`)."""
    offset = (when or datetime.now(zone(tz_name))).astimezone(zone(tz_name)).utcoffset()
    minutes = int((offset or timedelta()).total_seconds() // 60)
    return str(minutes // 60) if minutes % 60 == 0 else str(minutes)


def handshake_text(sn: str, opts: AdmsOptions, tz_name: str, stamps: dict[str, Any]) -> str:
    values: dict[str, str] = {
        "ATTLOGStamp": str(stamps.get("ATTLOGStamp") or "None"),
        "OPERLOGStamp": str(stamps.get("OPERLOGStamp") or "None"),
        "ATTPHOTOStamp": "None",
        "ErrorDelay": str(opts.error_delay),
        "Delay": str(opts.delay),
        "TransTimes": opts.trans_times,
        "TransInterval": str(opts.trans_interval),
        "TransFlag": opts.trans_flag,
        "TimeZone": timezone_option(tz_name),
        "Realtime": "1" if opts.realtime else "0",
        "Encrypt": "None",
        "ServerVer": "2.2.14",
        "PushProtVer": "2.2.14",
    }
    values.update(opts.extra_options)
    return "\n".join([f"GET OPTION FROM: {sn}", *(f"{k}={v}" for k, v in values.items())]) + "\n"


def command_text(kind: str, start: str | None = None, end: str | None = None) -> str:
    if kind == "info":
        return "INFO"
    verb = {"backfill": "DATA QUERY ATTLOG", "verify": "VERIFY SUM ATTLOG"}[kind]
    return f"{verb} StartTime={start}\tEndTime={end}"


def parse_results(body: str) -> list[dict[str, str]]:
    """devicecmd body: `ID=..&Return=..&CMD=..` lines; `key=value` lines that follow one (INFO
    answers) belong to it."""
    out: list[dict[str, str]] = []
    for line in body.replace("\r", "").split("\n"):
        if not line.strip():
            continue
        if line.startswith("ID="):
            out.append(parse_kv(line, "&"))
        elif out:
            out[-1].update(parse_kv(line, "&") if "&" in line else parse_kv(line, "\n"))
    return out


INFO_FIELDS = ("firmware", "user_count", "fp_count", "punch_count", "ip", "fp_algorithm",
               "face_algorithm", "faces_needed", "face_count", "features")  # fmt: skip


def parse_info(info: str) -> dict[str, str]:
    """getrequest `INFO=<fw>,<users>,<FPs>,<punches>,<ip>,...` → health detail."""
    return {k: v.strip() for k, v in zip(INFO_FIELDS, info.split(","), strict=False) if v.strip()}


# --- per-device state and the adapter -----------------------------------------------------


@dataclass
class AdmsState:
    """What the HTTP side and the adapter share for one device (lives as long as its context)."""

    last_contact: float | None = None
    degraded_reason: str | None = None
    restored: bool = False  # the last reconciliation verdict was read back from the store
    detail: dict[str, Any] = field(default_factory=dict)

    def contact(self, ctx: DeviceContext, **detail: Any) -> None:
        """A request from the terminal: UP (unless a reconciliation left it DEGRADED)."""
        self.last_contact = time.monotonic()
        self.detail.update(detail)
        if self.degraded_reason:
            ctx.mark_seen()
        else:
            ctx.mark_up(**self.detail)


def state_of(ctx: DeviceContext) -> AdmsState:
    """The terminal's session state, kept with its device context (the adapter and the routes
    share it; it survives a restart of the adapter)."""
    return ctx.state(AdmsState)


class ZktecoAdmsAdapter(Streaming, Replayable, HasTables, HasRoutes, HasDemo):
    kind: ClassVar[str] = KIND
    options_model: ClassVar[type[Options]] = AdmsOptions

    @classmethod
    def tables(cls) -> Sequence[Table]:
        """The command queue, the unknown serials, the user directory and device events."""
        from .tables import COMMANDS, EVENTS, PENDING, USERS

        return [COMMANDS, PENDING, USERS, EVENTS]

    routes = sibling("routes", "router")
    demo_part = sibling("demo", "part")

    def __init__(self, device: Device, options: AdmsOptions):
        self.device = device
        self.opts = options

    async def run(self, ctx: DeviceContext) -> None:
        st = state_of(ctx)
        started = time.monotonic()
        silent = self.opts.silent_after_s
        while True:
            await ctx.sleep(min(30.0, silent or 30.0))
            if silent is None:
                continue
            last = max(st.last_contact or started, started)
            if time.monotonic() - last > silent:
                raise DeviceError(
                    "unreachable",
                    f"no request from terminal {self.opts.serial} for {silent:.0f} s "
                    "(check its Cloud/ADMS server address and network)",
                )

    @classmethod
    def replay(cls, device: Device, raw: Any, source: dict[str, Any]) -> list[RawPunch] | Rejection:
        """Re-read a quarantined ATTLOG line (after a fix)."""
        if source.get("table") != "ATTLOG":
            return Rejection("only ATTLOG lines can be replayed", raw, dict(source), device.id)
        sn = str(source.get("sn") or device.options.serial)
        try:
            punch = parse_attlog_line(str(raw), sn)
        except LineError as exc:
            return Rejection(str(exc), raw, dict(source), device.id)
        punch.source["line"] = source.get("line")
        return [punch]
