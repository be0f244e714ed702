"""Where the hub's log goes and how each event is written: text for people, or JSON Lines (one
object per event: time, level, logger, message, and the event's own fields — device, kind,
records…) for a log collector; to stderr, or to a file the standard library rotates."""

from __future__ import annotations

import json
import logging
import logging.handlers
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: what every LogRecord has: the rest of its attributes are the event's own (`extra=`)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """One JSON object per event, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                event[key] = value
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False, default=str)


def setup(
    level: int,
    fmt: str = "text",
    file: Path | None = None,
    max_mb: float = 10,
    backups: int = 5,
) -> None:
    """(Re)configure the root logger: `fmt` text or json, to stderr or to `file` rotated at
    `max_mb` with `backups` old files kept."""
    handler: logging.Handler
    if file is None:
        handler = logging.StreamHandler()
    else:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            file, maxBytes=int(max_mb * 1024 * 1024), backupCount=backups, encoding="utf-8"
        )
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
