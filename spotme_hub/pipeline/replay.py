"""Replaying quarantined items once the configuration (or the adapter) has been fixed.

Items rejected by normalisation carry a snapshot of the parsed punch and are re-normalised with
the current config. Items rejected by an adapter's parser (a malformed frame or line) are handed
back to that adapter kind's ``replay(device, raw, source)`` when it has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import registry
from ..config import HubConfig
from ..contract import HasPunchWords, Replayable, has
from ..normalize import Normalizer, punch_from_snapshot
from ..record import RawPunch, Record, Rejection
from ..store import Store


@dataclass(slots=True)
class ReplayOutcome:
    qid: int
    status: str  # replayed | open
    detail: str
    records: int = 0


def replay_item(cfg: HubConfig, store: Store, item: dict[str, Any]) -> ReplayOutcome:
    qid = int(item["qid"])
    device_id = item.get("device_id")
    try:
        device = cfg.device(device_id) if device_id else None
    except KeyError:
        device = None
    if device is None:
        return ReplayOutcome(qid, "open", f"device {device_id!r} is not in the configuration")
    source = item.get("source") or {}
    raw = item.get("raw")
    adapter = registry.get(device.kind)
    # the punch words the adapter's own options add (a csv device's `punch:`), as its commits use
    punch_map = adapter.punch_map(device) if has(adapter, HasPunchWords) else None  # type: ignore[attr-defined]
    punches: list[RawPunch]
    if "punch" in source:
        punches = [punch_from_snapshot(source["punch"], raw, source)]
    else:
        if not has(adapter, Replayable):
            return ReplayOutcome(qid, "open", f"kind {device.kind!r} cannot re-read this input")
        parsed = adapter.replay(device, raw, source)  # type: ignore[attr-defined]
        if isinstance(parsed, Rejection):
            return ReplayOutcome(qid, "open", f"still rejected: {parsed.reason}")
        punches = list(parsed)
    normalizer = Normalizer(cfg)
    records: list[Record] = []
    now = datetime.now(UTC)
    for p in punches:
        out = normalizer.normalize(device, p, now=now, punch_map=punch_map)
        if isinstance(out, Rejection):
            return ReplayOutcome(qid, "open", f"still rejected: {out.reason}")
        records.append(out)
    result = store.resolve_quarantine(qid, "replayed", f"{len(records)} record(s)", records)
    return ReplayOutcome(
        qid, "replayed", f"new={len(result.new)} duplicate={len(result.duplicate)}", len(records)
    )
