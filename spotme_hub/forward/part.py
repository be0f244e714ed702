"""`Forwarding`: the forwarding feature as a part of the hub, for the composition root (kept out of
the package's `__init__`, so importing one of its modules does not import the contract)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..contract import HasDemo, HasRoutes, HasTables, sibling

if TYPE_CHECKING:
    from sqlalchemy import Table


class Forwarding(HasTables, HasRoutes, HasDemo):
    @classmethod
    def tables(cls) -> Sequence[Table]:
        from .tables import DEAD_LETTERS

        return [DEAD_LETTERS]

    routes = sibling("routes", "forward_router")
    demo_part = sibling("demo", "part")
