"""Store-and-forward to the SPOT-Me core: the forwarder, its dead letters and a reference core.

`Forwarding` is the feature's face to the composition root: its table, routes, commands and
demo part, through the same abilities a device kind has.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..contract import CommandTools, DemoStage, HasCommands, HasDemo, HasRoutes, HasTables

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter
    from sqlalchemy import Table

    from ..contract import RouteContext


class Forwarding(HasTables, HasRoutes, HasCommands, HasDemo):
    @classmethod
    def tables(cls) -> Sequence[Table]:
        from .tables import DEAD_LETTERS

        return [DEAD_LETTERS]

    @classmethod
    def routes(cls, ctx: RouteContext) -> APIRouter:
        from .routes import forward_router

        return forward_router(ctx)

    @classmethod
    def commands(cls, cli: click.Group, tools: CommandTools) -> None:
        from .commands import register

        register(cli, tools)

    @classmethod
    def demo_part(cls, demo: DemoStage) -> contextlib.AbstractAsyncContextManager[None]:
        from .demo import part

        return part(demo)
