"""Attendance days: each officer's daily status from the punches of every source, by Malaysian
public-service rules (`docs/days.md`).

Reads the store's records and keeps its own tables (the days, with their change sequence, and
the facts pushed over the API). `Attendance` is the feature's face to the composition root: its
tables, routes and commands, through the same abilities a device kind has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..contract import HasCommands, HasRoutes, HasTables, sibling

if TYPE_CHECKING:
    from sqlalchemy import Table


class Attendance(HasTables, HasRoutes, HasCommands):
    @classmethod
    def tables(cls) -> Sequence[Table]:
        from .tables import TABLES

        return TABLES

    routes = sibling("routes", "days_router")
    commands = sibling("commands", "register")
