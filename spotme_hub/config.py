"""Hub configuration: pydantic models for the YAML file an agency admin writes.

Errors name the file, the line and the dotted field path (`devices[2].office`), and every error in
the file is reported at once. Device kinds bring their own option models: the caller names the
kinds it knows (`Kinds`; the composition root passes the adapter registry), so this module knows
nothing of the adapters.
"""

from __future__ import annotations

import csv
import difflib
import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .clock import DEFAULT_TZ
from .schedule import (
    DEFAULT_SCHEME,
    SCHEME_KINDS,
    CalendarSection,
    DaysSettings,
    Fact,
    ReportSection,
    Scheme,
    StateCode,
    default_schemes,
)
from .yamlsource import ConfigError, Document, Issue, dotted, load_yaml


class Kinds(Protocol):
    """The device kinds a configuration may use, and each kind's options model."""

    def kinds(self) -> list[str]: ...

    def options_model(self, kind: str) -> type[BaseModel]: ...


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


@functools.cache
def _zone_ok(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def check_timezone(value: str | None) -> str | None:
    if value is not None and not _zone_ok(value):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. Asia/Kuala_Lumpur, Asia/Kuching)")
    return value


def check_regex(value: str | None) -> str | None:
    """A pydantic validator body: the value compiles as a Python regular expression."""
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def _as_str_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str | int):
        value = [value]
    if isinstance(value, list):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


class HubSection(Strict):
    id: str = Field("spotme-hub", min_length=1, description="Identifies this hub to the core.")
    data_dir: str = Field("data", description="Data directory, relative to the config file.")
    database: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/hub.db. PostgreSQL: "
        "postgresql+psycopg://user@host/db",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL", description="FULL survives power loss; NORMAL survives process crashes only."
    )
    sqlite_cache_mb: int = Field(
        32, ge=2, le=4096, description="SQLite page cache; larger speeds up big imports."
    )
    max_clock_skew_s: float = Field(300, gt=0, description="Flag clock_skew above this.")
    failures_to_down: int = Field(3, ge=1, description="Consecutive failures before DOWN.")
    restart_min_s: float = Field(1.0, gt=0)
    restart_max_s: float = Field(300.0, gt=0)
    submit_queue: int = Field(10_000, ge=1, description="Punches waiting for commit (bounded).")
    gc_young_threshold: int = Field(
        50_000, ge=0,
        description="Allocations between young garbage collections while the hub runs (Python's "
        "default is 700); objects made at start are frozen out of collection. 0 leaves the "
        "interpreter's settings alone.",
    )  # fmt: skip
    disk_alert_mb: float = Field(
        1024, ge=0, description="Alert (metrics, dashboard, devices) when the data directory's "
        "disk has less free space than this.",
    )  # fmt: skip
    disk_floor_mb: float = Field(
        200, ge=0, description="Below this free space the hub refuses new data (503 with "
        "Retry-After: push clients retry) rather than fill the disk.",
    )  # fmt: skip
    log_format: Literal["text", "json"] = Field(
        "text", description="`spotme-hub run`'s log: text, or JSON Lines for a log collector."
    )
    log_level: Literal["warning", "info", "debug"] | None = Field(
        None, description="`run`'s log level when -v is not given (default warning)."
    )
    log_file: str | None = Field(
        None, description="Write `run`'s log to this file (relative to the config), rotated."
    )
    log_file_max_mb: float = Field(10, gt=0, le=10_000, description="Rotate at this size.")
    log_file_backups: int = Field(5, ge=0, le=1000, description="Rotated files kept.")
    punch_map: dict[str, Literal[
        "in", "out", "break_out", "break_in", "overtime_in", "overtime_out", "unknown"
    ]] = Field(
        default_factory=dict,
        description="The agency's own punch words, e.g. {Hadir: in, Pulang: out}.",
    )  # fmt: skip
    verify_map: dict[str, Literal[
        "fingerprint", "face", "card", "password", "palm", "vein", "other", "unknown"
    ]] = Field(
        default_factory=dict,
        description="The agency's own verify words, for every source: a door lock's or an "
        "export's word for how the officer proved who they are, e.g. {kad_pekerja: card}.",
    )  # fmt: skip


