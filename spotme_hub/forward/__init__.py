"""Store-and-forward to the SPOT-Me core: the forwarder, its dead letters and a reference core.

`Forwarding` is the feature's face to the composition root: its table, routes, commands and
demo part, through the same abilities a device kind has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..contract import HasCommands, HasDemo, HasRoutes, HasTables, sibling

if TYPE_CHECKING:
    from sqlalchemy import Table


class Forwarding(HasTables, HasRoutes, HasCommands, HasDemo):
    @classmethod
    def tables(cls) -> Sequence[Table]:
        from .tables import DEAD_LETTERS

        return [DEAD_LETTERS]

    routes = sibling("routes", "forward_router")
    commands = sibling("commands", "register")
    demo_part = sibling("demo", "part")
