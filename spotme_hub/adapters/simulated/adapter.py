"""`kind: simulated` — a device that makes up punches. Proves the pipeline end to end and feeds
the demo; with `sequence: true` it emits a fixed, numbered sequence (resumable from its
checkpoint) which the crash tests use. `arrivals` first replays this morning's clock-ins (who came
in when, today, in the device's zone), quickly: the demo's Today panel fills as they come."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar

from pydantic import Field

from ...clock import zone
from ...config import Device
from ...contract import DeviceContext, Options, Streaming
from ...record import RawPunch
from ...schedule import TimeOfDay


class SimulatedOptions(Options):
    every: float = Field(2.0, gt=0, description="Seconds between bursts.")
    burst: int = Field(1, ge=1, le=10_000, description="Punches per burst.")
    users: list[str] = Field(default_factory=list, description="User ids (default 1..20).")
    gps_radius_m: float | None = Field(
        None, gt=0, description="Report payload GPS this far around the office at most."
    )
    seed: int | None = None
    sequence: bool = Field(False, description="Deterministic numbered punches (tests).")
    start: datetime = Field(datetime(2026, 1, 5, 8, 0, 0), description="Sequence start (local).")
    total: int | None = Field(None, ge=1, description="Stop after this many (sequence mode).")
    overlap: int = Field(0, ge=0, description="On restart re-emit this many already committed.")
    arrivals: dict[str, TimeOfDay] = Field(
        default_factory=dict,
        description="Today's clock-ins first, user id → HH:MM in the device's zone, in time order"
        " (a time still to come is sent as now); then the random punches of `users`, if any.",
    )
    arrive_every: float = Field(1.0, gt=0, description="Seconds between arrivals.")


class SimulatedAdapter(Streaming):
    kind: ClassVar[str] = "simulated"
    options_model: ClassVar[type[Options]] = SimulatedOptions

    def __init__(self, device: Device, options: SimulatedOptions):
        self.device = device
        self.opts = options
        self.rng = random.Random(options.seed)
        default = [] if options.arrivals else [str(i) for i in range(1, 21)]
        self.users = options.users or default
        self.center: tuple[float | None, float | None] = (device.latitude, device.longitude)

    async def run(self, ctx: DeviceContext) -> None:
        ctx.mark_up(firmware="simulated")
        office = ctx.config.office(self.device.office)
        self.center = (
            self.device.latitude if self.device.latitude is not None else office.latitude,
            self.device.longitude if self.device.longitude is not None else office.longitude,
        )
        index = 0
        if self.opts.sequence:
            index = max(0, int(ctx.checkpoint("next_index", 0)) - self.opts.overlap)
        elif self.opts.arrivals:
            await self._arrive(ctx)
        while True:
            if not self.users:  # arrivals only: nothing more to say
                ctx.mark_seen()
                await ctx.sleep(self.opts.every)
                continue
            if self.opts.total is not None and index >= self.opts.total:
                ctx.mark_up(done=True)
                await ctx.sleep(3600)
                continue
            n = self.opts.burst
            if self.opts.total is not None:
                n = min(n, self.opts.total - index)
            punches = [self._punch(index + k) for k in range(n)]
            index += n
            await ctx.submit(punches, checkpoint={"next_index": index})
            ctx.mark_seen()
            await ctx.sleep(self.opts.every)

    async def _arrive(self, ctx: DeviceContext) -> None:
        """This morning's clock-ins, one every `arrive_every` s (resumed from the checkpoint of
        the same date, so a restarted device does not come in twice)."""
        tz = zone(self.device.zone)
        today = datetime.now(tz).date()
        plan = sorted(self.opts.arrivals.items(), key=lambda item: (item[1], item[0]))
        done = 0
        if ctx.checkpoint("arrivals_date") == today.isoformat():
            done = int(ctx.checkpoint("arrived", 0))
        for k in range(done, len(plan)):
            user, minute = plan[k]
            planned = datetime.combine(today, time(minute // 60, minute % 60), tz)
            when = min(planned, datetime.now(tz))
            arrival = self._raw(user, when, "in", "arrival", k)
            await ctx.submit(
                [arrival], checkpoint={"arrivals_date": today.isoformat(), "arrived": k + 1}
            )
            ctx.mark_seen()
            await ctx.sleep(self.opts.arrive_every)

    def _punch(self, i: int) -> RawPunch:
        if self.opts.sequence:
            user = self.users[i % len(self.users)]
            when = self.opts.start + timedelta(seconds=i)
            punch: Any = "in" if (i // len(self.users)) % 2 == 0 else "out"
        else:
            user = self.rng.choice(self.users)
            when = datetime.now(UTC)
            punch = self.rng.choice(["in", "out", "in", "out", "break_out", "break_in"])
        return self._raw(user, when, punch, "index", i)

    def _raw(self, user: str, when: datetime, punch: Any, key: str, i: int) -> RawPunch:
        lat = lon = None
        if self.opts.gps_radius_m:
            lat, lon = self._near_office()
        return RawPunch(
            device_time=when.replace(microsecond=0),
            user_id=user,
            punch=punch,
            verify=self.rng.choice(["fingerprint", "face", "card"]),
            latitude=lat,
            longitude=lon,
            device_serial=f"SIM-{self.device.id}",
            source={"kind": "simulated", key: i},
            raw={key: i, "user": user, "punch": punch},
        )

    def _near_office(self) -> tuple[float | None, float | None]:
        from ...normalize.geo import offset_point

        office_lat, office_lon = self.center
        if office_lat is None or office_lon is None:
            return None, None
        assert self.opts.gps_radius_m is not None
        d = self.rng.uniform(0, self.opts.gps_radius_m)
        return offset_point(office_lat, office_lon, d, self.rng.uniform(0, 2 * math.pi))