class Office(Strict):
    id: str = Field(min_length=1)
    name: str | None = None
    state: StateCode | None = Field(None, description="Malaysian state code (holidays' MY subdiv).")
    timezone: str = DEFAULT_TZ
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    geofence_m: float | None = Field(None, gt=0)

    _tz = field_validator("timezone")(check_timezone)

    @model_validator(mode="after")
    def _both_coordinates(self) -> Office:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude go together")
        return self


class Device(BaseModel):
    """Keys common to every device; the rest belong to the device kind's own option model."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    kind: str
    office: str
    name: str | None = None
    enabled: bool = True
    timezone: str | None = None
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    _options: Any = PrivateAttr(default=None)
    _office_zone: str = PrivateAttr(default=DEFAULT_TZ)

    _tz = field_validator("timezone")(check_timezone)

    @property
    def zone(self) -> str:
        """The zone the device's clock keeps: its own `timezone`, else its office's. The one
        statement of that rule (normalisation, the adapters, the API and the reports use it)."""
        return self.timezone or self._office_zone

    @property
    def options(self) -> Any:
        """The validated kind-specific options (an instance of the adapter's options model)."""
        return self._options

    def option_values(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


class Employee(Strict):
    id: str = Field(min_length=1)
    name: str | None = None
    user_ids: list[str] = Field(
        default_factory=list,
        description="Device user ids / PINs. 'PIN' matches on any device, 'DEVICE:PIN' on one.",
    )
    cards: list[str] = Field(default_factory=list)
    office: str | None = Field(
        None, description="Home office: its state's calendar and rules apply wherever one punches."
    )
    scheme: str = Field(DEFAULT_SCHEME, description="Working-time scheme (see `schemes`).")

    _lists = field_validator("user_ids", "cards", mode="before")(_as_str_list)

    @field_validator("id", mode="before")
    @classmethod
    def _id_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class CoreSection(Strict):
    url: str | None = Field(None, description="SPOT-Me core base URL; no forwarding when unset.")
    token: SecretStr | None = None
    path: str = "/api/v1/attendance/batch"
    batch_size: int = Field(500, ge=1, le=10_000)
    timeout_s: float = Field(30, gt=0)
    drain_rate: float | None = Field(None, gt=0, description="Max records/s after an outage.")
    backlog_alert: int | None = Field(
        None, ge=1, description="Alert when the backlog exceeds this."
    )
    backlog_alert_age_s: float | None = Field(None, gt=0)
    poll_s: float = Field(1.0, gt=0, description="Look for new records this often when idle.")
    forward_days: bool = Field(
        False, description="Also deliver every change of an attendance day to `days_path`."
    )
    days_path: str = "/api/v1/attendance/days"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from urllib.parse import urlsplit

        u = urlsplit(v.strip())
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"must be an http:// or https:// URL with a host, e.g. "
                             f"https://spotme.example.gov.my (got {v!r})")  # fmt: skip
        try:
            u.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError(f"not a port in {v!r}") from None
        return v.strip()

    retry_min_s: float = Field(0.5, gt=0, description="First retry delay (then exponential).")
    retry_max_s: float = Field(60, gt=0, description="Longest delay between retries.")


Scope = Literal["feed:read", "punches:write", "facts:write", "admin"]


class ApiToken(Strict):
    name: str
    token: SecretStr
    scopes: list[Scope]


class ApiSection(Strict):
    enabled: bool = True
    listen: str = Field("127.0.0.1:8080", description="HOST:PORT the API listens on.")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"must be HOST:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080 (got {v!r})")
        return v

    tokens: list[ApiToken] = Field(default_factory=list)
    max_body_bytes: int = Field(5_000_000, ge=1024)
    max_page: int = Field(5000, ge=1)


