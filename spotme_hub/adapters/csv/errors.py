"""The one error of the file import that is the file's, not the hub's."""

from __future__ import annotations


class FileRefused(Exception):
    """The whole file cannot be imported safely (unknown format, ambiguous dates, a damaged
    workbook...): it goes to `failed/` with this message, and nothing of it is guessed."""


class NothingToImport(FileRefused):
    """No rows of an export here: no header with the columns to import, or no time values. A
    workbook's sheet like that (a cover, notes) is passed over when the other sheets are read."""


class UndecidedDates(FileRefused):
    """Every date reads both as day/month and as month/day. Another sheet of the same workbook
    may tell (`source.export_files`); otherwise the file is refused."""
