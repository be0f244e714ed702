"""The one error of the file import that is the file's, not the hub's."""

from __future__ import annotations


class FileRefused(Exception):
    """The whole file cannot be imported safely (unknown format, ambiguous dates, a damaged
    workbook...): it goes to `failed/` with this message, and nothing of it is guessed."""