class HubConfig(Strict):
    hub: HubSection = Field(default_factory=HubSection)
    offices: list[Office] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    employees: list[Employee] = Field(default_factory=list)
    employees_file: str | None = Field(
        None, description="CSV with columns id,name,user_ids,cards (lists split on ';')."
    )
    core: CoreSection = Field(default_factory=CoreSection)
    api: ApiSection = Field(default_factory=ApiSection)
    calendar: CalendarSection = Field(default_factory=CalendarSection)
    schemes: dict[str, Scheme] = Field(
        default_factory=default_schemes, description="Working-time schemes by name (WBF built in)."
    )
    facts: list[Fact] = Field(default_factory=list, description="Officer facts (leave, BDR…).")
    facts_file: str | None = Field(
        None,
        description="More facts: YAML (`facts: [...]`) or CSV (a column per key, weekdays "
        "split on ';'); re-read when it changes.",
    )
    attendance: DaysSettings = Field(default_factory=DaysSettings)
    report: ReportSection = Field(
        default_factory=ReportSection, description="The monthly report: colour card thresholds."
    )

    _base_dir: Path = PrivateAttr(default=Path("."))
    _source: str = PrivateAttr(default="<memory>")
    _office_index: dict[str, Office] = PrivateAttr(default_factory=dict)
    _file_facts: list[Fact] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _wbf_built_in(self) -> HubConfig:
        self.schemes = {**default_schemes(), **self.schemes}
        return self

    @model_validator(mode="after")
    def _device_zones(self) -> HubConfig:
        zones = {o.id: o.timezone for o in self.offices}
        for d in self.devices:
            d._office_zone = zones.get(d.office, DEFAULT_TZ)
        return self

    # -- derived helpers -------------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def source(self) -> str:
        return self._source

    @property
    def data_dir(self) -> Path:
        p = Path(self.hub.data_dir)
        return p if p.is_absolute() else (self._base_dir / p)

    @property
    def pid_file(self) -> Path:
        """Where a running hub writes its process id (`reload` signals it, `restore` checks)."""
        return self.data_dir / "hub.pid"

    @property
    def database_url(self) -> str:
        if self.hub.database:
            return self.hub.database
        return f"sqlite:///{(self.data_dir / 'hub.db').resolve()}"

    def office(self, office_id: str) -> Office:
        index = self._office_index
        if len(index) != len(self.offices):  # built on first use (hot: once per punch)
            index = self._office_index = {o.id: o for o in self.offices}
        return index[office_id]

    #: the sections a running hub takes from a re-read file (`adopt`); the others need a restart
    LIVE: ClassVar[tuple[str, ...]] = ("devices", "employees", "offices", "facts", "calendar",
                                       "schemes", "attendance", "report")  # fmt: skip

    def adopt(self, new: HubConfig) -> list[str]:
        """Take `new`'s live sections in place (whoever holds this configuration sees them) and
        return the other sections that differ: those keep their running values until a
        restart."""
        for name in self.LIVE:
            setattr(self, name, getattr(new, name))
        self._office_index = {}
        self._file_facts = new._file_facts
        return [n for n in type(self).model_fields if n not in self.LIVE
                and getattr(self, n) != getattr(new, n)]  # fmt: skip

    def device(self, device_id: str) -> Device:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)

    def zone_of(self, device_id: str, office_id: str | None = None) -> str:
        """A device's zone (`Device.zone`); for one no longer configured (a health row, a
        stored record), its office's, else the default."""
        try:
            return self.device(device_id).zone
        except KeyError:
            pass
        try:
            return self.office(office_id).timezone if office_id else DEFAULT_TZ
        except KeyError:
            return DEFAULT_TZ

    def resolve_path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self._base_dir / p

    @property
    def file_facts(self) -> list[Fact]:
        """The facts of `facts_file`, as read with the configuration."""
        return self._file_facts


