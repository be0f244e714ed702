"""Attendance days: each officer's daily status from the punches of every source, by Malaysian
public-service rules (`docs/days.md`).

Reads the store's records and keeps its own tables (the days, with their change sequence, and
the facts pushed over the API). `Attendance` is the feature's face to the composition root: its
tables, routes and commands, through the same abilities a device kind has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config import HubConfig
from ..contract import HasCommands, HasOutbox, HasRoutes, HasTables, Outbox, sibling

if TYPE_CHECKING:
    from sqlalchemy import Table


class Attendance(HasTables, HasRoutes, HasCommands, HasOutbox):
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

    commands = sibling("commands", "register")
