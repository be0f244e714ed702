"""Re-reading one quarantined export row (`spotme-hub quarantine replay`) with current options."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ...config import Device
from ...normalize.mapping import Ignored, MappingError
from ...record import RawPunch, Rejection
from .options import CsvOptions
from .presets import TIME_KEY, plan_for
from .reader import FileRefused, Table
from .times import Ambiguous, choose_format, parse, time_values


def reread_row(device: Device, raw: Any, source: dict[str, Any]) -> list[RawPunch] | Rejection:
    def reject(reason: str) -> Rejection:
        return Rejection(reason=reason, raw=raw, source=source, device_id=device.id)

    if not isinstance(raw, dict):
        return reject("the quarantined item is not an export row")
    opts = device.options if isinstance(device.options, CsvOptions) else CsvOptions()
    doc = {str(k): "" if v is None else str(v) for k, v in raw.items() if k != TIME_KEY}
    names = [k for k in doc if not k.startswith("_extra")]
    if len(names) != len(doc):
        return reject("the row still has more fields than its header")
    name = str(source.get("file", "row"))
    table = Table(Path(name), "text", preview=[names])
    try:
        plan = plan_for(table, opts)
        frame = pd.DataFrame([doc], dtype=object)
        text = time_values(frame, plan.time_columns, None)
        fmt = choose_format(text, opts.dayfirst, opts.date_format, name)
    except (FileRefused, KeyError) as exc:
        return reject(str(exc))
    if isinstance(fmt, Ambiguous):
        return reject(f"{name}: day or month? set dayfirst or date_format (e.g. {fmt.example!r})")
    when = parse(text, fmt)[0]
    if pd.isna(when):
        return reject(f"cannot read time {text.iloc[0]!r}")
    doc[TIME_KEY] = str(when.astype("datetime64[s]"))
    tz = opts.timezone or device.zone
    try:
        punch = plan.mapping.apply(
            doc, received_at=datetime.now(UTC), default_timezone=tz, source=source
        )
    except Ignored as exc:
        return reject(f"ignored: {exc}")
    except MappingError as exc:
        return reject(str(exc))
    if not (opts.timezone or device.timezone) and punch.device_time is not None:
        # naive again: normalisation reads it in the office's zone, as the import did
        punch.device_time = punch.device_time.replace(tzinfo=None)
    return [punch]