def load_facts_file(cfg: HubConfig) -> tuple[list[Fact], list[Issue]]:
    """The facts of `cfg.facts_file` (none without one), each checked as the configuration's own
    are: valid keys, a known employee, an id no other fact has. Problems name file, line, field."""
    if not cfg.facts_file:
        return [], []
    path = cfg.resolve_path(cfg.facts_file)
    label = str(path)
    issues: list[Issue] = []
    #: (the fact's line, its place in the file, its keys)
    placed: list[tuple[int | None, list[str | int], Any]] = []
    doc: Document | None = None  # a YAML file's positions (a CSV row has only its line)
    if path.suffix.lower() == ".csv":
        try:
            with path.open(encoding="utf-8-sig", newline="") as fh:
                for lineno, row in enumerate(csv.DictReader(fh), start=2):
                    item = {k.strip(): v.strip() for k, v in row.items() if k and v and v.strip()}
                    if "weekdays" in item:
                        item["weekdays"] = [d.strip() for d in item["weekdays"].split(";") if d]
                    placed.append((lineno, [], item))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            return [], [Issue(label, None, "", f"cannot read the facts file: {exc}")]
    else:
        try:
            doc = load_yaml(path)
        except ConfigError as exc:
            return [], exc.issues
        except OSError as exc:
            return [], [Issue(label, None, "", f"cannot read the facts file: {exc}")]
        data = doc.data
        prefix: list[str | int] = []
        if isinstance(data, dict):
            data, prefix = data.get("facts"), ["facts"]
        if not isinstance(data, list):
            return [], [Issue(label, 1, "", "a facts file is a list of facts, or `facts: [...]`")]
        placed = [(doc.line_of([*prefix, i]), [*prefix, i], it) for i, it in enumerate(data)]
    emp_ids = {e.id for e in cfg.employees}
    seen = {f.id for f in cfg.facts}
    facts: list[Fact] = []
    for line, loc, item in placed:
        if not isinstance(item, dict):
            issues.append(Issue(label, line, dotted(loc), "a fact is a mapping of keys"))
            continue
        try:
            fact = Fact.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors():
                sub = [*loc, *err["loc"]]
                at = (doc.line_of(sub) if doc is not None else None) or line
                issues.append(Issue(label, at, dotted(sub), err["msg"]))
            continue
        if fact.id in seen:
            issues.append(
                Issue(label, line, dotted([*loc, "id"]), f"duplicate fact id {fact.id!r}")
            )
        elif fact.employee not in emp_ids:
            where = dotted([*loc, "employee"])
            issues.append(Issue(label, line, where, f"unknown employee {fact.employee!r}"))
        else:
            seen.add(fact.id)
            facts.append(fact)
    return facts, issues


def _employees_from_csv(path: Path, file_label: str) -> tuple[list[dict[str, Any]], list[Issue]]:
    issues: list[Issue] = []
    rows: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"id"} - set(reader.fieldnames or [])
            if missing:
                return [], [Issue(str(path), 1, "", "employees file needs an 'id' column")]
            for lineno, row in enumerate(reader, start=2):
                if not (row.get("id") or "").strip():
                    issues.append(Issue(str(path), lineno, "id", "empty employee id"))
                    continue

                def split(v: str | None) -> list[str]:
                    return [x.strip() for x in (v or "").split(";") if x.strip()]

                rows.append(
                    {
                        "id": row["id"].strip(),
                        "name": (row.get("name") or "").strip() or None,
                        "user_ids": split(row.get("user_ids")),
                        "cards": split(row.get("cards")),
                        "_line": lineno,
                    }
                )
    except OSError as exc:
        issues.append(Issue(file_label, None, "employees_file", f"cannot read {path}: {exc}"))
    return rows, issues


