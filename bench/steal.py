"""How much CPU the host took from this virtual machine while a benchmark phase ran.

On a shared VM the hypervisor can run other guests on "our" cores: Linux counts that time as
*steal* in `/proc/stat`. A phase that ran with 20 % steal had a fifth less machine than one that
ran with none, so the benchmarks print it beside their figures. Elsewhere (no `/proc/stat`)
the meter reports nothing.
"""

from __future__ import annotations

from pathlib import Path

_STAT = Path("/proc/stat")


def _ticks() -> tuple[int, int] | None:
    """(steal ticks, all ticks) of all CPUs together, or None where Linux does not say."""
    try:
        first = _STAT.read_text().splitlines()[0].split()
    except OSError:
        return None
    if first[0] != "cpu" or len(first) < 9:
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    values = [int(v) for v in first[1:9]]
    return values[7], sum(values)


class StealMeter:
    """`with StealMeter() as m: ...` then `m.percent` (None where unknown)."""

    percent: float | None = None

    def __enter__(self) -> StealMeter:
        self._start = _ticks()
        return self

    def __exit__(self, *_exc: object) -> None:
        end = _ticks()
        if self._start is None or end is None or end[1] <= self._start[1]:
            return
        self.percent = 100.0 * (end[0] - self._start[0]) / (end[1] - self._start[1])

    def text(self) -> str:
        return (
            "host CPU steal: unknown"
            if self.percent is None
            else (f"host CPU steal: {self.percent:.1f} %")
        )
