"""The contract: the registry refuses a class that does not keep it, and `FakeContext` runs a
real adapter without a hub (what a plug-in author's unit tests use)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from spotme_hub import registry
from spotme_hub.adapters.simulated.adapter import SimulatedAdapter
from spotme_hub.contract import (
    ContractError,
    FakeContext,
    HasRoutes,
    Options,
    Polling,
    Replayable,
    Streaming,
    check_adapter,
)


class _Base:
    kind: ClassVar[str] = "contract_probe"
    options_model: ClassVar[type[Options]] = Options

    def __init__(self, device: Any, options: Any): ...


def test_a_kind_that_keeps_the_contract_passes() -> None:
    class Good(_Base, Streaming):
        async def run(self, ctx: Any) -> None: ...

    check_adapter(Good)


@pytest.mark.parametrize(
    ("bases", "body", "says"),
    [
        ((), {}, "neither"),
        ((Streaming, Polling), {"run": "async", "poll": "async"}, "Streaming, Polling"),
        ((Streaming,), {}, "does not define `run`"),
        ((Polling,), {"poll": "sync"}, "must be `async def`"),
        (
            (Streaming, Replayable),
            {"run": "async"},
            "names Replayable but does not define `replay`",
        ),
        ((Streaming, HasRoutes), {"run": "async"}, "names HasRoutes but does not define `routes`"),
    ],
)
def test_a_kind_that_breaks_it_is_refused_with_the_reason(
    bases: tuple[type, ...], body: dict[str, str], says: str
) -> None:
    ns: dict[str, Any] = {}
    for name, how in body.items():
        if how == "async":

            async def method(self: Any, ctx: Any) -> None: ...

        else:

            def method(self: Any, ctx: Any) -> None: ...  # type: ignore[misc]

        ns[name] = method
    cls = type("Probe", (_Base, *bases), ns)
    with pytest.raises(ContractError, match=says.replace("(", r"\(")):
        check_adapter(cls)
    with pytest.raises(ContractError):
        registry.register(cls)
    assert "contract_probe" not in registry.kinds()


def test_fake_context_runs_a_real_adapter_with_the_hub_rules(make_config: Any) -> None:
    cfg = make_config(devices=[{"id": "sim", "kind": "simulated", "office": "hq",
                                "sequence": True, "burst": 3, "every": 0.01, "total": 6,
                                "users": ["1", "2", "9"]}])  # fmt: skip
    device = cfg.device("sim")
    ctx = FakeContext(cfg, "sim", stop_after=5)
    adapter = SimulatedAdapter(device, device.options)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(adapter.run(ctx))
    assert len(ctx.records) == 6 and not ctx.rejected
    assert {r.employee_id for r in ctx.records} == {"E1", "E2", None}  # config's employees
    assert all(r.office_id == "hq" and r.occurred_at.endswith("Z") for r in ctx.records)
    assert ctx.checkpoints["next_index"] == 6


def test_simulated_arrivals_are_todays_clock_ins_once(make_config: Any) -> None:
    """`arrivals`: today's clock-ins in time order, in the device's zone, a time still to come
    sent as now; then quiet (no `users`); a restart the same day does not come in again."""
    from datetime import datetime, time, timedelta
    from zoneinfo import ZoneInfo

    cfg = make_config(devices=[{"id": "sim", "kind": "simulated", "office": "hq",
                                "arrive_every": 0.01, "every": 0.01,
                                "arrivals": {"2": "08:40", "1": "7:50", "9": "23:59"}}])  # fmt: skip
    tz = ZoneInfo(cfg.device("sim").zone)
    before = datetime.now(tz).replace(tzinfo=None, microsecond=0)
    ctx = FakeContext(cfg, "sim", stop_after=6)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(SimulatedAdapter(cfg.device("sim"), cfg.device("sim").options).run(ctx))
    after = datetime.now(tz).replace(tzinfo=None)
    assert [r.source_user_id for r in ctx.records] == ["1", "2", "9"]
    assert {r.punch for r in ctx.records} == {"in"} and {r.employee_id for r in ctx.records} == {
        "E1", "E2", None
    }  # fmt: skip
    for r, planned in zip(ctx.records, ("07:50", "08:40", "23:59"), strict=True):
        local = datetime.fromisoformat(r.local_time[:19])
        due = datetime.combine(before.date(), time.fromisoformat(planned))
        if due <= before:
            assert local == due
        else:  # not yet: sent as now
            assert before - timedelta(seconds=1) <= local <= after
    assert ctx.checkpoints == {"arrivals_date": before.date().isoformat(), "arrived": 3}
    again = FakeContext(cfg, "sim", stop_after=3)
    again.checkpoints.update(ctx.checkpoints)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(SimulatedAdapter(cfg.device("sim"), cfg.device("sim").options).run(again))
    assert again.records == []
    assert again.state_name == "UP"