def _raw_items(data: dict[str, Any], section: str) -> list[tuple[int, dict[str, Any]]]:
    items = data.get(section)
    if not isinstance(items, list):
        return []
    return [(i, it) for i, it in enumerate(items) if isinstance(it, dict)]


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _check_references(
    cfg: HubConfig, doc: Document, data: dict[str, Any], issues: list[Issue]
) -> None:
    """Cross-references, checked on the file as written (so one invalid office does not also
    make every device that points at it an error)."""
    office_ids: set[str] = set()
    for i, office in _raw_items(data, "offices"):
        oid = str(office.get("id"))
        if oid in office_ids:
            issues.append(doc.issue(["offices", i, "id"], f"duplicate office id {oid!r}"))
        office_ids.add(oid)
    seen: set[str] = set()
    for i, dev in _raw_items(data, "devices"):
        did = str(dev.get("id"))
        if did in seen:
            issues.append(doc.issue(["devices", i, "id"], f"duplicate device id {did!r}"))
        seen.add(did)
        if "office" in dev and str(dev["office"]) not in office_ids:
            known = ", ".join(sorted(office_ids)) or "none defined"
            issues.append(
                doc.issue(["devices", i, "office"], f"unknown office {dev['office']!r} ({known})")
            )
    from .cards import canonical_card

    emp_ids: set[str] = set()
    card_owner: dict[str, str] = {}
    pin_owner: dict[str, str] = {}
    for i, emp in enumerate(cfg.employees):
        loc: list[str | int] = ["employees", i]
        if i >= len(data.get("employees") or []):
            loc = ["employees_file"]
        if emp.id in emp_ids:
            issues.append(doc.issue([*loc, "id"], f"duplicate employee id {emp.id!r}"))
        emp_ids.add(emp.id)
        for j, card in enumerate(emp.cards):
            key = canonical_card(card)
            if key is None:
                issues.append(doc.issue([*loc, "cards", j], f"not a card number: {card!r}"))
                continue
            other = card_owner.get(key)
            if other is not None and other != emp.id:
                issues.append(
                    doc.issue(
                        [*loc, "cards", j], f"card {card!r} is already mapped to employee {other!r}"
                    )
                )
            card_owner[key] = emp.id
        if emp.office is not None and emp.office not in office_ids:
            known = ", ".join(sorted(office_ids)) or "none defined"
            issues.append(doc.issue([*loc, "office"], f"unknown office {emp.office!r} ({known})"))
        if emp.scheme not in cfg.schemes:
            known = ", ".join(sorted(cfg.schemes))
            issues.append(doc.issue([*loc, "scheme"], f"unknown scheme {emp.scheme!r} ({known})"))
        for j, pin in enumerate(emp.user_ids):
            other = pin_owner.get(pin)
            if other is not None and other != emp.id:
                issues.append(
                    doc.issue(
                        [*loc, "user_ids", j],
                        f"user id {pin!r} is already mapped to employee {other!r}",
                    )
                )
            pin_owner[pin] = emp.id
    calendar = _section(data, "calendar")
    holidays = _section(calendar, "holidays")
    scoped = [(["calendar", "holidays", k], holidays.get(k)) for k in ("add", "remove")]
    scoped.append((["calendar", "weekends"], calendar.get("weekends")))
    for where, items in scoped:
        for i, item in enumerate(items if isinstance(items, list) else []):
            named = item.get("offices") if isinstance(item, dict) else None
            for j, oid in enumerate(named if isinstance(named, list) else []):
                if str(oid) not in office_ids:
                    issues.append(doc.issue([*where, i, "offices", j], f"unknown office {oid!r}"))
    fact_ids: set[str] = set()
    for i, fact in _raw_items(data, "facts"):  # as written: an invalid fact keeps its index
        fid, owner = str(fact.get("id")), str(fact.get("employee"))
        if fid in fact_ids:
            issues.append(doc.issue(["facts", i, "id"], f"duplicate fact id {fid!r}"))
        fact_ids.add(fid)
        if "employee" in fact and owner not in emp_ids:
            issues.append(doc.issue(["facts", i, "employee"], f"unknown employee {owner!r}"))


