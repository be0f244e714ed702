"""`Attendance`: the attendance days feature as a part of the hub, for the composition root (kept out of
the package's `__init__`, so importing one of its modules does not import the contract)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config import HubConfig
from ..contract import HasOutbox, HasRoutes, HasTables, Outbox, sibling

if TYPE_CHECKING:
    from sqlalchemy import Table


class Attendance(HasTables, HasRoutes, HasOutbox):
    @classmethod
    def tables(cls) -> Sequence[Table]:
        from .tables import TABLES

        return TABLES

    routes = sibling("routes", "days_router")

    @classmethod
    def outbox(cls, cfg: HubConfig) -> Outbox | None:
        """Every change of a stored day, to `core.days_path`, when `core.forward_days` is on."""
        if not (cfg.core.forward_days and cfg.employees and cfg.attendance.enabled):
            return None
        from .ledger import outbox_rows

        return Outbox("days", cfg.core.days_path, outbox_rows)
