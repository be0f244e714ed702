"""`spotme-hub simulate serial`: a card reader on a pseudo-terminal for the hub to open."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ...contract import CommandTools


def register(cli: click.Group, tools: CommandTools) -> None:
    simulate = tools.simulate

    @simulate.command("serial")
    @click.option(
        "--framing",
        type=click.Choice(["rdm6300", "line", "wiegand", "osdp"]),
        default="rdm6300",
        show_default=True,
        help="How the reader frames a card: RDM6300 125 kHz, text lines, Wiegand, or OSDP.",
    )
    @click.option(
        "--cards",
        default="0008844356,0012345678",
        show_default=True,
        help="Comma-separated cards, in any form the hub accepts (10-digit, FFF,CCCCC, hex).",
    )
    @click.option(
        "--every", type=float, default=3.0, show_default=True, help="Seconds between reads."
    )
    @click.option("--count", type=int, default=0, help="Stop after this many reads (0 = Ctrl-C).")
    @click.option(
        "--hold",
        type=int,
        default=5,
        show_default=True,
        help="rdm6300: frames per read (a card held on the reader repeats).",
    )
    @click.option(
        "--noise", is_flag=True, help="Line noise before frames; frames split across reads."
    )
    @click.option(
        "--faults", is_flag=True, help="Sometimes a bad checksum, zero id, parity error..."
    )
    @click.option(
        "--link",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Also expose the port as this symlink (a stable path for the hub config).",
    )
    @click.option(
        "--encoding",
        type=click.Choice(["decimal", "hex"]),
        default="decimal",
        help="line: card number base.",
    )
    @click.option(
        "--text",
        type=click.Choice(["hex", "decimal", "bits"]),
        default="hex",
        help="wiegand: converter output form.",
    )
    @click.option(
        "--bits", type=click.Choice(["26", "34"]), default="26", help="wiegand/osdp: frame size."
    )
    @click.option(
        "--address", "addresses", type=int, multiple=True, help="osdp: reader address(es)."
    )
    @click.option("--seed", type=int, default=None, help="Random seed (the same reads each run).")
    def serial_cmd(framing: str, cards: str, every: float, count: int, hold: int, noise: bool,
                   faults: bool, link: Path | None, encoding: str, text: str, bits: str,
                   addresses: tuple[int, ...], seed: int | None) -> None:  # fmt: skip
        """Open a pty pair, print its path for the hub (`kind: serial`, `port: <path>`) and emit
        card reads in the chosen framing."""
        from .simulator import run_reader

        card_list = [c.strip() for c in cards.split(";" if ";" in cards else ",") if c.strip()]
        with contextlib.suppress(KeyboardInterrupt):
            run_reader(
                framing, card_list, every=every, count=count, hold=hold, noise=noise,
                faults=faults, link=link, addresses=addresses or (0,), seed=seed,
                say=lambda s: click.echo(s, nl=True), encoding=encoding, text=text, bits=int(bits),
            )  # fmt: skip
