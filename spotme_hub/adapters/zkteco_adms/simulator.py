"""A ZKTeco push (ADMS) terminal over real HTTP, for `spotme-hub simulate adms`, tests and the demo.

It behaves like a terminal with its own attendance memory: handshake (clock from the `Date`
header), OPERLOG `USER` lines, ATTLOG posts (extended lines with `TimeOffset` and Base64
`ExtendData` GPS when asked), a punch counted as uploaded only after `OK:<n>`, and a command
poll that answers `DATA QUERY ATTLOG`, `VERIFY SUM ATTLOG` and `INFO` through `devicecmd`.
`withhold` keeps some punches back from the normal uploads (a lost post), so a reconciliation
finds the gap and a backfill closes it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ...normalize.geo import offset_point

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass
class SimPunch:
    pin: str
    when: datetime  # device-local wall clock (naive)
    status: int
    verify: int
    latitude: float | None = None
    longitude: float | None = None
    withheld: bool = False
    uploaded: bool = False


class PushTerminal:
    def __init__(
        self,
        url: str,
        sn: str,
        *,
        gps: bool = False,
        extended: bool | None = None,
        center: tuple[float, float] = (2.9264, 101.6964),
        radius_m: float = 300.0,
        users: Sequence[str] = ("1", "2", "3", "4"),
        utc_offset_s: int = 8 * 3600,
        batch: int = 100,
        seed: int | None = None,
        client: httpx.AsyncClient | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.url = url.rstrip("/")
        self.sn = sn
        self.gps = gps
        self.extended = gps if extended is None else extended
        self.center = center
        self.radius_m = radius_m
        self.users = list(users)
        self.tz = timezone(timedelta(seconds=utc_offset_s))
        self.utc_offset_s = utc_offset_s
        self.batch = batch
        self.rng = random.Random(seed)
        self.client = client or httpx.AsyncClient(timeout=30)
        self._own_client = client is None
        self.log = log or (lambda _msg: None)
        self.memory: list[SimPunch] = []
        self.options: dict[str, str] = {}
        self.clock_offset_s = 0.0
        self.stats: Counter[str] = Counter()

    async def close(self) -> None:
        if self._own_client:
            await self.client.aclose()

    # -- HTTP -----------------------------------------------------------------------------
    async def _request(
        self, method: str, path: str, body: str | None = None, **params: Any
    ) -> httpx.Response:
        resp = await self.client.request(
            method, f"{self.url}{path}", params={"SN": self.sn, **params},
            content=body.encode() if body is not None else None,
            headers={"User-Agent": "iClock Proxy/1.09", "Content-Type": "text/plain"},
        )  # fmt: skip
        date = resp.headers.get("date")
        if date:  # terminals set their clock from the server's Date header
            self.clock_offset_s = (parsedate_to_datetime(date) - datetime.now(UTC)).total_seconds()
        return resp

    async def handshake(self) -> dict[str, str]:
        resp = await self._request("GET", "/iclock/cdata", options="all", pushver="2.4.1",
                                   DeviceType="att", language="83")  # fmt: skip
        resp.raise_for_status()
        lines = resp.text.splitlines()
        self.options = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
        self.stats["handshakes"] += 1
        tz, delay = self.options.get("TimeZone"), self.options.get("Delay")
        self.log(f"{self.sn}: handshake OK (TimeZone={tz}, Delay={delay})")
        return self.options

    def now_local(self) -> datetime:
        now = datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)
        return now.astimezone(self.tz).replace(tzinfo=None, microsecond=0)

    # -- punches --------------------------------------------------------------------------
    def punch(self, n: int = 1, withhold: int = 0, spread_s: int = 37) -> list[SimPunch]:
        """Record `n` punches in memory (the newest now, older ones `spread_s` apart); the
        first `withhold` of them are kept back from normal uploads."""
        base = self.now_local()
        made = []
        for i in range(n):
            lat = lon = None
            if self.gps:
                lat, lon = self.near_center()
            made.append(SimPunch(
                pin=self.users[(len(self.memory) + i) % len(self.users)],
                when=base - timedelta(seconds=(n - 1 - i) * spread_s),
                status=((len(self.memory) + i) // len(self.users)) % 2,
                verify=self.rng.choice([1, 4, 15]),
                latitude=lat, longitude=lon, withheld=i < withhold,
            ))  # fmt: skip
        self.memory.extend(made)
        return made

    def line(self, p: SimPunch) -> str:
        base = [p.pin, p.when.strftime(TIME_FORMAT), str(p.status), str(p.verify), "0", "0", "0"]
        if not self.extended:
            return "\t".join(base)
        extend = "-1"
        if p.latitude is not None and p.longitude is not None:
            gps = {"GPSInfo": {"latitude": f"{p.latitude:.6f}", "longitude": f"{p.longitude:.6f}"}}
            extend = base64.b64encode(json.dumps(gps).encode()).decode()
        temp = f"{36 + self.rng.random():.1f}"
        return "\t".join([*base, "1", temp, temp, f"{self.utc_offset_s:+d}", extend])

    async def post_attlog(self, punches: Sequence[SimPunch]) -> int:
        """POST in batches; a batch counts as uploaded only after `OK:<n>`."""
        done = 0
        for i in range(0, len(punches), self.batch):
            chunk = punches[i : i + self.batch]
            body = "".join(self.line(p) + "\n" for p in chunk)
            resp = await self._request("POST", "/iclock/cdata", body, table="ATTLOG", Stamp="9999")
            if resp.status_code != 200 or not resp.text.startswith("OK"):
                self.stats["post_errors"] += 1
                why = f"{resp.status_code} {resp.text.strip()}"
                self.log(f"{self.sn}: post not acknowledged ({why}); will resend")
                break
            for p in chunk:
                p.uploaded = True
            done += len(chunk)
            self.stats["posted"] += len(chunk)
        return done

    async def upload(self) -> int:
        """Upload what is new (not withheld, not yet acknowledged)."""
        return await self.post_attlog([p for p in self.memory if not p.uploaded and not p.withheld])

    async def post_users(self, names: dict[str, str] | None = None) -> str:
        body = "".join(
            f"USER PIN={pin}\tName={(names or {}).get(pin, f'User {pin}')}\tPri=0\tPasswd=\t"
            f"Card={int(pin) * 1000 + 17 if pin.isdigit() else ''}\tGrp=1\tTZ=0000000100000000"
            "\tVerify=0\n"
            for pin in self.users
        )
        body += f"OPLOG 0\t0\t{self.now_local().strftime(TIME_FORMAT)}\t0\t0\t0\t0\n"
        resp = await self._request("POST", "/iclock/cdata", body, table="OPERLOG", Stamp="9999")
        return resp.text.strip()

    # -- commands -------------------------------------------------------------------------
    async def poll(self) -> list[str]:
        """One getrequest; executes and answers every command it got. Returns the commands."""
        info = f"Ver 8.0.4.2-sim,{len(self.users)},0,{len(self.memory)},127.0.0.1,10,7,15,0,111"
        resp = await self._request("GET", "/iclock/getrequest", INFO=info)
        self.stats["polls"] += 1
        if resp.status_code != 200:
            self.log(f"{self.sn}: poll refused ({resp.status_code} {resp.text.strip()})")
            return []
        cmds = [ln for ln in resp.text.splitlines() if ln.startswith("C:")]
        results = [await self._execute(c) for c in cmds]
        if results:
            await self._request("POST", "/iclock/devicecmd", "".join(r + "\n" for r in results))
        return cmds

    async def _execute(self, line: str) -> str:
        _, cmd_id, command = line.split(":", 2)
        self.stats["commands"] += 1
        args = dict(p.split("=", 1) for p in command.split(" ", 3)[-1].split("\t") if "=" in p)
        if command.startswith(("DATA QUERY ATTLOG", "VERIFY SUM ATTLOG")):
            try:
                start, end = (
                    datetime.strptime(args[k], TIME_FORMAT) for k in ("StartTime", "EndTime")
                )
            except (KeyError, ValueError):
                return f"ID={cmd_id}&Return=-1&CMD=DATA"
            hits = [p for p in self.memory if start <= p.when <= end]
            if command.startswith("VERIFY"):
                self.log(f"{self.sn}: VERIFY SUM → {len(hits)}")
                return f"ID={cmd_id}&Return=0&CMD=VERIFY SUM&AttlogSum={len(hits)}"
            sent = await self.post_attlog(hits)
            self.log(f"{self.sn}: DATA QUERY → re-sent {sent} punch(es)")
            return f"ID={cmd_id}&Return={0 if sent == len(hits) else -1005}&CMD=DATA"
        if command == "INFO":
            return (f"ID={cmd_id}&Return=0&CMD=INFO\n~DeviceName=SpotMe PushSim\n"
                    "MAC=00:17:61:00:00:01\n"
                    f"UserCount={len(self.users)}\nTransactionCount={len(self.memory)}\n"
                    "FWVersion=Ver 8.0.4.2-sim\nIPAddress=127.0.0.1")  # fmt: skip
        return f"ID={cmd_id}&Return=-1&CMD=UNKNOWN"

    async def run(
        self, records: int, withhold: int = 0, polls: int = 3, every: float | None = None,
        delay: float | None = None, forever: bool = False,
    ) -> None:  # fmt: skip
        """The CLI/demo story: handshake, users, `records` punches, then polls (and, with
        `forever`, a new punch every `every` seconds)."""
        await self.handshake()
        await self.post_users()
        self.punch(records, withhold=withhold)
        await self.upload()
        wait = delay if delay is not None else float(self.options.get("Delay", 10))
        n = 0
        next_punch = asyncio.get_running_loop().time() + (every or 0)
        while forever or n < polls:
            await asyncio.sleep(wait)
            if every and asyncio.get_running_loop().time() >= next_punch:
                self.punch(1)
                next_punch += every
            await self.upload()
            await self.poll()
            n += 1

    def near_center(self) -> tuple[float, float]:
        d = self.rng.uniform(0, self.radius_m)
        lat, lon = offset_point(*self.center, d, self.rng.uniform(0, 2 * math.pi))
        return round(lat, 6), round(lon, 6)
