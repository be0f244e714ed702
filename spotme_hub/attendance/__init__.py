"""Attendance days: each officer's daily status from the punches of every source, by Malaysian
public-service rules (`docs/days.md`).

Reads the store; `Attendance` is the feature's face to the composition root (its commands), as
a device kind's class is.
"""

from __future__ import annotations

from ..contract import HasCommands, sibling


class Attendance(HasCommands):
    commands = sibling("commands", "register")