def _validate_device_options(
    cfg: HubConfig, doc: Document, issues: list[Issue], kinds: Kinds
) -> None:
    for i, dev in enumerate(cfg.devices):
        try:
            model = kinds.options_model(dev.kind)
        except KeyError as exc:
            known = ", ".join(kinds.kinds())
            why = str(exc.args[0]) if exc.args and str(exc.args[0]) != dev.kind else dev.kind
            message = f"unknown kind {dev.kind!r} ({known})"
            if why != dev.kind:
                message = f"kind {why}"
            issues.append(doc.issue(["devices", i, "kind"], message))
            continue
        try:
            dev._options = model.model_validate(dev.option_values())
        except ValidationError as exc:
            issues.extend(
                _pydantic_issues(exc, doc, ["devices", i], model, list(Device.model_fields))
            )


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds (itself, or inside Optional, list, dict, a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _keys_at(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The keys the model allows at `path` (list indexes skipped); [] when it cannot tell."""
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        sub = _model_in(field.annotation) if field is not None else None
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def unknown_key(key: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.7)
    return (
        f"unknown key (did you mean `{close[0]}`?)" if close else "unknown key (check the spelling)"
    )


def _pydantic_issues(
    exc: ValidationError,
    doc: Document,
    prefix: list[str | int],
    model: type[BaseModel] | None = None,
    also: Sequence[str] = (),
) -> list[Issue]:
    """`exc` as issues at their place in the file; an unknown key says which key `model` (the
    one validated, with `also` beside its own) allows that is closest to it."""
    out: list[Issue] = []
    for err in exc.errors():
        loc = [*prefix, *err["loc"]]
        # Drop pydantic's union/tag segments that are not keys in the file.
        clean = [
            p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
        ]
        if len(clean) > 2 and clean[0] == "schemes" and clean[2] in SCHEME_KINDS:
            del clean[2]  # the scheme's kind, a union tag, not a key in the file
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = [*_keys_at(model, err["loc"][:-1]), *also] if model is not None else []
            msg = unknown_key(str(err["loc"][-1]), allowed)
        elif err["type"] == "missing":
            msg = "required key is missing"
        out.append(doc.issue(clean, msg))
    return out


def _partial(data: dict[str, Any]) -> HubConfig:
    """The valid part of an invalid file (valid sections, valid list items), so that the checks
    that follow still run and one pass reports every problem."""
    partial: dict[str, Any] = {}
    for key, value in data.items():
        if key not in HubConfig.model_fields:
            continue
        if key in ("offices", "devices", "employees", "facts") and isinstance(value, list):
            good = []
            for item in value:
                try:
                    HubConfig.model_validate({key: [item]})
                    good.append(item)
                except ValidationError:
                    pass
            partial[key] = good
            continue
        try:
            HubConfig.model_validate({key: value})
            partial[key] = value
        except ValidationError:
            pass
    return HubConfig.model_validate(partial)


def parse_config(doc: Document, kinds: Kinds) -> HubConfig:
    """Validate a loaded document; raises ConfigError listing every problem."""
    issues: list[Issue] = list(doc.issues)  # unset ${VAR}s, reported with everything else
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([Issue(doc.file, 1, "", "the file must be a mapping of sections")])
    base_dir = Path(doc.file).resolve().parent
    try:
        cfg = HubConfig.model_validate(data)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, doc, [], HubConfig))
        cfg = _partial(data)
    cfg._base_dir = base_dir
    cfg._source = doc.file
    if cfg.employees_file:
        rows, file_issues = _employees_from_csv(cfg.resolve_path(cfg.employees_file), doc.file)
        issues.extend(file_issues)
        for row in rows:
            line = row.pop("_line")
            try:
                cfg.employees.append(Employee.model_validate(row))
            except ValidationError as exc:
                for err in exc.errors():
                    issues.append(
                        Issue(
                            str(cfg.resolve_path(cfg.employees_file)),
                            line,
                            dotted(err["loc"]),
                            err["msg"],
                        )
                    )
    file_facts, fact_issues = load_facts_file(cfg)
    cfg._file_facts = file_facts
    issues.extend(fact_issues)
    _check_references(cfg, doc, data, issues)
    _validate_device_options(cfg, doc, issues, kinds)
    if issues:
        unset = {i.path for i in doc.issues}  # a field whose ${VAR} is unset: that is its problem
        issues = [i for i in issues if i in doc.issues or i.path not in unset]
        raise ConfigError(sorted(set(issues), key=lambda i: (i.file, i.line or 0, i.path)))
    return cfg


def load_config(path: str | Path, kinds: Kinds) -> HubConfig:
    return parse_config(load_yaml(path), kinds)


def config_from_dict(data: dict[str, Any], kinds: Kinds, base_dir: str | Path = ".") -> HubConfig:
    """Build a config from a dict (tests, embedding). Same validation as a file."""
    from ruamel.yaml.comments import CommentedMap

    doc = Document(str(Path(base_dir) / "<dict>"), CommentedMap(), data)
    return parse_config(doc, kinds)


def json_schema(kinds: Kinds) -> dict[str, Any]:
    """JSON Schema for editors: devices are a union of every known kind's options."""
    from pydantic import create_model

    common = {name: (f.annotation, f) for name, f in Device.model_fields.items() if name != "kind"}
    variants = []
    for kind in kinds.kinds():
        opts = kinds.options_model(kind)
        fields: dict[str, Any] = dict(common)
        fields["kind"] = (Literal[kind], ...)
        for name, f in opts.model_fields.items():
            fields[name] = (f.annotation, f)
        variants.append(
            create_model(f"Device_{kind}", __config__=ConfigDict(extra="forbid"), **fields)
        )
    schema = HubConfig.model_json_schema()
    defs = schema.setdefault("$defs", {})
    any_of = []
    for model in variants:
        sub = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[model.__name__] = sub
        any_of.append({"$ref": f"#/$defs/{model.__name__}"})
    schema["properties"]["devices"] = {"type": "array", "items": {"anyOf": any_of}}
    schema["title"] = "spotme-hub configuration"
    return schema
