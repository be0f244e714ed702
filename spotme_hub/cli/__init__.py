"""The `spotme-hub` command line (`main`) and the demo behind `spotme-hub demo`."""

from .main import cli, main

__all__ = ["cli", "main"]
